"""Voice samples: decode a short recording (bytes or a data URL) and embed it.

These functions block (PyAV decoding, the encoder); callers run them in worker threads.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import av
import numpy as np
import numpy.typing as npt
from faster_whisper.audio import decode_audio

from app.engines.base import SAMPLE_RATE
from app.schemas.task import KnownSpeaker

ENROLL_MIN_SECONDS = 5.0
ENROLL_MAX_SECONDS = 30.0
REFERENCE_MIN_SECONDS = 2.0
REFERENCE_MAX_SECONDS = 30.0
MAX_SAMPLE_BYTES = 16 * 1024 * 1024
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*?;base64,(?P<data>.*)$", re.DOTALL)


class VoiceSampleError(ValueError):
    """The voice sample is not usable: not audio, too short or too long."""


def decode_sample(data: bytes, *, min_seconds: float, max_seconds: float) -> npt.NDArray[np.float32]:
    """16 kHz mono samples of an audio file's bytes, checked for length."""
    if len(data) > MAX_SAMPLE_BYTES:
        raise VoiceSampleError(f"the voice sample is larger than {MAX_SAMPLE_BYTES // (1024 * 1024)} MiB")
    try:
        samples: npt.NDArray[np.float32] = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except (av.error.FFmpegError, OSError, ValueError, IndexError, StopIteration, RuntimeError) as exc:
        # Untrusted bytes: whatever PyAV makes of them, the answer is "not audio".
        raise VoiceSampleError("the voice sample is not a readable audio file") from exc
    seconds = len(samples) / SAMPLE_RATE
    if seconds < min_seconds or seconds > max_seconds:
        raise VoiceSampleError(
            f"the voice sample lasts {seconds:.1f} s; it must last {min_seconds:g} to {max_seconds:g} s"
        )
    if not np.any(np.abs(samples) > 1e-4):
        raise VoiceSampleError("the voice sample is silent")
    return samples


def data_url_bytes(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL."""
    match = _DATA_URL.match(url.strip())
    if match is None:
        raise VoiceSampleError(
            "a known speaker reference must be a base64 data URL (data:audio/...;base64,...)"
        )
    try:
        return base64.b64decode(match["data"], validate=False)
    except (binascii.Error, ValueError) as exc:
        raise VoiceSampleError("a known speaker reference is not valid base64") from exc


def embed_sample(samples: npt.NDArray[np.float32], threads: int = 0) -> list[float]:
    """The voice embedding of a single-speaker sample, rounded for storage."""
    from app.engines.vad import speech_regions
    from app.speakers.encoder import shared_encoder

    regions = speech_regions(samples)
    speech = (
        np.concatenate([samples[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)] for a, b in regions])
        if regions
        else samples
    )
    if len(speech) < SAMPLE_RATE // 2:
        raise VoiceSampleError("the voice sample holds too little speech")
    embedding = shared_encoder(threads).embed_voice(speech)
    return [round(float(value), 6) for value in embedding]


def reference_voices(names: list[str], references: list[str], threads: int = 0) -> list[KnownSpeaker]:
    """Known speakers from OpenAI-style ``known_speaker_names[]`` and ``known_speaker_references[]``."""
    voices = []
    for name, reference in zip(names, references, strict=True):
        samples = decode_sample(
            data_url_bytes(reference), min_seconds=REFERENCE_MIN_SECONDS, max_seconds=REFERENCE_MAX_SECONDS
        )
        voices.append(KnownSpeaker(name=name.strip()[:64] or "?", embedding=embed_sample(samples, threads)))
    return voices
