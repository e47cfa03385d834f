"""Whisper's long-form decoding, one window per stream per step, many streams per step.

A *stream* is a stretch of one task's audio (the whole file, its ``clip_timestamps``, its VAD
speech, or a piece of a long file cut at a pause). It is decoded exactly as
``faster_whisper.WhisperModel.generate_segments`` (1.0.3) decodes a file:

* the next window starts at the last complete timestamp the previous window ended on, so a
  sentence cut off at a window's end is decoded again, whole, in the next window;
* the text decoded so far (since the last prompt reset) is the prompt of the next window;
* a window whose text is too repetitive (compression ratio) or too improbable (average log
  probability) is decoded again at the next temperature; when every temperature fails, the
  best attempt is kept;
* a window the model finds silent (no-speech probability) is skipped;
* word timestamps are aligned on the window's encoder output.

What differs from the library is where the work happens: ``decode_step`` takes the next window
of up to ``batch_size`` streams, encodes them, and decodes them in one CTranslate2 ``generate``
call per (window length, search options) with a prompt per row. A row that needs the next
temperature stays at its window and is decoded again in a later step. The log-mel input is
computed per window (no whole-file features are held), and a stream that holds less than 30 s
of audio (a short clip) is encoded in a window cut to its audio plus 1 s, in 10 s steps
(``batched.encoded_seconds``): the encoder's cost grows faster than the window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio
from faster_whisper.utils import get_end

from app.engines.base import SAMPLE_RATE
from app.engines.batched import BatchedDecoder, encoded_seconds, sampling_options
from app.engines.vad import PAUSE_FRAME, speech_regions
from app.schemas.result import Segment, Word
from app.schemas.task import DecodeOptions, TaskType

HOP = 160
"""Audio samples per log-mel frame."""
FRAMES_PER_SECOND = SAMPLE_RATE // HOP
WINDOW_FRAMES = 30 * FRAMES_PER_SECOND
INPUT_STRIDE = 2
"""Log-mel frames per timestamp position (the encoder halves the frames)."""
TIME_PRECISION = 0.02
N_FFT = 400
CONTEXT_FRAMES = 2
"""Frames of audio before a window that its features are computed with (an STFT frame reaches
``N_FFT / 2`` samples back)."""
PROMPT_RESET_ON_TEMPERATURE = 0.5
MAX_INITIAL_TIMESTAMP_INDEX = 50
"""Whisper's ``max_initial_timestamp`` of 1 s, in timestamp positions."""
UNHEARD_SECONDS = 1.0
"""Loud audio no word of a window accounts for, from which the window is decoded again
(``Stream._unheard``)."""
WORD_MARGIN_SECONDS = 0.2
"""Audio on either side of an aligned word taken as the word's (alignment is coarse)."""
LONGEST_WORD_SECONDS = 1.5
"""At most this much audio before an aligned word's end is taken as the word's: alignment
stretches the first word after skipped speech back over it."""
MIN_UNHEARD_SPEECH_SECONDS = 0.5
"""Speech (Silero VAD) that stretch must hold to be decoded again."""
RESUME_LEAD_SECONDS = 0.3
"""A window decoded again after unheard speech starts this long before it."""

logger = logging.getLogger(__name__)

Clip = tuple[int, int]
"""A stretch to decode, in log-mel frames (10 ms) of the task's audio: start, end."""


def streams_supported(options: DecodeOptions) -> bool:
    """Whether the stream decoder honours every option: ``hallucination_silence_threshold`` is
    left to faster-whisper's own ``transcribe`` (sequential, on the whole file)."""
    return options.hallucination_silence_threshold is None


def temperatures(options: DecodeOptions) -> list[float]:
    value = options.temperature
    return list(value) if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Attempt:
    result: ctranslate2.models.WhisperGenerationResult
    avg_logprob: float
    temperature: float
    compression_ratio: float


