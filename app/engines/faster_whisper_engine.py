"""faster-whisper (CTranslate2) engine."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment as FwSegment

from app.engines.base import SAMPLE_RATE, Audio, ModelLoad, TranscriptionStream
from app.engines.batched import CHUNK_VAD, BatchedDecoder, Chunk, chunk_regions
from app.engines.vad import parse_clip_timestamps, speech_regions
from app.engines.windows import Window, plan_windows
from app.media.samples import decode_samples
from app.schemas.result import Segment, Word
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)


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


def convert_segments(segments: Iterable[FwSegment], offset: float = 0.0) -> Iterator[Segment]:
    """faster-whisper segments → the service's shape, shifted by ``offset`` seconds."""
    for index, segment in enumerate(segments):
        words = None
        if segment.words is not None:
            words = [
                Word(
                    start=round(w.start + offset, 3),
                    end=round(w.end + offset, 3),
                    word=w.word,
                    probability=w.probability,
                )
                for w in segment.words
            ]
        yield Segment(
            id=index,
            start=round(segment.start + offset, 3) if offset else segment.start,
            end=round(segment.end + offset, 3) if offset else segment.end,
            text=segment.text,
            avg_logprob=segment.avg_logprob,
            no_speech_prob=segment.no_speech_prob,
            compression_ratio=segment.compression_ratio,
            temperature=segment.temperature if segment.temperature is not None else 0.0,
            seek=segment.seek + round(offset * 100),
            tokens=list(segment.tokens),
            words=words,
        )


class FasterWhisperModel:
    """One loaded ``WhisperModel``; with ``batch_size`` > 1 speech chunks are decoded in batches."""

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
        short_windows: bool = True,
        window_seconds: float = 240.0,
        download_root: Path | None = None,
        max_audio_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.window_seconds = window_seconds
        self.max_audio_seconds = max_audio_seconds
        """Decoding a file stops with ``MediaTooLongError`` past this many seconds."""
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
        self._batched = (
            BatchedDecoder(self._model, batch_size, short_windows=short_windows) if batch_size > 1 else None
        )

    @property
    def model(self) -> WhisperModel:
        if self._model is None:
            raise RuntimeError(f"model {self.name} was unloaded")
        return self._model

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        samples = (
            decode_samples(str(audio), max_seconds=self.max_audio_seconds)
            if isinstance(audio, Path)
            else audio
        )
        duration = len(samples) / SAMPLE_RATE
        kwargs = decode_kwargs(task_type, options)
        if self._batched is not None and not options.word_timestamps:
            return self._transcribe_batched(self._batched, samples, duration, task_type, options)

        regions = parse_clip_timestamps(options.clip_timestamps, duration)
        if options.vad_filter:
            regions = speech_regions(samples, regions)
        kwargs["vad_filter"] = False
        windows = plan_windows(samples, regions, self.window_seconds)
        if not windows:  # VAD found no speech
            return TranscriptionStream(options.language, None, duration, iter(()))
        first = windows[0]
        segments, info = self.model.transcribe(
            _slice(samples, first), **{**kwargs, "clip_timestamps": first.clip_timestamps()}
        )
        return TranscriptionStream(
            language=info.language,
            language_probability=info.language_probability,
            duration=duration,
            segments=self._windowed(samples, windows, segments, kwargs, info.language, options),
        )

    @property
    def batch_decoder(self) -> BatchedDecoder | None:
        """The batched decoder (``batch_size`` > 1), which the pool's cross-task scheduler drives."""
        return self._batched

    def speech_chunks(
        self,
        audio: Audio,
        options: DecodeOptions,
        max_gap: float | None = None,
        pause: Callable[[], None] | None = None,
    ) -> tuple[npt.NDArray[np.float32], float, list[Chunk]]:
        """Decoded samples, duration and the ≤30 s speech chunks (VAD within ``clip_timestamps``);
        regions more than ``max_gap`` seconds apart stay in separate chunks. ``pause`` is called
        between pieces of a long file's VAD (see ``vad.speech_regions``)."""
        samples = (
            decode_samples(str(audio), max_seconds=self.max_audio_seconds)
            if isinstance(audio, Path)
            else audio
        )
        duration = len(samples) / SAMPLE_RATE
        regions = speech_regions(
            samples, parse_clip_timestamps(options.clip_timestamps, duration), CHUNK_VAD, pause=pause
        )
        return samples, duration, chunk_regions(regions, max_gap=max_gap)

    def _transcribe_batched(
        self,
        decoder: BatchedDecoder,
        samples: npt.NDArray[np.float32],
        duration: float,
        task_type: TaskType,
        options: DecodeOptions,
    ) -> TranscriptionStream:
        """Speech chunks decoded ``batch_size`` at a time (see ``app.engines.batched``)."""
        _samples, _duration, chunks = self.speech_chunks(samples, options)
        if not chunks:
            return TranscriptionStream(options.language, None, duration, iter(()))
        language, probability, segments = decoder.transcribe(samples, chunks, task_type, options)
        return TranscriptionStream(language, probability, duration, segments)

    def _windowed(
        self,
        samples: npt.NDArray[np.float32],
        windows: list[Window],
        first: Iterable[FwSegment],
        kwargs: dict[str, Any],
        language: str,
        options: DecodeOptions,
    ) -> Iterator[Segment]:
        """Decode window after window; the language found in the first holds for all of them."""
        index = 0
        prompt_tail = ""
        for number, window in enumerate(windows):
            if number == 0:
                segments = first
            else:
                prompt = options.initial_prompt
                if options.condition_on_previous_text and prompt_tail:
                    prompt = prompt_tail  # carry the context across the cut, as Whisper does between windows
                segments, _info = self.model.transcribe(
                    _slice(samples, window),
                    **{
                        **kwargs,
                        "language": language,
                        "initial_prompt": prompt,
                        "clip_timestamps": window.clip_timestamps(),
                    },
                )
            for segment in convert_segments(segments, offset=window.start):
                yield segment.model_copy(update={"id": index})
                index += 1
                prompt_tail = (prompt_tail + segment.text)[-400:]

    def close(self) -> None:
        self._model = None
        self._batched = None


def _slice(samples: npt.NDArray[np.float32], window: Window) -> npt.NDArray[np.float32]:
    return samples[int(window.start * SAMPLE_RATE) : round(window.end * SAMPLE_RATE)]


def create_model(load: ModelLoad) -> FasterWhisperModel:
    """The engine's entry in ``app.engines.registry``: resolve the model and load it."""
    settings, device = load.whisper, load.device
    resolved = load.resolver.resolve(load.model)
    compute_type = settings.resolved_compute_type(device.kind)
    # Each lane runs its batches on its own worker: the instance's threads are shared out.
    cpu_threads = max(1, load.cpu_threads // settings.concurrent_batches)
    logger.info(
        "loading faster_whisper/%s from %s on %s (%s, %d thread(s) per worker)",
        load.model,
        resolved.location,
        device.name,
        compute_type,
        cpu_threads,
    )
    return FasterWhisperModel(
        load.model,
        resolved.location,
        device=device.kind,
        device_index=device.index,
        compute_type=compute_type,
        cpu_threads=cpu_threads,
        num_workers=settings.workers_per_instance,
        batch_size=settings.batch_size,
        short_windows=settings.short_windows,
        window_seconds=settings.window_seconds,
        download_root=settings.model_dir / "hub",
        max_audio_seconds=load.max_audio_seconds,
    )
