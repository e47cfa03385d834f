"""Batched decoding (``WHISPER__BATCH_SIZE`` > 1): speech chunks decoded in batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jiwer
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from app.engines.base import SAMPLE_RATE
from app.engines.batched import Chunk, chunk_regions, window_seconds
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.engines.model_resolver import ModelResolver
from app.schemas.task import DecodeOptions, TaskType
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done
from tests.engines.test_long_audio_and_parity import assert_clip_starts, build_long_file, long_file_clips


def test_chunking_merges_and_splits() -> None:
    assert chunk_regions([(0.0, 5.0), (6.0, 20.0), (25.0, 40.0)]) == [Chunk(0.0, 20.0), Chunk(25.0, 40.0)]
    assert chunk_regions([(0.0, 70.0)]) == [Chunk(0.0, 30.0), Chunk(30.0, 60.0), Chunk(60.0, 70.0)]
    assert chunk_regions([(0.0, 2.0), (3.0, 65.0)]) == [
        Chunk(0.0, 2.0),
        Chunk(3.0, 33.0),
        Chunk(33.0, 63.0),
        Chunk(63.0, 65.0),
    ]
    assert chunk_regions([]) == []


def test_short_windows_follow_the_speech() -> None:
    """A chunk's window is its length plus 1 s, in 10 s steps, at least 10 s and at most 30 s."""
    assert [window_seconds(length) for length in (0.5, 8.9, 9.5, 19.0, 19.5, 28.0, 30.0)] == [
        10.0,
        10.0,
        20.0,
        20.0,
        30.0,
        30.0,
        30.0,
    ]
    assert window_seconds(3.0, short=False) == 30.0


@pytest.mark.parametrize("short_windows", [True, False])
def test_rows_of_three_window_lengths_in_one_batch(
    model_dir: Path, clips: dict[str, Clip], short_windows: bool
) -> None:
    """Rows whose windows differ in length are encoded and decoded in one group per length, and
    each row's text comes back in its own place."""
    location = ModelResolver(model_dir).resolve("tiny.en").location
    model = FasterWhisperModel(
        "tiny.en",
        location,
        device="cpu",
        device_index=0,
        compute_type="int8",
        cpu_threads=2,
        num_workers=1,
        batch_size=4,
        short_windows=short_windows,
    )
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
    chunks = [Chunk(0.0, len(samples) / SAMPLE_RATE) for _, samples in rows]
    features = [decoder.features(samples, chunk) for (_, samples), chunk in zip(rows, chunks, strict=True)]
    expected = [10, 20, 10, 30] if short_windows else [30, 30, 30, 30]
    assert [window.shape for window in features] == [(80, 100 * seconds) for seconds in expected]

    encoded = decoder.encode(features)
    groups = [numbers for numbers, _ in encoded.groups]
    assert groups == ([[0, 2], [1], [3]] if short_windows else [[0, 1, 2, 3]])
    assert [frames.shape for frames in encoded.on_host()] == [(50 * seconds, 384) for seconds in expected]
    assert decoder.detect_language(encoded) == [("en", 1.0)] * 4

    options = DecodeOptions(beam_size=5, temperature=0.0, language="en")
    prompt = decoder.prompt(TaskType.transcribe, options, "en")
    results = decoder.generate(encoded, [prompt.prompt] * 4, options)
    texts = {
        name: "".join(s.text for s in decoder.segments(chunk, result, prompt.tokenizer, options))
        for (name, _), chunk, result in zip(rows, chunks, results, strict=True)
    }
    for name, text in texts.items():
        own = jiwer.wer(normalize_en(references[name]), normalize_en(text))
        others = [
            jiwer.wer(normalize_en(ref), normalize_en(text))
            for other, ref in references.items()
            if other != name
        ]
        assert own <= 0.25 and own < min(others), (name, text)


async def test_batched_long_file_and_word_timestamp_fallback(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    chosen = long_file_clips(clips)
    long_file = tmp_path / "long.wav"
    offsets = build_long_file(chosen, long_file, total_seconds=300.0)
    async with running_app(make_settings(whisper={"batch_size": 8})) as running:
        task_id = (await upload(running.client, long_file, temperature="0")).json()["id"]
        task = await wait_done(running.client, task_id, timeout=300)
        assert task["status"] == "completed", task["error"]
        segments = task["result"]["segments"]
        assert [s["id"] for s in segments] == list(range(len(segments)))
        starts = [s["start"] for s in segments]
        assert starts == sorted(starts)
        assert_clip_starts(segments, offsets)
        text = normalize_en(task["result"]["text"])
        assert "ask not what your country can do for you" in text
        assert "horizon seems extremely distant" in text

        # Word timestamps cannot be batched: that task takes the sequential path and gets words.
        words_id = (await upload(running.client, clips["jfk.flac"].path, word_timestamps="true")).json()["id"]
        words_task = await wait_done(running.client, words_id)
        assert all(segment["words"] for segment in words_task["result"]["segments"])