@dataclass(frozen=True)
class Window:
    seek: int
    """First frame."""
    size: int
    """Frames of audio in the window (at most ``WINDOW_FRAMES``)."""
    encoded_frames: int
    """Frames the window is encoded in (``size`` rounded up to a short encoding, or 3000)."""


@dataclass(eq=False)
class Stream:
    """One stream's decoding state (see the module doc). ``clips`` must be sorted and disjoint."""

    samples: npt.NDArray[np.float32]
    clips: list[Clip]
    task_type: TaskType
    options: DecodeOptions
    language: str | None
    language_probability: float | None = None
    short_windows: bool = True
    tokenizer: Tokenizer | None = None
    seek: int = 0
    clip_index: int = 0
    all_tokens: list[int] = field(default_factory=list)
    prompt_reset_since: int = 0
    last_speech_timestamp: float = 0.0
    temperature_index: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    """Segments decoded so far, on the task's timeline, in order."""
    initial_tokens_added: bool = False
    loudest: float | None = None
    """The recording's loudest log-mel level (``loudest_level``), computed at the first window."""
    horizon: int = 0
    """For a stream cut off at a pause ahead of another stream of the same task: the frame up to
    which its last window may read audio past its end (the end of the clip it was cut from). That
    window is decoded from 30 s of real audio, as the library decodes it, instead of from audio
    padded with silence, and the segments that start past the stream's end are left to the next
    stream."""
    keep_from: int = 0
    """For a stream split off another (``split``): the frame before which its speech is the
    previous stream's. It decodes the audio before it for its prompt only."""
    detected_at: int | None = None
    """The seek of the window the language was detected on: as in the library, that window is
    decoded (at every temperature) from the features of its audio padded with silence."""
    loud: npt.NDArray[np.bool_] | None = None
    """Where the task's audio is louder than its pauses, per ``vad.PAUSE_FRAME`` (a task the
    scheduler may split; ``vad.find_pauses``). Where given, a window whose words leave a second
    of it unaccounted for is decoded again from there (``_unheard``)."""
    redecoded_at: int = -1
    """The seek of the last window decoded again after unheard speech: it is taken as it comes."""

    def __post_init__(self) -> None:
        content = len(self.samples) // HOP
        self.clips = [(max(0, start), min(end, content)) for start, end in self.clips]
        self.clips = [(start, end) for start, end in self.clips if end > start]
        self.seek = self.clips[0][0] if self.clips else 0

    # ------------------------------------------------------------------ position
    @property
    def start(self) -> int:
        return self.clips[0][0] if self.clips else 0

    @property
    def end(self) -> int:
        return self.clips[-1][1] if self.clips else 0

    @property
    def frames(self) -> int:
        return sum(end - start for start, end in self.clips)

    def window(self) -> Window | None:
        """The next window to decode, or ``None`` when the stream is done."""
        while self.clip_index < len(self.clips):
            start, end = self.clips[self.clip_index]
            self.seek = max(self.seek, start)
            if self.seek >= end:
                self.clip_index += 1
                continue
            last = self.clip_index == len(self.clips) - 1
            size = min(WINDOW_FRAMES, max(end, self.horizon if last else 0) - self.seek)
            frames = WINDOW_FRAMES
            if size < WINDOW_FRAMES and self.frames <= WINDOW_FRAMES and not self.horizon:
                # Short windows for a stream that fits in one window only (a short clip): at the
                # tail of a long stream, prompted with its text, tiny.en looped in them.
                seconds = encoded_seconds(size / FRAMES_PER_SECOND, short=self.short_windows)
                frames = round(seconds * FRAMES_PER_SECOND)
            return Window(self.seek, size, frames)
        return None

    @property
    def done(self) -> bool:
        return self.window() is None

    def decoded_frames(self) -> int:
        """Frames of the stream's clips already behind its seek."""
        return sum(max(0, min(end, self.seek) - start) for start, end in self.clips)

    def remaining_frames(self) -> int:
        return self.frames - self.decoded_frames()

    def split(self, cut: int, until: int | None = None) -> Stream | None:
        """Give the audio from frame ``cut`` on to a new stream (decoded from a fresh prompt);
        ``None`` when ``cut`` is not ahead of this stream's next window.

        The two overlap from ``cut`` to ``until`` (a later pause; by default ``cut``): this stream
        decodes on to ``until`` and keeps its speech before it, the new one decodes that stretch
        for its prompt only and keeps its speech from ``until`` on. A stream that starts without
        a prompt may skip its first words (tiny.en dropped "five five" 0.5 s after a cut); this
        stream, prompted with the text before, decodes them as the library does."""
        until = cut if until is None else until
        if cut <= self.seek + WINDOW_FRAMES or not cut <= until < self.end:
            return None
        mine = [(start, min(end, until)) for start, end in self.clips if start < until]
        theirs = [(max(start, cut), end) for start, end in self.clips if end > cut]
        part = Stream(
            self.samples,
            theirs,
            self.task_type,
            self.options,
            self.language,
            self.language_probability,
            self.short_windows,
            loudest=self.loudest,
            horizon=self.horizon,
            keep_from=until,
            loud=self.loud,
        )
        # This stream's last window reads on into the next stream's audio (to the end of the
        # clip ``until`` lies in).
        self.horizon = next((end for start, end in self.clips if start < until < end), 0)
        self.clips = mine
        return part

    # ------------------------------------------------------------------ decoding
    @property
    def temperature(self) -> float:
        return temperatures(self.options)[self.temperature_index]

    def search_key(self) -> tuple[tuple[str, float | int], ...]:
        """Rows with equal keys (and window lengths) share one ``generate`` call."""
        return tuple(sorted(sampling_options(self.options, self.temperature)[1].items()))

    def set_language(self, model: WhisperModel, language: str, probability: float | None) -> None:
        self.language, self.language_probability = language, probability
        self.tokenizer = None
        self.ensure_tokenizer(model)

    def ensure_tokenizer(self, model: WhisperModel) -> Tokenizer:
        if self.tokenizer is None:
            assert self.language is not None
            self.tokenizer = Tokenizer(
                model.hf_tokenizer,
                bool(model.model.is_multilingual),
                task=self.task_type.value,
                language=self.language,
            )
        return self.tokenizer

    def context(self, model: WhisperModel) -> list[int]:
        """The prompt before ``<|startoftranscript|>``: ``<|startofprev|>``, the hotwords and the
        text decoded since the last reset, as ``WhisperModel.get_prompt`` builds it.

        Never cut to share a length with other rows: CTranslate2 batches rows only when
        ``<|startoftranscript|>`` is at the same position in each, and cutting the previous
        text (oldest tokens first) to a few bucket lengths made tiny.en skip a sentence it had
        decoded with its whole prompt. Rows of equal length share a ``generate`` call instead:
        every stream's first window (no prompt) and every window once the previous text fills
        its 223 tokens, which is from about the third window on. A row's text therefore never
        depends on the rows it is batched with."""
        if not self.initial_tokens_added:
            self.initial_tokens_added = True
            if self.options.initial_prompt:
                self.all_tokens = _encode(model, " " + self.options.initial_prompt.strip()) + self.all_tokens
        limit = model.max_length // 2 - 1
        previous = self.all_tokens[self.prompt_reset_since :][-limit:]
        hotwords = _encode(model, " " + self.options.hotwords.strip()) if self.options.hotwords else []
        if len(hotwords) >= model.max_length // 2:
            hotwords = hotwords[:limit]
        if not previous and not hotwords:
            return []
        return [model.hf_tokenizer.token_to_id("<|startofprev|>"), *hotwords, *previous]

    def prompt(self, model: WhisperModel, context: list[int]) -> list[int]:
        return [*context, *self.ensure_tokenizer(model).sot_sequence]

    def accept(
        self,
        model: WhisperModel,
        window: Window,
        result: ctranslate2.models.WhisperGenerationResult,
        encoder_output: Callable[[], ctranslate2.StorageView],
    ) -> None:
        """Take one window's result: retry at the next temperature, skip silence, or move the
        seek on and add the window's segments (``generate_with_fallback`` and the body of
        ``generate_segments`` in faster-whisper 1.0.3)."""
        tokenizer = self.ensure_tokenizer(model)
        options = self.options
        prompted = len(self.all_tokens) > self.prompt_reset_since
        tokens: list[int] = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        compression_ratio = get_compression_ratio(tokenizer.decode(tokens).strip())
        attempt = Attempt(result, avg_logprob, self.temperature, compression_ratio)
        self.attempts.append(attempt)
        needs_fallback = False
        if (
            options.compression_ratio_threshold is not None
            and compression_ratio > options.compression_ratio_threshold
        ):
            needs_fallback = True  # too repetitive
        if options.log_prob_threshold is not None and avg_logprob < options.log_prob_threshold:
            needs_fallback = True  # too improbable
        if (
            options.no_speech_threshold is not None
            and result.no_speech_prob > options.no_speech_threshold
            and options.log_prob_threshold is not None
            and avg_logprob < options.log_prob_threshold
        ):
            needs_fallback = False  # silence
        if needs_fallback and self.temperature_index + 1 < len(temperatures(options)):
            self.temperature_index += 1  # decoded again in a later step
            return
        temperature = self.temperature
        if needs_fallback:  # every temperature failed: the most probable attempt
            threshold = options.compression_ratio_threshold
            below = [a for a in self.attempts if threshold is not None and a.compression_ratio <= threshold]
            attempt = max(below or self.attempts, key=lambda a: a.avg_logprob)
        self.attempts = []
        self.temperature_index = 0
        result, avg_logprob = attempt.result, attempt.avg_logprob

        if options.no_speech_threshold is not None:
            should_skip = result.no_speech_prob > options.no_speech_threshold
            if options.log_prob_threshold is not None and avg_logprob > options.log_prob_threshold:
                should_skip = False
            if should_skip:
                self.seek += window.size
                return

        tokens = result.sequences_ids[0]
        current, seek, single_timestamp_ending = split_by_timestamps(tokenizer, tokens, window)
        self.seek = seek
        if window.seek + window.size > self.end:  # read past the end: the rest is the next stream's
            own, _theirs = self._divide(model, tokenizer, window, current, encoder_output, self.end)
            if own != current or self.seek >= self.end:
                current, self.seek, single_timestamp_ending = own, self.end, True
        if window.seek < self.keep_from:  # the previous stream's speech: the prompt only
            before, current = self._divide(model, tokenizer, window, current, encoder_output, self.keep_from)
            for piece in before:
                if piece["start"] != piece["end"] and tokenizer.decode(piece["tokens"]).strip():
                    self.all_tokens.extend(piece["tokens"])
        unheard = None
        if self.loud is not None and current and window.seek != self.redecoded_at:
            unheard = self._unheard(
                model, tokenizer, window, tokens, current, encoder_output, prompted=prompted
            )
        if unheard is not None:  # decoded again from there, without the prompt that hid it
            current, self.seek = unheard
            self.redecoded_at, single_timestamp_ending = self.seek, True
        if options.word_timestamps and current:
            model.add_word_timestamps(
                current,
                tokenizer,
                encoder_output(),
                # Cut short at unheard speech, the words are aligned with the audio before it
                # only: over the whole window, alignment spread them over the rest of it.
                window.size if unheard is None else self.seek - window.seek,
                options.prepend_punctuations,
                options.append_punctuations,
                last_speech_timestamp=self.last_speech_timestamp,
            )
            if window.seek < self.keep_from:
                _not_before(current, self.keep_from / FRAMES_PER_SECOND)
            time_offset = window.seek / FRAMES_PER_SECOND
            if not single_timestamp_ending:
                last_word_end = get_end(current)
                if last_word_end is not None and last_word_end > time_offset:
                    self.seek = round(last_word_end * FRAMES_PER_SECOND)
            last_word_end = get_end(current)
            if last_word_end is not None:
                self.last_speech_timestamp = last_word_end

        for piece in current:
            piece_tokens: list[int] = piece["tokens"]
            text = tokenizer.decode(piece_tokens)
            if piece["start"] == piece["end"] or not text.strip():
                continue
            self.all_tokens.extend(piece_tokens)
            words = None
            if options.word_timestamps:
                words = [
                    Word(
                        start=round(w["start"], 3),
                        end=round(w["end"], 3),
                        word=w["word"],
                        probability=w["probability"],
                    )
                    for w in piece["words"]
                ]
            self.segments.append(
                Segment(
                    id=len(self.segments),
                    seek=self.seek,
                    start=round(piece["start"], 3),
                    end=round(piece["end"], 3),
                    text=text,
                    tokens=list(piece_tokens),
                    temperature=temperature,
                    avg_logprob=avg_logprob,
                    compression_ratio=attempt.compression_ratio,
                    no_speech_prob=result.no_speech_prob,
                    words=words,
                )
            )
        if (
            not options.condition_on_previous_text
            or temperature > PROMPT_RESET_ON_TEMPERATURE
            or unheard is not None
        ):
            self.prompt_reset_since = len(self.all_tokens)

    def _unheard(
        self,
        model: WhisperModel,
        tokenizer: Tokenizer,
        window: Window,
        tokens: list[int],
        pieces: list[dict[str, Any]],
        encoder_output: Callable[[], ctranslate2.StorageView],
        *,
        prompted: bool,
    ) -> tuple[list[dict[str, Any]], int] | None:
        """Where this window's words leave ``UNHEARD_SECONDS`` of loud audio unaccounted for: the
        window's segments before it and the frame to decode again from, or ``None``.

        Whisper sometimes jumps over a sentence: prompted with text that already says something
        like it, tiny.en went from "ask not what your country can do for you" straight on to the
        next clip, 5 s later, its timestamps running over the skipped sentence. The window's
        words are aligned (as for word timestamps) and the loud frames (``vad.find_pauses``)
        that no word is near are counted; the stream goes on from the first such stretch in
        which Silero VAD finds speech (``_first_speech_unheard``), and that window is decoded
        without the prompt (once: what it finds is kept)."""
        assert self.loud is not None
        first, last = max(window.seek, self.keep_from), min(self.seek, self.end)
        if last - first < UNHEARD_SECONDS * FRAMES_PER_SECOND:
            return None
        # All the window's text, its unfinished last sentence too: aligned without it, the
        # window's words were spread over the audio it would have covered.
        text = [token for token in tokens if token < tokenizer.eot]
        words = model.find_alignment(tokenizer, text, encoder_output(), window.size)
        offset = window.seek / FRAMES_PER_SECOND
        per_second = SAMPLE_RATE / PAUSE_FRAME
        low = round(first / FRAMES_PER_SECOND * per_second)
        high = round(last / FRAMES_PER_SECOND * per_second)
        loud = self.loud[low:high]
        heard = np.zeros(len(loud), dtype=bool)
        for word in words:
            end = offset + word["end"]
            start = max(offset + word["start"], end - LONGEST_WORD_SECONDS)
            span = slice(
                max(0, round((start - WORD_MARGIN_SECONDS) * per_second) - low),
                max(0, round((end + WORD_MARGIN_SECONDS) * per_second) - low),
            )
            heard[span] = True
        gap = self._first_speech_unheard(heard, loud, low, per_second)
        if gap is None:
            return None
        ends = [offset + word["end"] for word in words if offset + word["end"] <= gap]
        resume = max(gap - RESUME_LEAD_SECONDS, max(ends, default=0.0), first / FRAMES_PER_SECOND)
        frame = seconds_to_frames(resume)
        if frame - window.seek < FRAMES_PER_SECOND and not prompted:
            return None  # the same window, unprompted, again: nothing would change
        before, _after = self._divide(model, tokenizer, window, pieces, encoder_output, frame)
        logger.debug(
            "window at %.1f s: loud audio without words at %.1f s, decoded again from %.1f s",
            offset,
            gap,
            frame / FRAMES_PER_SECOND,
        )
        return before, frame

    def _first_speech_unheard(
        self, heard: npt.NDArray[np.bool_], loud: npt.NDArray[np.bool_], low: int, per_second: float
    ) -> float | None:
        """The start, in seconds, of the first stretch between two words (or a word and the
        window's edge) that holds ``UNHEARD_SECONDS`` of loud frames and in which Silero VAD
        finds speech: the energy gate takes any sound for speech, and on 40 s of noise a window
        decoded again without its prompt came back with a hallucinated loop."""
        needed = UNHEARD_SECONDS * per_second
        count, begin = 0, None
        for index, (is_heard, is_loud) in enumerate(
            [*zip(heard.tolist(), loud.tolist(), strict=True), (True, False)]
        ):
            if not is_heard:
                if is_loud:
                    begin = index if begin is None else begin
                    count += 1
                continue
            if begin is not None and count >= needed:
                start, end = (low + begin) / per_second, (low + index) / per_second
                audio = self.samples[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
                speech = sum(b - a for a, b in speech_regions(audio))
                if speech >= MIN_UNHEARD_SPEECH_SECONDS:
                    return start
            count, begin = 0, None
        return None

    def _divide(
        self,
        model: WhisperModel,
        tokenizer: Tokenizer,
        window: Window,
        pieces: list[dict[str, Any]],
        encoder_output: Callable[[], ctranslate2.StorageView],
        frame: int,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A window's segments divided at ``frame`` (a pause where streams meet): what was said
        before it and what after. Whisper's segment times are coarse and a segment may run on
        across the pause, so where one spans ``frame`` the window's words are aligned (as for
        word timestamps) and each word goes to the side its middle lies on."""
        moment = frame / FRAMES_PER_SECOND
        if all(piece["end"] <= moment or piece["start"] >= moment for piece in pieces):
            return (
                [piece for piece in pieces if piece["start"] < moment],
                [piece for piece in pieces if piece["start"] >= moment],
            )
        texts = [[token for token in piece["tokens"] if token < tokenizer.eot] for piece in pieces]
        alignment = model.find_alignment(
            tokenizer, [token for text in texts for token in text], encoder_output(), window.size
        )
        offset = window.seek / FRAMES_PER_SECOND
        sides: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        index = 0
        for piece, text in zip(pieces, texts, strict=True):
            words: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
            taken = 0
            while index < len(alignment) and taken < len(text):
                word = alignment[index]
                index += 1
                taken += len(word["tokens"])
                words[int(offset + (word["start"] + word["end"]) / 2 >= moment)].append(word)
            before, after = words
            for side, (kept, other) in enumerate(((before, after), (after, before))):
                if not other:  # every word on this side: the times too
                    bound = (
                        {"start": max(piece["start"], moment)} if side else {"end": min(piece["end"], moment)}
                    )
                    sides[side].append({**piece, **bound})
                elif kept:
                    sides[side].append(self._part(tokenizer, piece, kept, offset, moment, after=bool(side)))
        return sides

    @staticmethod
    def _part(
        tokenizer: Tokenizer,
        piece: dict[str, Any],
        words: list[dict[str, Any]],
        offset: float,
        moment: float,
        *,
        after: bool,
    ) -> dict[str, Any]:
        """The ``words`` of a segment that spans ``moment``, as a segment of their own, its
        times kept within the segment and on their side of ``moment``."""
        start = max(offset + words[0]["start"], piece["start"], moment if after else piece["start"])
        end = min(offset + words[-1]["end"], piece["end"], piece["end"] if after else moment)
        end = max(end, start)
        stamps = [
            tokenizer.timestamp_begin + round((time - offset) / TIME_PRECISION) for time in (start, end)
        ]
        tokens = [token for word in words for token in word["tokens"]]
        return {**piece, "start": start, "end": end, "tokens": [stamps[0], *tokens, stamps[1]]}


def _not_before(pieces: list[dict[str, Any]], moment: float) -> None:
    """Keep word-timed segments from starting before ``moment``, where a split-off stream's own
    speech begins: the alignment moves a segment's start to its first word, which may lie a
    little before the meeting point (0.3 s in a test file), and the task's segments would go
    out of order across its streams."""
    for piece in pieces:
        piece["start"] = max(piece["start"], moment)
        piece["end"] = max(piece["end"], piece["start"] + TIME_PRECISION)
        for word in piece.get("words", []):
            word["start"] = max(word["start"], moment)
            word["end"] = max(word["end"], word["start"])


def split_by_timestamps(
    tokenizer: Tokenizer, tokens: list[int], window: Window
) -> tuple[list[dict[str, Any]], int, bool]:
    """A window's tokens as segments (dicts as faster-whisper's ``add_word_timestamps`` takes
    them), the next seek and whether the window ended on a single timestamp: the splitting in
    faster-whisper 1.0.3's ``generate_segments``, which has no helper of its own for it."""
    begin = tokenizer.timestamp_begin
    seek = window.seek
    time_offset = seek / FRAMES_PER_SECOND
    segments: list[dict[str, Any]] = []
    single_timestamp_ending = len(tokens) >= 2 and tokens[-2] < begin <= tokens[-1]
    consecutive = [i for i in range(1, len(tokens)) if tokens[i] >= begin and tokens[i - 1] >= begin]
    if consecutive:
        slices = list(consecutive)
        if single_timestamp_ending:
            slices.append(len(tokens))
        last_slice = 0
        for current_slice in slices:
            sliced = tokens[last_slice:current_slice]
            segments.append(
                {
                    "seek": seek,
                    "start": time_offset + (sliced[0] - begin) * TIME_PRECISION,
                    "end": time_offset + (sliced[-1] - begin) * TIME_PRECISION,
                    "tokens": sliced,
                }
            )
            last_slice = current_slice
        if single_timestamp_ending:
            next_seek = seek + window.size  # no speech after the last timestamp
        else:  # the unfinished segment is decoded again from the last timestamp on
            next_seek = seek + (tokens[last_slice - 1] - begin) * INPUT_STRIDE
    else:
        duration = window.size / FRAMES_PER_SECOND
        timestamps = [token for token in tokens if token >= begin]
        if timestamps and timestamps[-1] != begin:
            duration = (timestamps[-1] - begin) * TIME_PRECISION
        segments.append({"seek": seek, "start": time_offset, "end": time_offset + duration, "tokens": tokens})
        next_seek = seek + window.size
    return segments, next_seek, single_timestamp_ending


