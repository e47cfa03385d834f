"""faster-whisper (CTranslate2) engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment as FwSegment

from app.engines.base import Audio, TranscriptionStream
from app.schemas.result import Segment, Word
from app.schemas.task import DecodeOptions, TaskType


def decode_kwargs(task_type: TaskType, options: DecodeOptions) -> dict[str, Any]:
    """Map the service's options onto ``WhisperModel.transcribe`` keyword arguments."""
    return {
        "task": task_type.value,
        "language": options.language,
        "temperature": options.temperature,
        "beam_size": options.beam_size,
        "best_of": options.best_of,
        "patience": options.patience,
        "compression_ratio_threshold": options.compression_ratio_threshold,
        "log_prob_threshold": options.log_prob_threshold,
        "no_speech_threshold": options.no_speech_threshold,
        "condition_on_previous_text": options.condition_on_previous_text,
        "initial_prompt": options.initial_prompt,
        "hotwords": options.hotwords,
        "word_timestamps": options.word_timestamps,
        "prepend_punctuations": options.prepend_punctuations,
        "append_punctuations": options.append_punctuations,
        "clip_timestamps": options.clip_timestamps or "0",
        "hallucination_silence_threshold": options.hallucination_silence_threshold,
        "vad_filter": options.vad_filter,
    }


def convert_segments(segments: Iterable[FwSegment]) -> Iterator[Segment]:
    for index, segment in enumerate(segments):
        words = None
        if segment.words is not None:
            words = [
                Word(start=w.start, end=w.end, word=w.word, probability=w.probability) for w in segment.words
            ]
        yield Segment(
            id=index,
            start=segment.start,
            end=segment.end,
            text=segment.text,
            avg_logprob=segment.avg_logprob,
            no_speech_prob=segment.no_speech_prob,
            compression_ratio=segment.compression_ratio,
            temperature=segment.temperature if segment.temperature is not None else 0.0,
            words=words,
        )


class FasterWhisperModel:
    """One loaded ``WhisperModel`` (plus a ``BatchedInferencePipeline`` when ``batch_size`` > 1)."""

    engine = "faster_whisper"

    def __init__(
        self,
        name: str,
        location: str,
        *,
        device: str,
        device_index: int,
        compute_type: str,
        cpu_threads: int,
        num_workers: int,
        batch_size: int = 1,
        download_root: Path | None = None,
    ) -> None:
        self.name = name
        self.device = device if device == "cpu" else f"{device}:{device_index}"
        self.batch_size = batch_size
        self._model: WhisperModel | None = WhisperModel(
            location,
            device=device,
            device_index=device_index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
            download_root=str(download_root) if download_root else None,
        )
        self._batched: Any = None
        if batch_size > 1:
            try:
                from faster_whisper import BatchedInferencePipeline
            except ImportError as exc:  # faster-whisper < 1.1
                raise RuntimeError("batch_size > 1 needs faster-whisper >= 1.1") from exc
            self._batched = BatchedInferencePipeline(model=self._model)

    @property
    def model(self) -> WhisperModel:
        if self._model is None:
            raise RuntimeError(f"model {self.name} was unloaded")
        return self._model

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        source = str(audio) if isinstance(audio, Path) else audio
        kwargs = decode_kwargs(task_type, options)
        if self._batched is not None and not options.condition_on_previous_text:
            # The batched pipeline decodes independent VAD chunks: no previous-text prompt.
            kwargs.pop("clip_timestamps")
            kwargs.pop("vad_filter")
            kwargs.pop("hallucination_silence_threshold")
            kwargs.pop("condition_on_previous_text")
            segments, info = self._batched.transcribe(source, batch_size=self.batch_size, **kwargs)
        else:
            segments, info = self.model.transcribe(source, **kwargs)
        return TranscriptionStream(
            language=info.language,
            language_probability=info.language_probability,
            duration=info.duration,
            segments=convert_segments(segments),
        )

    def close(self) -> None:
        self._model = None
        self._batched = None
