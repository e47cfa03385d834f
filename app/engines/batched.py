"""Batched decoding for faster-whisper: many ≤30 s speech chunks per CTranslate2 call.

Speech regions (Silero VAD, or the caller's ``clip_timestamps``) are cut into chunks of at most
30 s. Each batch of ``batch_size`` chunks is encoded and decoded in one ``encode`` and one
``generate`` call, and each chunk's tokens are split into segments on the original timeline.

**Short windows.** Whisper was trained on 30 s windows, but its encoder runs on fewer frames
too, and its cost grows faster than the window: a 10 s window takes about a sixth of a 30 s
one's time. So each chunk is encoded in a window cut to its speech plus ``WINDOW_TAIL_SECONDS``,
rounded up to ``WINDOW_STEP_SECONDS`` (never shorter: with less context Whisper loops). On the
shared clips this kept English WER equal (tiny.en) or better (base), and the error of the other
languages equal or better, against full windows (``bench/RESULTS.md``). Rows of one
``generate`` call share a window length, so a batch is decoded in one call per length.

What batching cannot honour, documented rather than hidden:
* chunks are independent: no previous-text prompt (``condition_on_previous_text``) across them;
* one decoding pass at the first temperature: no temperature fallback;
* no word timestamps: tasks asking for them take the sequential path (see the engine).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.vad import VadOptions

from app.engines.base import SAMPLE_RATE
from app.engines.vad import Region
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType

CHUNK_SECONDS = 30.0
MEL_FRAMES_PER_SECOND = 100
"""Log-mel frames per second of audio (10 ms hop)."""
ENCODER_FRAMES_PER_SECOND = 50
"""Encoder output frames per second of audio (the encoder halves the mel frames)."""
TIME_PRECISION = 0.02
WINDOW_STEP_SECONDS = 10.0
"""Short windows are cut in steps of this many seconds, and are never shorter: below about 10 s
of context Whisper (tiny.en) repeats itself on short clips."""
WINDOW_TAIL_SECONDS = 1.0
"""Silence a short window keeps after its chunk's speech, so the last words are not taken for
speech cut off at the window's end."""
T = TypeVar("T")
CHUNK_VAD = VadOptions(max_speech_duration_s=CHUNK_SECONDS - 1.0)
"""VAD for batched decoding: speech longer than a window is split at its last pause of 0.1 s or
more before 29 s (Silero's own rule), padded 0.4 s each side, so a dense stretch of speech is not
cut mid-word at every 30 s by ``chunk_regions``: in the throughput workload's 2-minute files
(clips 0.5 s apart, one region for the default VAD) that cut had tripled the WER."""


@dataclass(frozen=True)
class Chunk:
    start: float
    end: float


def chunk_regions(
    regions: list[Region], limit: float = CHUNK_SECONDS, max_gap: float | None = None
) -> list[Chunk]:
    """Merge neighbouring regions into chunks of at most ``limit`` seconds; split longer ones.

    With ``max_gap``, regions further apart than that stay in separate chunks (the cross-task
    scheduler packs them again with short gaps, so long silences are never decoded)."""
    chunks: list[Chunk] = []
    start: float | None = None
    end = 0.0
    for region_start, region_end in regions:
        cursor = region_start
        while region_end - cursor > limit:  # a region longer than one window
            if start is not None:
                chunks.append(Chunk(start, end))
                start = None
            chunks.append(Chunk(cursor, cursor + limit))
            cursor += limit
        if start is not None and region_end - start <= limit and (max_gap is None or cursor - end <= max_gap):
            end = region_end
            continue
        if start is not None:
            chunks.append(Chunk(start, end))
        start, end = cursor, region_end
    if start is not None:
        chunks.append(Chunk(start, end))
    return chunks


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def sampling_options(options: DecodeOptions) -> tuple[float, dict[str, float | int]]:
    """The one temperature a batch decodes at, and CTranslate2's search arguments for it.

    Chunks can share one ``generate`` call only when these are equal (see ``batch_key``)."""
    temperature = options.temperature[0] if isinstance(options.temperature, list) else options.temperature
    if temperature > 0:
        return temperature, {
            "beam_size": 1,
            "num_hypotheses": options.best_of,
            "sampling_topk": 0,
            "sampling_temperature": temperature,
        }
    return temperature, {"beam_size": options.beam_size, "patience": options.patience}


