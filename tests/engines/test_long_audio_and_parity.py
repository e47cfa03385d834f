"""Long audio (10 minutes, VAD, bounded memory, timestamps) and parity with the library itself."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

from app.engines.model_resolver import ModelResolver
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done

pytestmark = pytest.mark.slow

SAMPLE_RATE = 16000


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def build_long_file(clips: list[Clip], target: Path, total_seconds: float) -> list[tuple[float, Clip]]:
    """Place ``clips`` evenly over ``total_seconds`` of silence; returns (start offset, clip)."""
    pieces = [decode_audio(str(clip.path), sampling_rate=SAMPLE_RATE) for clip in clips]
    speech = sum(len(p) for p in pieces)
    gap = int((total_seconds * SAMPLE_RATE - speech) / len(pieces))
    assert gap > SAMPLE_RATE, "not enough room for silence between the clips"
    audio = np.zeros(int(total_seconds * SAMPLE_RATE), dtype=np.float32)
    offsets: list[tuple[float, Clip]] = []
    cursor = gap // 2
    for clip, samples in zip(clips, pieces, strict=True):
        audio[cursor : cursor + len(samples)] = samples
        offsets.append((cursor / SAMPLE_RATE, clip))
        cursor += len(samples) + gap
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return offsets


def long_file_clips(clips: dict[str, Clip]) -> list[Clip]:
    """The English clips of at least 2.5 s (``jfk.flac`` once), to spread over a long file."""
    return [
        clip
        for clip in clips.values()
        if clip.language == "en" and clip.duration >= 2.5 and clip.file not in ("jfk.wav", "jfk.mp3")
    ]


def assert_clip_starts(segments: list[dict[str, Any]], offsets: list[tuple[float, Clip]]) -> None:
    """Every clip placed by ``build_long_file`` has a segment starting within 1 s of it."""
    for offset, clip in offsets:
        nearest = min(segments, key=lambda s: abs(s["start"] - offset))
        assert abs(nearest["start"] - offset) <= 1.0, (clip.file, offset, nearest)


async def test_ten_minute_file_with_vad(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    chosen = long_file_clips(clips)
    assert len(chosen) >= 8
    long_file = tmp_path / "ten-minutes.wav"
    offsets = build_long_file(chosen, long_file, total_seconds=600.0)
    async with running_app(make_settings()) as running:
        await running.client.post("/api/v1/models/tiny.en/load")
        task_id = (await upload(running.client, long_file, vad_filter="true", language="en")).json()["id"]
        baseline = _rss_bytes()
        with open("/proc/self/clear_refs", "w") as clear:  # noqa: ASYNC230
            clear.write("5")  # reset the peak-RSS counter
        task = await wait_done(running.client, task_id, timeout=600)
        peak_growth = _peak_rss_bytes() - baseline
    assert task["status"] == "completed", task["error"]
    assert task["duration"] == 600.0 and task["result"]["duration"] == 600.0
    assert peak_growth < 400 * 1024 * 1024, f"memory grew by {peak_growth / 2**20:.0f} MiB"

    segments = task["result"]["segments"]
    starts = [segment["start"] for segment in segments]
    assert starts == sorted(starts), "segment timestamps must be monotonic"
    assert all(segment["end"] >= segment["start"] for segment in segments)
    assert segments[-1]["end"] <= 600.0
    for offset, clip in offsets:
        nearest = min(segments, key=lambda segment: abs(segment["start"] - offset))
        assert abs(nearest["start"] - offset) <= 1.0, (clip.file, offset, nearest)
        first_word = normalize_en(clip.reference).split()[0]
        around = " ".join(
            segment["text"]
            for segment in segments
            if offset - 1 <= segment["start"] <= offset + clip.duration
        )
        assert first_word in normalize_en(around) or len(normalize_en(around)) > 3, (clip.file, around)


async def test_service_matches_the_library(
    make_settings: Callable[..., Settings], model_dir: Path, clips: dict[str, Clip]
) -> None:
    # With 30 s windows the stream decoder is the library's algorithm, on either path.
    settings = make_settings(whisper={"default_model": "base", "short_windows": False})
    files = ["jfk.flac", "picovoice_test_es.wav", "1089-134686-0001.wav"]
    options = {"temperature": "0", "beam_size": 5, "word_timestamps": "true"}
    async with running_app(settings) as running:
        served = []
        for name in files:
            task_id = (await upload(running.client, clips[name].path, **options)).json()["id"]
            served.append(await wait_done(running.client, task_id))
        threads = running.container.pool.cpu_threads

    location = ModelResolver(model_dir).resolve("base").location
    library = WhisperModel(location, device="cpu", compute_type="int8", cpu_threads=threads)
    for name, task in zip(files, served, strict=True):
        assert task["status"] == "completed", task["error"]
        segments, info = library.transcribe(
            str(clips[name].path), temperature=0.0, beam_size=5, word_timestamps=True
        )
        direct = list(segments)
        result = task["result"]
        assert result["language"] == info.language
        assert result["text"] == "".join(s.text for s in direct).strip()
        assert [s["text"] for s in result["segments"]] == [s.text for s in direct]
        assert [(s["start"], s["end"]) for s in result["segments"]] == [(s.start, s.end) for s in direct]
        assert [w["word"] for s in result["segments"] for w in s["words"]] == [
            w.word for s in direct for w in (s.words or [])
        ]
