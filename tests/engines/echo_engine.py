"""A toy engine module for the registry test: the whole of what an engine has to provide."""

from __future__ import annotations

from pathlib import Path

from app.engines.base import SAMPLE_RATE, Audio, ModelLoad, TranscriptionStream
from app.media.samples import decode_samples
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType

TEXT = "软件头发"


class EchoModel:
    """Says ``TEXT`` over the whole file, in Chinese."""

    engine = "echo"

    def __init__(self, name: str, device: str) -> None:
        self.name = name
        self.device = device

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        samples = decode_samples(str(audio)) if isinstance(audio, Path) else audio
        duration = len(samples) / SAMPLE_RATE
        segment = Segment(
            id=0,
            start=0.0,
            end=round(duration, 3),
            text=TEXT,
            avg_logprob=0.0,
            no_speech_prob=0.0,
            compression_ratio=1.0,
            temperature=0.0,
        )
        return TranscriptionStream("zh", 1.0, duration, iter([segment] if duration > 1.5 else []))

    def close(self) -> None:
        pass


def create_model(load: ModelLoad) -> EchoModel:
    return EchoModel(load.model, load.device.name)
