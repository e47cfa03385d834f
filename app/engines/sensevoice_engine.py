"""SenseVoice engine (FunAudioLLM's SenseVoiceSmall) through sherpa-onnx.

sherpa-onnx (k2-fsa) was chosen over funasr-onnx: its wheel bundles onnxruntime and the fbank
front end (no torch, librosa or jieba), decodes a list of streams as one padded batch, and
returns per-token timestamps, the language, emotion and event tags as separate fields. See
docs/engines.md for the comparison.

The model is a local directory (``SENSEVOICE__MODEL_DIR``) with ``model.int8.onnx`` (or
``model.onnx``) and ``tokens.txt``. Audio is cut by Silero VAD into speech pieces of at most
``max_piece_seconds`` (30 s), decoded ``batch_size`` at a time; each piece becomes a segment
with its token timings, emotion and event.
"""

from __future__ import annotations

import logging
import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engines.base import SAMPLE_RATE, Audio, ModelLoad, TranscriptionStream
from app.engines.vad import Region, parse_clip_timestamps, speech_regions
from app.media.samples import decode_samples
from app.schemas.result import Segment, Word
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)

LANGUAGES = ("zh", "en", "ja", "ko", "yue")
"""Languages SenseVoiceSmall is trained on; no language means it detects one."""

MODEL_FILES = ("model.int8.onnx", "model.onnx")
"""Model file names looked for in the directory, in order (sherpa-onnx's release names)."""

MERGE_GAP_SECONDS = 1.0
"""Speech regions closer than this join one piece (while it stays within the piece limit)."""

_TAG = re.compile(r"<\|[^|<>]*\|>")


def model_files(directory: Path) -> tuple[Path, Path]:
    """The model and tokens files in ``directory``; ``FileNotFoundError`` says which is missing."""
    if not directory.is_dir():
        raise FileNotFoundError(f"the SenseVoice model directory {directory} does not exist")
    model = next((directory / name for name in MODEL_FILES if (directory / name).is_file()), None)
    if model is None:
        raise FileNotFoundError(f"{directory} holds neither {' nor '.join(MODEL_FILES)}")
    tokens = directory / "tokens.txt"
    if not tokens.is_file():
        raise FileNotFoundError(f"{directory} has no tokens.txt")
    return model, tokens


def unavailable(load: ModelLoad) -> str | None:
    """Why the engine cannot run here: no model directory configured, or its files are missing."""
    directory = load.sensevoice.model_dir
    if directory is None:
        return "SENSEVOICE__MODEL_DIR is not set (see docs/engines.md for the model download)"
    try:
        model_files(directory)
    except FileNotFoundError as exc:
        return str(exc)
    return None


def unsupported(task_type: TaskType, options: DecodeOptions) -> str | None:
    """SenseVoice transcribes only, in its five languages."""
    if task_type is TaskType.translate:
        return "the sensevoice engine cannot translate; use a Whisper engine"
    if options.language is not None and options.language not in LANGUAGES:
        return f"the sensevoice engine knows the languages {', '.join(LANGUAGES)}, not {options.language!r}"
    return None


def create_model(load: ModelLoad) -> SenseVoiceModel:
    """The engine's entry in ``config.engines``."""
    problem = unavailable(load)
    if problem is not None:
        raise FileNotFoundError(problem)
    assert load.sensevoice.model_dir is not None
    logger.info("loading sensevoice from %s on %s", load.sensevoice.model_dir, load.device.name)
    return SenseVoiceModel(
        load.model,
        load.sensevoice.model_dir,
        device=load.device.name,
        provider="cuda" if load.device.kind == "cuda" else "cpu",
        num_threads=load.cpu_threads,
        batch_size=load.sensevoice.batch_size,
        max_piece_seconds=load.sensevoice.max_piece_seconds,
        max_audio_seconds=load.max_audio_seconds,
    )


def speech_pieces(regions: list[Region], max_seconds: float) -> list[Region]:
    """Speech regions as pieces of at most ``max_seconds``: neighbours less than
    ``MERGE_GAP_SECONDS`` apart are joined while the piece stays within the limit; a longer
    region is cut into equal parts."""
    pieces: list[Region] = []
    for start, end in regions:
        parts = max(1, int(np.ceil((end - start) / max_seconds)))
        step = (end - start) / parts
        for number in range(parts):
            low, high = start + number * step, start + (number + 1) * step
            if pieces and low - pieces[-1][1] < MERGE_GAP_SECONDS and high - pieces[-1][0] <= max_seconds:
                pieces[-1] = (pieces[-1][0], high)
            else:
                pieces.append((low, high))
    return pieces


def _tag(value: str) -> str | None:
    """``<|HAPPY|>`` → ``HAPPY``; empty → ``None``."""
    inner = value.strip().removeprefix("<|").removesuffix("|>")
    return inner or None