def batch_key(options: DecodeOptions) -> tuple[float, tuple[tuple[str, float | int], ...]]:
    """Chunks whose options give the same key can be decoded in one batch."""
    temperature, sampling = sampling_options(options)
    return temperature, tuple(sorted(sampling.items()))


def window_seconds(length: float, *, short: bool = True) -> float:
    """Seconds of the window a chunk of ``length`` seconds is encoded in (see the module doc)."""
    if not short:
        return CHUNK_SECONDS
    steps = max(1, math.ceil((length + WINDOW_TAIL_SECONDS) / WINDOW_STEP_SECONDS - 1e-9))
    return min(CHUNK_SECONDS, steps * WINDOW_STEP_SECONDS)


def _batch(features: Sequence[npt.NDArray[np.float32]]) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(features)))


def _same_shape(rows: Sequence[npt.NDArray[np.float32]]) -> list[list[int]]:
    """Row numbers grouped by the shape of their array (windows of one length), in order of appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for number, row in enumerate(rows):
        groups.setdefault(row.shape, []).append(number)
    return list(groups.values())


@dataclass
class Encoded:
    """The encoder output of a batch's windows. Rows of one ``generate`` call must have windows
    of one length, so rows are kept in groups of equal length, each one ``StorageView`` on the
    model's device."""

    groups: list[tuple[list[int], ctranslate2.StorageView]]
    rows: int

    def each_group(self, run: Callable[[list[int], ctranslate2.StorageView], list[T]]) -> list[T]:
        """``run`` on every group (its row numbers and encoder output), results in row order."""
        results: list[T | None] = [None] * self.rows
        for numbers, view in self.groups:
            for number, result in zip(numbers, run(numbers, view), strict=True):
                results[number] = result
        return results  # type: ignore[return-value]

    def on_host(self) -> list[npt.NDArray[np.float32]]:
        """Every row's encoder output (frames × model width) on the host, each group copied once."""
        rows: list[npt.NDArray[np.float32]] = [np.empty(0, dtype=np.float32)] * self.rows
        for numbers, view in self.groups:
            host: npt.NDArray[np.float32] = np.asarray(view.to_device(ctranslate2.Device.cpu))
            for position, number in enumerate(numbers):
                rows[number] = host[position]
        return rows


@dataclass
class ChunkPrompt:
    """What one chunk's row of a batch needs besides its audio: tokenizer and prompt tokens."""

    tokenizer: Tokenizer
    prompt: list[int]