def window_features(
    model: WhisperModel,
    samples: npt.NDArray[np.float32],
    window: Window,
    *,
    silence_padded: bool,
    loudest: float,
) -> npt.NDArray[np.float32]:
    """The log-mel input of one window, computed from its own audio only, equal to the same
    frames of the library's whole-file spectrogram:

    * Whisper clamps its log-mel at 8 (log10 units) below the loudest frame and scales by it;
      the library's loudest frame is the whole recording's (``loudest``, from
      ``loudest_level``), not the window's. As the clamp only rises with the level, a window's
      own features are brought to the recording's level with one ``maximum``. (Left at the
      window's level, quieter windows of a 10-minute file came out differently: tiny.en's WER
      on it was 7.0 % where the library's was 4.1 %.)
    * its first frames are computed with the audio before it, not mirrored at its start.

    As in the library, the frames after the window's audio are zeros (``pad_or_trim`` of the
    features), except for a multilingual model's first window when the language is still to be
    detected: the library detects it on (and decodes that window from) the features of the
    audio padded with silence."""
    keep = window.encoded_frames if silence_padded else window.size
    before = min(CONTEXT_FRAMES, window.seek)
    first = (window.seek - before) * HOP
    length = (before + keep) * HOP + N_FFT
    audio = samples[first : first + length]
    audio = np.pad(audio, (0, length - len(audio)))
    mel: npt.NDArray[np.float32] = model.feature_extractor(audio, padding=False)[:, before : before + keep]
    mel = np.maximum(mel, (loudest - 4.0) / 4.0)
    if mel.shape[1] < window.encoded_frames:
        mel = np.pad(mel, ((0, 0), (0, window.encoded_frames - mel.shape[1])))
    return np.ascontiguousarray(mel[:, : window.encoded_frames], dtype=np.float32)