def _clean(text: str) -> str:
    """Text without any tag left and with sentencepiece word marks as spaces."""
    return _TAG.sub("", text).replace("▁", " ").strip()


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class SenseVoiceModel:
    """One loaded sherpa-onnx SenseVoice recognizer. Decoding holds a lock: the recognizer's
    language and ITN settings are switched per call."""

    engine = "sensevoice"

    def __init__(
        self,
        name: str,
        directory: Path,
        *,
        device: str,
        provider: str,
        num_threads: int,
        batch_size: int,
        max_piece_seconds: float,
        max_audio_seconds: float | None = None,
    ) -> None:
        import sherpa_onnx

        model, tokens = model_files(directory)
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.max_piece_seconds = max_piece_seconds
        self.max_audio_seconds = max_audio_seconds
        self._lock = threading.Lock()
        self._recognizer: Any = sherpa_onnx.OfflineRecognizer.from_sense_voice(
            model=str(model),
            tokens=str(tokens),
            num_threads=num_threads,
            provider=provider,
            language="auto",
            use_itn=True,
        )

    def transcribe(self, audio: Audio, task_type: TaskType, options: DecodeOptions) -> TranscriptionStream:
        problem = unsupported(task_type, options)
        if problem is not None:
            raise ValueError(problem)
        samples = (
            decode_samples(str(audio), max_seconds=self.max_audio_seconds)
            if isinstance(audio, Path)
            else audio
        )
        duration = len(samples) / SAMPLE_RATE
        regions = speech_regions(samples, parse_clip_timestamps(options.clip_timestamps, duration))
        pieces = speech_pieces(regions, self.max_piece_seconds)
        if not pieces:
            return TranscriptionStream(options.language, None, duration, iter(()))
        # The first batch is decoded now: the language is known before the segments are read.
        first = self._decode(samples, pieces[: self.batch_size], options)
        languages = Counter(segment_language for segment_language, _ in first if segment_language)
        language = options.language or (languages.most_common(1)[0][0] if languages else None)
        return TranscriptionStream(
            language=language,
            language_probability=None,
            duration=duration,
            segments=self._segments(samples, pieces, first, options),
        )

    def _segments(
        self,
        samples: npt.NDArray[np.float32],
        pieces: list[Region],
        first: list[tuple[str | None, Segment]],
        options: DecodeOptions,
    ) -> Iterator[Segment]:
        """The first batch's segments, then each later batch decoded as the iterator advances."""
        index = 0
        decoded = first
        for offset in range(0, len(pieces), self.batch_size):
            if offset:
                decoded = self._decode(samples, pieces[offset : offset + self.batch_size], options)
            for _language, segment in decoded:
                if segment.text:
                    yield segment.model_copy(update={"id": index})
                    index += 1

    def _decode(
        self, samples: npt.NDArray[np.float32], pieces: list[Region], options: DecodeOptions
    ) -> list[tuple[str | None, Segment]]:
        """Decode ``pieces`` as one batch; each gives its language and a segment."""
        recognizer = self._recognizer
        if recognizer is None:
            raise RuntimeError(f"model {self.name} was unloaded")
        with self._lock:
            config = recognizer.config
            config.model_config.sense_voice.language = options.language or "auto"
            config.model_config.sense_voice.use_itn = options.use_itn
            recognizer.recognizer.set_config(config)
            streams = []
            for start, end in pieces:
                stream = recognizer.create_stream()
                piece = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
                stream.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(piece, dtype=np.float32))
                streams.append(stream)
            recognizer.decode_streams(streams)
        return [
            self._segment(stream.result, start, end, options)
            for stream, (start, end) in zip(streams, pieces, strict=True)
        ]

    @staticmethod
    def _segment(result: Any, start: float, end: float, options: DecodeOptions) -> tuple[str | None, Segment]:
        text = _clean(result.text)
        if text[:1].isascii() and text[:1].isalnum():
            text = " " + text  # segments join without separators; Latin words need a space
        tokens = [str(token) for token in result.tokens]
        times = [float(time) for time in result.timestamps]
        log_probs = [float(value) for value in getattr(result, "ys_log_probs", [])]
        words = None
        if options.word_timestamps and len(times) == len(tokens):
            words = []
            for number, token in enumerate(tokens):
                word = _clean(token) if not token.startswith("▁") else " " + _clean(token)
                if not word.strip():
                    continue
                word_start = round(start + times[number], 3)
                word_end = round(start + times[number + 1], 3) if number + 1 < len(times) else round(end, 3)
                probability = float(np.exp(log_probs[number])) if len(log_probs) == len(tokens) else 1.0
                words.append(
                    Word(start=word_start, end=max(word_start, word_end), word=word, probability=probability)
                )
        language = _tag(result.lang)
        segment = Segment(
            id=0,
            start=round(start, 3),
            end=round(end, 3),
            text=text,
            avg_logprob=float(np.mean(log_probs)) if log_probs else 0.0,
            no_speech_prob=1.0 if language == "nospeech" else 0.0,
            compression_ratio=_compression_ratio(text),
            temperature=0.0,
            words=words,
            emotion=_tag(result.emotion),
            event=_tag(result.event),
        )
        return (language if language in LANGUAGES else None), segment

    def close(self) -> None:
        self._recognizer = None
