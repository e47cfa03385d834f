"""Batched decoding (``WHISPER__BATCH_SIZE`` > 1): the next window of many streams in one batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jiwer
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from app.engines.base import SAMPLE_RATE
from app.engines.batched import encoded_seconds
from app.engines.longform import Stream, decode_step, decode_streams
from app.engines.model_resolver import ModelResolver
from app.schemas.task import DecodeOptions, TaskType
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done
from tests.engine_support import cpu_engine
from tests.engines.test_long_audio_and_parity import build_long_file, long_file_clips
from tests.long_audio import assert_clips_heard

pytestmark = pytest.mark.slow


def test_short_windows_follow_the_speech() -> None:
    """A chunk's window is its length plus 1 s, in 10 s steps, at least 10 s and at most 30 s."""
    assert [encoded_seconds(length) for length in (0.5, 8.9, 9.5, 19.0, 19.5, 28.0, 30.0)] == [
        10.0,
        10.0,
        20.0,
        20.0,
        30.0,
        30.0,
        30.0,
    ]
    assert encoded_seconds(3.0, short=False) == 30.0


@pytest.mark.parametrize("short_windows", [True, False])
def test_rows_of_three_window_lengths_in_one_batch(
    model_dir: Path, clips: dict[str, Clip], short_windows: bool
) -> None:
    """Rows whose windows differ in length are encoded and decoded in one group per length, and
    each row's text comes back in its own place."""
    location = ModelResolver(model_dir).resolve("tiny.en").location
    model = cpu_engine("tiny.en", location, 4, short_windows=short_windows)
    decoder = model.batch_decoder
    assert decoder is not None
    joined = ["jfk.flac", "1221-135766-0002.wav", "1089-134686-0001.wav"]
    audio = {name: decode_audio(str(clips[name].path), sampling_rate=SAMPLE_RATE) for name in clips}
    rows = [
        ("goforward.wav", audio["goforward.wav"]),
        ("jfk.flac", audio["jfk.flac"]),
        ("stereo_diarization_left.wav", audio["stereo_diarization_left.wav"]),
        ("joined", np.concatenate([audio[name] for name in joined])),
    ]
    references = {name: clips[name].reference for name, _ in rows if name in clips}
    references["joined"] = " ".join(clips[name].reference for name in joined)
    options = DecodeOptions(beam_size=5, temperature=0.0, language="en")
    streams = [
        Stream(
            samples,
            [(0, len(samples) // 160)],
            TaskType.transcribe,
            options,
            "en",
            short_windows=short_windows,
        )
        for _, samples in rows
    ]
    windows = [stream.window() for stream in streams]
    expected = [10, 20, 10, 30] if short_windows else [30, 30, 30, 30]
    assert [window.encoded_frames for window in windows if window is not None] == [100 * s for s in expected]
    decode_step(decoder, streams)
    assert all(stream.segments for stream in streams)
    decode_streams(decoder, streams)
    texts = {
        name: "".join(s.text for s in stream.segments)
        for (name, _), stream in zip(rows, streams, strict=True)
    }
    for name, text in texts.items():
        own = jiwer.wer(normalize_en(references[name]), normalize_en(text))
        others = [
            jiwer.wer(normalize_en(ref), normalize_en(text))
            for other, ref in references.items()
            if other != name
        ]
        assert own <= 0.25 and own < min(others), (name, text)


async def test_batched_long_file_and_word_timestamps(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    chosen = long_file_clips(clips)
    long_file = tmp_path / "long.wav"
    offsets = build_long_file(chosen, long_file, total_seconds=300.0)
    async with running_app(make_settings(whisper={"batch_size": 8})) as running:
        task_id = (await upload(running.client, long_file, temperature="0", word_timestamps="true")).json()[
            "id"
        ]
        task = await wait_done(running.client, task_id, timeout=300)
        assert task["status"] == "completed", task["error"]
        segments = task["result"]["segments"]
        assert [s["id"] for s in segments] == list(range(len(segments)))
        # In order across the streams the file is split into, with their word times (aligned
        # per window, each stream's kept from where its own speech begins).
        starts = [s["start"] for s in segments]
        assert starts == sorted(starts)
        assert all(segment["words"] for segment in segments)
        words = [word["start"] for segment in segments for word in segment["words"]]
        assert words == sorted(words)
        assert_clips_heard(segments, offsets)
        text = normalize_en(task["result"]["text"])
        assert "ask not what your country can do for you" in text
        assert "horizon seems extremely distant" in text

        # Word timestamps are aligned on the batched path too.
        words_id = (await upload(running.client, clips["jfk.flac"].path, word_timestamps="true")).json()["id"]
        words_task = await wait_done(running.client, words_id)
        assert all(segment["words"] for segment in words_task["result"]["segments"])
        (instance,) = running.container.pool.instances()
        assert instance.batcher is not None
        assert any(words_id in {task for task, _ in record.rows} for record in instance.batcher.history)
