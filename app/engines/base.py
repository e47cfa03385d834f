"""The engine interface: every speech engine returns the same result shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt

from app.engines.devices import Device
from app.engines.model_resolver import ModelResolver
from app.media.samples import SAMPLE_RATE as SAMPLE_RATE
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType
from config.settings import SenseVoiceSettings, WhisperSettings

if TYPE_CHECKING:
    from app.engines.batch_scheduler import PreparedAudio
    from app.engines.batched import BatchedDecoder

Audio: TypeAlias = Path | npt.NDArray[np.float32]
"""A media file, or 16 kHz mono float32 samples."""


@dataclass
class TranscriptionStream:
    """Metadata known up front, and segments produced lazily as decoding advances."""

    language: str | None
    language_probability: float | None
    duration: float
    segments: Iterator[Segment]


class SpeechModel(Protocol):
    """A loaded model instance. Its methods block; callers run them in worker threads."""

    engine: str
    name: str
    device: str

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        """Start decoding ``audio``; iterating ``segments`` performs the work."""
        ...

    def close(self) -> None:
        """Release the weights."""
        ...


@runtime_checkable
class BatchCapableModel(SpeechModel, Protocol):
    """A model whose tasks the pool's ``BatchScheduler`` decodes together, many streams of many
    tasks per batch (faster-whisper). The pool checks for it with ``isinstance``."""

    @property
    def batch_decoder(self) -> BatchedDecoder | None:
        """The decoder the scheduler drives; ``None`` when this instance does not batch."""
        ...

    def prepare(
        self, audio: Audio, options: DecodeOptions, pause: Callable[[], None] | None = None
    ) -> PreparedAudio:
        """Blocking: a task's audio ready for the scheduler (decoded samples, what to decode,
        where it may be split); ``pause`` is called between pieces of long CPU work."""
        ...

    def start(
        self, prepared: PreparedAudio, task_type: TaskType, options: DecodeOptions
    ) -> TranscriptionStream:
        """Blocking: the sequential path on prepared audio. The first window is decoded now (the
        language is then known); iterating ``segments`` decodes the rest, window by window."""
        ...


@dataclass(frozen=True)
class ModelLoad:
    """Everything an engine module's ``create_model`` gets: which model, where, and the settings."""

    model: str
    device: Device
    cpu_threads: int
    whisper: WhisperSettings
    sensevoice: SenseVoiceSettings
    resolver: ModelResolver
    max_audio_seconds: float | None = None
    """Decoding stops with an error past this much audio (``LIMITS__MAX_MEDIA_SECONDS``)."""


class EngineModule(Protocol):
    """What an engine's module provides (see ``config.engines``). ``unavailable`` and
    ``unsupported`` are optional."""

    def create_model(self, load: ModelLoad) -> SpeechModel:
        """Blocking: load the weights."""
        ...
