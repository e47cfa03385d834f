"""Window planning for long audio: cuts in silence, bounded length, regions kept whole."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from app.engines.base import SAMPLE_RATE
from app.engines.batched import chunk_regions
from app.engines.vad import parse_clip_timestamps, speech_regions
from app.engines.windows import plan_windows
from app.media.samples import decode_samples
from tests.conftest import Clip
from tests.engines.test_long_audio_and_parity import build_long_file, long_file_clips


def _tone_with_gaps(seconds: float, gaps: list[float]) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for gap in gaps:
        audio[int(gap * SAMPLE_RATE) : int((gap + 0.5) * SAMPLE_RATE)] = 0.0
    return audio


def test_short_audio_is_one_window() -> None:
    audio = _tone_with_gaps(50, [])
    [window] = plan_windows(audio, None, 240)
    assert (window.start, window.end, window.clip_timestamps()) == (0.0, 50.0, "0")


def test_long_audio_is_cut_in_silence() -> None:
    audio = _tone_with_gaps(690, [228.0, 455.0])
    windows = plan_windows(audio, None, 240)
    assert len(windows) == 3
    assert windows[0].start == 0 and windows[-1].end == 690
    for left, right in itertools.pairwise(windows):
        assert left.end == right.start
    assert 228.0 <= windows[0].end <= 228.5
    assert 455.0 <= windows[1].end <= 455.5
    assert all(w.end - w.start <= 240 for w in windows)


def test_regions_are_grouped_and_made_relative() -> None:
    audio = _tone_with_gaps(600, [])
    regions = [(10.0, 20.0), (100.0, 130.0), (200.0, 245.0), (400.0, 410.0)]
    windows = plan_windows(audio, regions, 240)
    assert [(w.start, w.end) for w in windows] == [(10.0, 245.0), (400.0, 410.0)]
    assert windows[0].clips == [(0.0, 10.0), (90.0, 120.0), (190.0, 235.0)]
    assert windows[1].clip_timestamps() == "0.000,10.000"


def test_clip_timestamps_parsing() -> None:
    assert parse_clip_timestamps(None, 30) is None
    assert parse_clip_timestamps("0,10,20", 30) == [(0.0, 10.0), (20.0, 30.0)]
    assert parse_clip_timestamps("5,100", 30) == [(5.0, 30.0)]


def test_vad_in_pieces_pauses_between_them_and_finds_the_same_speech(
    tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """With a pause hook a long file's VAD runs in 60 s pieces and calls the hook before each;
    the speech it finds is the one-pass speech, up to a cut where a stretch crosses a piece's end."""
    long_file = tmp_path / "long.wav"
    build_long_file(long_file_clips(clips), long_file, total_seconds=150.0)
    samples = decode_samples(str(long_file))
    pauses: list[float] = []
    whole = speech_regions(samples)
    pieces = speech_regions(samples, pause=lambda: pauses.append(time.monotonic()))
    assert len(pauses) == 3  # 0-60, 60-120, 120-150 s
    assert speech_regions(samples[: 30 * SAMPLE_RATE], pause=lambda: pauses.append(0.0)) == speech_regions(
        samples[: 30 * SAMPLE_RATE]
    )
    assert len(pauses) == 3, "short audio runs in one pass, without pausing"

    def covered(regions: list[tuple[float, float]]) -> np.ndarray:
        mask = np.zeros(int(len(samples) / SAMPLE_RATE * 100), dtype=bool)
        for start, end in regions:
            mask[int(start * 100) : int(end * 100)] = True
        return mask

    agreement = (covered(whole) == covered(pieces)).mean()
    assert agreement > 0.97, agreement
    assert chunk_regions(pieces) and all(c.end - c.start <= 30.0 for c in chunk_regions(pieces))
