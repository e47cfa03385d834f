"""openai-whisper (PyTorch) engine: ``whisper.load_model`` with a name or a ``.pt`` path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engines.base import SAMPLE_RATE, Audio, ModelLoad, TranscriptionStream
from app.engines.vad import format_clip_timestamps, parse_clip_timestamps, speech_regions
from app.schemas.result import Segment, Word
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)


def load_audio(audio: Audio, max_seconds: float | None = None) -> npt.NDArray[np.float32]:
    """Decode with PyAV (bundled FFmpeg); openai-whisper's own loader needs an ffmpeg binary.
    ``MediaTooLongError`` past ``max_seconds`` of audio."""
    if isinstance(audio, Path):
        from app.media.samples import decode_samples

        return decode_samples(str(audio), max_seconds=max_seconds)
    return audio


def decode_kwargs(task_type: TaskType, options: DecodeOptions, *, fp16: bool) -> dict[str, Any]:
    temperature = options.temperature
    return {
        "task": task_type.value,
        "language": options.language,
        "temperature": tuple(temperature) if isinstance(temperature, list) else temperature,
        "beam_size": options.beam_size,
        "best_of": options.best_of,
        "patience": options.patience,
        "compression_ratio_threshold": options.compression_ratio_threshold,
        "logprob_threshold": options.log_prob_threshold,
        "no_speech_threshold": options.no_speech_threshold,
        "condition_on_previous_text": options.condition_on_previous_text,
        "initial_prompt": options.initial_prompt,
        "word_timestamps": options.word_timestamps,
        "prepend_punctuations": options.prepend_punctuations,
        "append_punctuations": options.append_punctuations,
        "clip_timestamps": options.clip_timestamps or "0",
        "hallucination_silence_threshold": options.hallucination_silence_threshold,
        "fp16": fp16,
        "verbose": None,
    }


class OpenAIWhisperModel:
    """One loaded openai-whisper ``Whisper`` model. fp16 on CUDA, fp32 on CPU.

    openai-whisper has no hotwords option; it is ignored. ``vad_filter`` works through speech
    regions decoded as clip timestamps. It decodes the whole file in one call, so progress
    moves once the text is ready.
    """

    engine = "openai_whisper"

    def __init__(
        self,
        name: str,
        location: str,
        *,
        device: str,
        device_index: int,
        cpu_threads: int,
        download_root: Path,
        max_audio_seconds: float | None = None,
    ) -> None:
        import torch
        import whisper

        self.name = name
        self.max_audio_seconds = max_audio_seconds
        self.device = "cpu" if device == "cpu" else f"cuda:{device_index}"
        if device == "cpu":
            torch.set_num_threads(cpu_threads)
        self._fp16 = device != "cpu"
        self._lock = threading.Lock()
        self._model: Any = whisper.load_model(location, device=self.device, download_root=str(download_root))

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        import whisper

        if self._model is None:
            raise RuntimeError(f"model {self.name} was unloaded")
        samples = load_audio(audio, self.max_audio_seconds)
        kwargs = decode_kwargs(task_type, options, fp16=self._fp16)
        if options.vad_filter:
            duration = len(samples) / SAMPLE_RATE
            regions = speech_regions(samples, parse_clip_timestamps(options.clip_timestamps, duration))
            clips = format_clip_timestamps(regions)
            if not clips:
                return TranscriptionStream(
                    language=options.language,
                    language_probability=None,
                    duration=round(len(samples) / SAMPLE_RATE, 3),
                    segments=iter(()),
                )
            kwargs["clip_timestamps"] = clips
        if not self._model.is_multilingual:
            kwargs["language"] = "en"
        with self._lock:  # a torch module is not safe for concurrent forward passes with hooks
            output = whisper.transcribe(self._model, samples, **kwargs)
        return TranscriptionStream(
            language=output.get("language"),
            language_probability=None,
            duration=round(len(samples) / SAMPLE_RATE, 3),
            segments=_segments(output["segments"]),
        )

    def close(self) -> None:
        model, self._model = self._model, None
        del model
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass


def _segments(raw: list[dict[str, Any]]) -> Iterator[Segment]:
    for index, segment in enumerate(raw):
        words = None
        if "words" in segment:
            words = [
                Word(
                    start=float(w["start"]),
                    end=float(w["end"]),
                    word=str(w["word"]),
                    probability=float(w["probability"]),
                )
                for w in segment["words"]
            ]
        yield Segment(
            id=index,
            start=float(segment["start"]),
            end=float(segment["end"]),
            text=str(segment["text"]),
            avg_logprob=float(segment["avg_logprob"]),
            no_speech_prob=float(segment["no_speech_prob"]),
            compression_ratio=float(segment["compression_ratio"]),
            temperature=float(segment["temperature"]),
            seek=int(segment["seek"]),
            tokens=[int(token) for token in segment["tokens"]],
            words=words,
        )


def create_model(load: ModelLoad) -> OpenAIWhisperModel:
    """The engine's entry in ``config.engines``: a name, or a ``.pt`` path."""
    location = str(Path(load.model).expanduser()) if load.model.endswith(".pt") else load.model
    logger.info("loading openai_whisper/%s on %s", location, load.device.name)
    return OpenAIWhisperModel(
        load.model,
        location,
        device=load.device.kind,
        device_index=load.device.index,
        cpu_threads=load.cpu_threads,
        download_root=load.whisper.model_dir / "openai",
        max_audio_seconds=load.max_audio_seconds,
    )


def unavailable(load: ModelLoad) -> str | None:
    """Why the engine cannot run here: its optional package (openai-whisper) is not installed."""
    try:
        installed = find_spec("whisper") is not None
    except (ImportError, ValueError):
        installed = False
    if installed:
        return None
    return (
        "the openai-whisper package is not installed on this server "
        "(install it with `pip install -r requirements-openai-whisper.txt`)"
    )
