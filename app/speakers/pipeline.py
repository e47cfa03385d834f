"""Diarization as a step after transcription: audio and a result in, a labelled result out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.media.samples import decode_samples
from app.schemas.result import TranscriptionResult
from app.schemas.task import DecodeOptions
from app.speakers.assign import label_speakers
from app.speakers.diarizer import KnownVoice, SpeakerCount, Turn, diarize
from config.settings import DiarizationSettings


def speaker_count(options: DecodeOptions) -> SpeakerCount:
    return SpeakerCount(
        exact=options.num_speakers, minimum=options.min_speakers, maximum=options.max_speakers
    )


def known_voices(options: DecodeOptions, enrolled: Sequence[tuple[str, Sequence[float]]]) -> list[KnownVoice]:
    """The task's own references first, then the voices its key enrolled (names once each)."""
    voices: list[KnownVoice] = []
    seen: set[str] = set()
    pairs = [(voice.name, voice.embedding) for voice in options.known_speakers or []] + list(enrolled)
    for name, embedding in pairs:
        if name not in seen:
            seen.add(name)
            voices.append(KnownVoice(name, np.asarray(embedding, dtype=np.float32)))
    return voices


def speaker_turns(
    samples: npt.NDArray[np.float32],
    options: DecodeOptions,
    voices: Sequence[KnownVoice],
    settings: DiarizationSettings,
) -> list[Turn]:
    from app.speakers.encoder import shared_encoder  # torch loads here, on first use

    encoder = shared_encoder(settings.threads)
    return diarize(
        samples,
        encoder.embed_windows,
        count=speaker_count(options),
        known=voices,
        distance_threshold=settings.cluster_threshold,
        match_threshold=settings.match_threshold,
    )


def file_turns(
    audio: Path | npt.NDArray[np.float32],
    options: DecodeOptions,
    voices: Sequence[KnownVoice],
    settings: DiarizationSettings,
    *,
    max_seconds: float | None = None,
) -> list[Turn]:
    """Speaker turns of the media file (decoded to 16 kHz with PyAV, ``MediaTooLongError`` past
    ``max_seconds``) or of its 16 kHz samples. Blocks: run it in a worker thread."""
    samples = audio if isinstance(audio, np.ndarray) else decode_samples(str(audio), max_seconds=max_seconds)
    return speaker_turns(samples, options, voices, settings)


def diarize_file(
    audio: Path | npt.NDArray[np.float32],
    result: TranscriptionResult,
    options: DecodeOptions,
    voices: Sequence[KnownVoice],
    settings: DiarizationSettings,
) -> TranscriptionResult:
    """``result`` with speakers (see :func:`file_turns`). Blocks: run it in a worker thread."""
    return label_speakers(result, file_turns(audio, options, voices, settings))