class BatchedDecoder:
    """Encodes and decodes speech chunks in batches with a loaded ``WhisperModel``.

    ``transcribe`` batches the chunks of one file; the cross-task scheduler
    (``app.engines.batch_scheduler``) calls ``features``, ``encode``, ``detect_language``,
    ``prompt``, ``generate`` and ``segments`` directly, with rows of many tasks in one batch.
    """

    def __init__(self, model: WhisperModel, batch_size: int, *, short_windows: bool = True) -> None:
        self._model = model
        self.batch_size = batch_size
        self.short_windows = short_windows
        self._silence: dict[int, npt.NDArray[np.float32]] = {}

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    @property
    def _on_cpu(self) -> bool:
        return bool(self._model.model.device == "cpu")

    def window(self, length: float) -> float:
        """Seconds of the window a chunk (or packed row) of ``length`` seconds is encoded in."""
        return window_seconds(length, short=self.short_windows)

    def features(
        self, samples: npt.NDArray[np.float32], chunk: Chunk, window: float | None = None
    ) -> npt.NDArray[np.float32]:
        """Log-mel frames of one chunk, padded to exactly its window (``window``, or the one its
        length gets): no second window of padding to analyse."""
        seconds = self.window(chunk.end - chunk.start) if window is None else window
        frames = round(seconds * MEL_FRAMES_PER_SECOND)
        audio = samples[int(chunk.start * SAMPLE_RATE) : int(chunk.end * SAMPLE_RATE)]
        audio = audio[: round(seconds * SAMPLE_RATE)]
        audio = np.pad(audio, (0, max(0, round(seconds * SAMPLE_RATE) - len(audio))))
        mel: npt.NDArray[np.float32] = self._model.feature_extractor(audio, padding=False)
        mel = mel[:, :frames]
        if mel.shape[1] < frames:
            mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))
        return mel.astype(np.float32)

    def encode(
        self, features: Sequence[npt.NDArray[np.float32]], pause: Callable[[], None] | None = None
    ) -> Encoded:
        """The encoder output of every window, grouped by window length. On a CPU the windows are
        encoded one at a time and stacked: about 20 % faster than one batched call there (tiny.en
        and base, int8, 2 cores; the tokens decoded from it are identical). On a GPU each length
        is encoded in one call. ``pause`` is called before each call (a point to yield at)."""
        model = self._model.model
        groups = []
        for numbers in _same_shape(features):
            windows = [features[number] for number in numbers]
            if self._on_cpu and len(windows) > 1:
                outputs = []
                for window in windows:
                    if pause is not None:
                        pause()
                    outputs.append(np.asarray(model.encode(_batch([window]), to_cpu=False)))
                view = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(outputs)))
            else:
                if pause is not None:
                    pause()
                view = model.encode(_batch(windows), to_cpu=False)
            groups.append((numbers, view))
        return Encoded(groups, len(features))

    def detect_language(self, encoded: Encoded) -> list[tuple[str, float]]:
        """The most likely language of every row of ``encoded`` (``en`` for English-only models)."""
        if not self.multilingual:
            return [("en", 1.0)] * encoded.rows
        model = self._model.model
        return encoded.each_group(
            lambda _numbers, view: [
                (ranked[0][0][2:-2], ranked[0][1]) for ranked in model.detect_language(view)
            ]
        )

    def detect_language_spans(
        self, encoded: Encoded, spans: list[tuple[int, float, float]]
    ) -> list[tuple[str, float]]:
        """The language of stretches of packed windows: (row, start s, end s) each.

        Each stretch's frames of the row's encoder output are laid over the encoder output of
        silence, and the language is detected on that: on the shared clips this agrees with
        detecting on each clip alone, where the whole window's answer is that of its loudest
        speaker."""
        if not spans:
            return []
        host = encoded.on_host()
        views = []
        for row, start, end in spans:
            frames = host[row]
            view = self._silence_encoding(frames.shape[0]).copy()
            first = int(start * ENCODER_FRAMES_PER_SECOND)
            last = min(frames.shape[0], math.ceil(end * ENCODER_FRAMES_PER_SECOND) + 1)
            view[first:last] = frames[first:last]
            views.append(view)
        groups = []
        for numbers in _same_shape(views):
            stacked = _batch([views[number] for number in numbers])
            groups.append((numbers, stacked if self._on_cpu else stacked.to_device(ctranslate2.Device.cuda)))
        return self.detect_language(Encoded(groups, len(views)))

    def _silence_encoding(self, frames: int) -> npt.NDArray[np.float32]:
        """The encoder output of a window of silence that has ``frames`` encoder frames."""
        if frames not in self._silence:
            seconds = frames / ENCODER_FRAMES_PER_SECOND
            silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
            encoded = self.encode([self.features(silence, Chunk(0.0, 1.0), window=seconds)])
            self._silence[frames] = encoded.on_host()[0]
        return self._silence[frames]

    def prompt(self, task_type: TaskType, options: DecodeOptions, language: str) -> ChunkPrompt:
        model = self._model
        tokenizer = Tokenizer(model.hf_tokenizer, self.multilingual, task=task_type.value, language=language)
        previous = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        return ChunkPrompt(tokenizer, model.get_prompt(tokenizer, previous, hotwords=options.hotwords))

    def generate(
        self, encoded: Encoded, prompts: list[list[int]], options: DecodeOptions
    ) -> list[ctranslate2.models.WhisperGenerationResult]:
        """One ``generate`` call per window length; every row must share ``batch_key(options)``."""
        _temperature, sampling = sampling_options(options)

        def run(
            numbers: list[int], view: ctranslate2.StorageView
        ) -> list[ctranslate2.models.WhisperGenerationResult]:
            results: list[ctranslate2.models.WhisperGenerationResult] = self._model.model.generate(
                view,
                [prompts[number] for number in numbers],
                max_length=self._model.max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=[-1],
                max_initial_timestamp_index=50,
                **sampling,
            )
            return results

        return encoded.each_group(run)

    def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        chunks: list[Chunk],
        task_type: TaskType,
        options: DecodeOptions,
    ) -> tuple[str, float | None, Iterator[Segment]]:
        """Encode the first batch now (its encoder output also answers language detection, so
        nothing is encoded twice); the returned iterator decodes batch after batch."""
        first = chunks[: self.batch_size]
        encoded = self.encode([self.features(samples, chunk) for chunk in first])
        language, probability = options.language, None
        if language is None:
            language, detected = self.detect_language(encoded)[0]
            probability = detected if self.multilingual else None
        return language, probability, self._decode(samples, chunks, encoded, task_type, options, language)

    def _decode(
        self,
        samples: npt.NDArray[np.float32],
        chunks: list[Chunk],
        first_encoded: Encoded,
        task_type: TaskType,
        options: DecodeOptions,
        language: str,
    ) -> Iterator[Segment]:
        prompt = self.prompt(task_type, options, language)
        index = 0
        for first in range(0, len(chunks), self.batch_size):
            batch = chunks[first : first + self.batch_size]
            encoded = first_encoded if first == 0 else self.encode([self.features(samples, c) for c in batch])
            results = self.generate(encoded, [prompt.prompt] * len(batch), options)
            for chunk, result in zip(batch, results, strict=True):
                for segment in self.segments(chunk, result, prompt.tokenizer, options):
                    yield segment.model_copy(update={"id": index})
                    index += 1

    def segments(
        self,
        chunk: Chunk,
        result: ctranslate2.models.WhisperGenerationResult,
        tokenizer: Tokenizer,
        options: DecodeOptions,
    ) -> Iterator[Segment]:
        """One chunk's tokens as segments on the original timeline (``id`` 0; the caller numbers them)."""
        temperature, _sampling = sampling_options(options)
        tokens: list[int] = result.sequences_ids[0]
        length = len(tokens)
        avg_logprob = result.scores[0] * (length**1.0) / (length + 1)
        if (
            options.no_speech_threshold is not None
            and result.no_speech_prob > options.no_speech_threshold
            and (options.log_prob_threshold is None or avg_logprob < options.log_prob_threshold)
        ):
            return
        begin = tokenizer.timestamp_begin
        pieces: list[tuple[float, float, list[int]]] = []
        start: float | None = None
        text: list[int] = []
        for token in tokens:
            if token >= begin:
                moment = (token - begin) * TIME_PRECISION
                if start is not None and text:
                    pieces.append((start, moment, text))
                    start, text = None, []
                else:
                    start = moment
            elif token < tokenizer.eot:
                text.append(token)
        if text:
            pieces.append((start or 0.0, chunk.end - chunk.start, text))
        for piece_start, piece_end, piece_tokens in pieces:
            words = tokenizer.decode(piece_tokens)
            if not words.strip():
                continue
            yield Segment(
                id=0,
                start=round(chunk.start + piece_start, 3),
                end=round(min(chunk.start + max(piece_end, piece_start), chunk.end), 3),
                text=words,
                avg_logprob=avg_logprob,
                no_speech_prob=result.no_speech_prob,
                compression_ratio=_compression_ratio(words),
                temperature=temperature,
                seek=round(chunk.start * 100),
                tokens=list(piece_tokens),
            )
