"""faster-whisper (CTranslate2) engine.

Every task is decoded with Whisper's own long-form algorithm, window after window, the log-mel
input computed per window (``app.engines.longform``). Alone (``transcribe``) a task is one
stream decoded one window per step: the plain sequential path. With ``batch_size`` > 1 the
pool's ``BatchScheduler`` decodes the streams of many tasks, and pieces of long ones, in one
batch (``prepare`` gets a task's audio ready for it).

``hallucination_silence_threshold`` is honoured by faster-whisper's own ``transcribe`` only:
a task that sets it is decoded by the library, on the whole file, sequentially.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment as FwSegment

from app.engines.base import SAMPLE_RATE, Audio, BatchCapableModel, ModelLoad, TranscriptionStream
from app.engines.batch_scheduler import PreparedAudio
from app.engines.batched import BatchedDecoder
from app.engines.longform import (
    Clip,
    Stream,
    decode_step,
    loudest_level,
    seconds_to_frames,
    streams_supported,
)
from app.engines.vad import find_pauses, format_clip_timestamps, parse_clip_timestamps, speech_regions
from app.media.samples import decode_samples
from app.schemas.result import Segment, Word
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)

SPLITTABLE_SECONDS = 60.0
"""Only tasks longer than this are searched for pauses to split them at (``prepare``)."""


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


class FasterWhisperModel(BatchCapableModel):
    """One loaded ``WhisperModel`` and its batched decoder (see the module doc)."""

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
        download_root: Path | None = None,
        max_audio_seconds: float | None = None,
    ) -> None:
        self.name = name
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
        self._decoder: BatchedDecoder | None = BatchedDecoder(
            self._model, batch_size, short_windows=short_windows
        )

    @property
    def model(self) -> WhisperModel:
        if self._model is None:
            raise RuntimeError(f"model {self.name} was unloaded")
        return self._model

    @property
    def batch_decoder(self) -> BatchedDecoder | None:
        """The decoder the pool's cross-task scheduler drives (``batch_size`` > 1), else ``None``."""
        return self._decoder if self.batch_size > 1 else None

    @property
    def decoder(self) -> BatchedDecoder:
        if self._decoder is None:
            raise RuntimeError(f"model {self.name} was unloaded")
        return self._decoder

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        """The sequential path: ``prepare`` then ``start`` (the first window decoded now, the
        rest as ``segments`` is iterated)."""
        return self.start(self.prepare(audio, options), task_type, options)

    def start(
        self, prepared: PreparedAudio, task_type: TaskType, options: DecodeOptions
    ) -> TranscriptionStream:
        """The sequential path on prepared audio: one stream, one window per step; the first
        window is decoded now (the language is known), the rest as ``segments`` is iterated."""
        if not streams_supported(options):
            return self._library_transcribe(prepared.samples, prepared.clips, task_type, options)
        decoder = self.decoder
        language = options.language if decoder.multilingual else "en"
        stream = Stream(
            prepared.samples,
            prepared.clips,
            task_type,
            options,
            language,
            None if language is None else 1.0,
            short_windows=decoder.short_windows,
            loudest=prepared.loudest,
        )
        if stream.done:
            return TranscriptionStream(language, None, prepared.duration, iter(()))
        decode_step(decoder, [stream])
        return TranscriptionStream(
            stream.language, stream.language_probability, prepared.duration, _stepped(decoder, stream)
        )

    def prepare(
        self, audio: Audio, options: DecodeOptions, pause: Callable[[], None] | None = None
    ) -> PreparedAudio:
        """Decoded samples, what to decode (``vad_filter``'s Silero VAD is searched in pieces with
        ``pause`` called between them; see ``vad.speech_regions``), and the pauses a long task may
        be split at (``vad.find_pauses``)."""
        samples = (
            decode_samples(str(audio), max_seconds=self.max_audio_seconds)
            if isinstance(audio, Path)
            else audio
        )
        duration = len(samples) / SAMPLE_RATE
        clips = task_clips(samples, options, pause)
        if not streams_supported(options):  # the library's own transcribe: samples and clips only
            return PreparedAudio(samples, duration, clips, [])
        loudest = loudest_level(self.model, samples)
        if duration <= SPLITTABLE_SECONDS or self.batch_size == 1:
            return PreparedAudio(samples, duration, clips, [], loudest)
        pauses = find_pauses(samples)
        cuts = [seconds_to_frames(moment) for moment in pauses.cuts]
        meetings = [seconds_to_frames(moment) for moment in pauses.meetings]
        return PreparedAudio(samples, duration, clips, cuts, loudest, meetings, pauses.loud)

    def _library_transcribe(
        self, samples: npt.NDArray[np.float32], clips: list[Clip], task_type: TaskType, options: DecodeOptions
    ) -> TranscriptionStream:
        kwargs = decode_kwargs(task_type, options)
        kwargs["vad_filter"] = False  # its speech is in ``clips`` already
        kwargs["clip_timestamps"] = format_clip_timestamps([(a / 100, b / 100) for a, b in clips]) or "0"
        segments, info = self.model.transcribe(samples, **kwargs)
        return TranscriptionStream(
            info.language, info.language_probability, len(samples) / SAMPLE_RATE, convert_segments(segments)
        )

    def close(self) -> None:
        self._model = None
        self._decoder = None


def task_clips(
    samples: npt.NDArray[np.float32], options: DecodeOptions, pause: Callable[[], None] | None = None
) -> list[Clip]:
    """What a task decodes, in frames: its ``clip_timestamps`` (all of it when unset), and of
    those only the speech when ``vad_filter`` is set."""
    duration = len(samples) / SAMPLE_RATE
    regions = parse_clip_timestamps(options.clip_timestamps, duration)
    if options.vad_filter:
        regions = speech_regions(samples, regions, pause=pause)
    if regions is None:
        regions = [(0.0, duration)]
    return [(seconds_to_frames(start), seconds_to_frames(end)) for start, end in regions]


def _stepped(decoder: BatchedDecoder, stream: Stream) -> Iterator[Segment]:
    """The stream's segments, decoding one more window whenever the ones so far are used up."""
    emitted = 0
    while True:
        while emitted < len(stream.segments):
            yield stream.segments[emitted].model_copy(update={"id": emitted})
            emitted += 1
        if stream.done:
            return
        decode_step(decoder, [stream])


def create_model(load: ModelLoad) -> FasterWhisperModel:
    """The engine's entry in ``config.engines``: resolve the model and load it."""
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
        download_root=settings.model_dir / "hub",
        max_audio_seconds=load.max_audio_seconds,
    )
