"""Decoding to samples: the same samples as faster-whisper's decoder, without its full GC pass."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from app.media.samples import decode_samples
from tests.conftest import AUDIO_DIR


@pytest.mark.parametrize("name", ["jfk.flac", "jfk.mp3", "stereo_diarization_left.wav", "zh_long.wav"])
def test_same_samples_as_faster_whisper(name: str) -> None:
    path = str(AUDIO_DIR / name)
    ours = decode_samples(path)
    theirs = decode_audio(path, sampling_rate=16000)
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_no_full_collection_per_file() -> None:
    """In the service, with its many live objects, a full ``gc.collect()`` per file took longer
    than decoding a short clip: decoding must not run one (faster-whisper's decoder does)."""
    path = str(AUDIO_DIR / "jfk.flac")
    collected = gc.get_stats()[2]["collections"]
    decode_samples(path)
    assert gc.get_stats()[2]["collections"] == collected
    decode_audio(path, sampling_rate=16000)
    assert gc.get_stats()[2]["collections"] > collected  # the check sees a full collection


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not audio", encoding="utf-8")
    with pytest.raises((OSError, ValueError)):
        decode_samples(str(path))