def loudest_level(model: WhisperModel, samples: npt.NDArray[np.float32]) -> float:
    """The loudest frame of the whole recording's log-mel spectrogram (log10 of its power), as
    the library's whole-file features are scaled by it; computed 30 s at a time, so that no
    whole-file features are held."""
    level = -10.0  # log10 of the floor of silence
    step = WINDOW_FRAMES * HOP
    for start in range(0, len(samples), step):
        features = model.feature_extractor(samples[start : start + step + N_FFT], padding=False)
        level = max(level, 4.0 * float(features.max()) - 4.0)
    return level


def _encode(model: WhisperModel, text: str) -> list[int]:
    """Text tokens (the tokenizer's ``encode``, which does not depend on the language)."""
    ids: list[int] = model.hf_tokenizer.encode(text, add_special_tokens=False).ids
    return ids


def decode_step(
    decoder: BatchedDecoder, streams: list[Stream], pause: Callable[[], None] | None = None
) -> int:
    """Decode the next window of every stream (none may be done) in one batch: one encoder
    pass per window, one ``generate`` call per (window length, search options). ``pause`` is
    called before each encoder and decoder call (a point where a long task yields). Returns the
    number of ``generate`` calls it took."""
    model = decoder.model
    windows = [stream.window() for stream in streams]
    assert all(window is not None for window in windows)
    windows_ = [window for window in windows if window is not None]
    multilingual = decoder.multilingual
    # The recording's level, computed once per recording (streams of one task share samples).
    levels = {id(stream.samples): stream.loudest for stream in streams if stream.loudest is not None}
    for stream in streams:
        if id(stream.samples) not in levels:
            levels[id(stream.samples)] = loudest_level(model, stream.samples)
        stream.loudest = levels[id(stream.samples)]
    features = [
        window_features(
            model,
            stream.samples,
            window,
            silence_padded=stream.language is None or stream.detected_at == window.seek,
            loudest=levels[id(stream.samples)],
        )
        for stream, window in zip(streams, windows_, strict=True)
    ]
    contexts = [stream.context(model) for stream in streams]
    keys = [(stream.search_key(), len(context)) for stream, context in zip(streams, contexts, strict=True)]
    encoded = decoder.encode(features, keys, pause=pause)
    unknown = [number for number, stream in enumerate(streams) if stream.language is None]
    if unknown:
        detected = decoder.detect_language(encoded)
        for number in unknown:
            language, probability = detected[number]
            streams[number].set_language(model, language, probability if multilingual else None)
            streams[number].detected_at = windows_[number].seek
    prompts = [stream.prompt(model, context) for stream, context in zip(streams, contexts, strict=True)]
    if pause is not None:
        pause()
    results = decoder.generate(
        encoded, prompts, [sampling_options(stream.options, stream.temperature)[1] for stream in streams]
    )
    for number, (stream, window, result) in enumerate(zip(streams, windows_, results, strict=True)):
        stream.accept(model, window, result, lambda number=number: encoded.row(number))  # type: ignore[misc]
    return len(encoded.groups)


def decode_streams(decoder: BatchedDecoder, streams: list[Stream]) -> list[Stream]:
    """Decode ``streams`` to the end, up to ``decoder.batch_size`` at a time (blocking)."""
    while True:
        active = [stream for stream in streams if not stream.done][: decoder.batch_size]
        if not active:
            return streams
        decode_step(decoder, active)


def seconds_to_frames(seconds: float) -> int:
    return math.floor(seconds * FRAMES_PER_SECOND + 0.5)
