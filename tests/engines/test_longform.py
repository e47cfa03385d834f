"""Nothing lost: long files decoded by the stream decoder, alone and batched, against the library.

The files are built at test time from the shared English clips (``tests/long_audio.py``): gaps of
0.25–1.5 s between clips and a pause of 3–6 s after every eighth. On every file, on the sequential
path (``batch_size=1``) and on the default batched one (the scheduler, the file split into
streams at pauses), each clip's reference words must be found among the words of the segments
over its time span, and the file's WER may exceed the library's by half a point at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel

from app.engines.batch_scheduler import BatchScheduler
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.engines.longform import Stream, decode_step, decode_streams
from app.engines.model_resolver import ModelResolver
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType
from tests.engine_support import cpu_engine, decode_in_scheduler
from tests.long_audio import (
    LongAudio,
    build_long_audio,
    clip_recall,
    english_clips,
    recall_floors,
    wer,
    words,
)

pytestmark = pytest.mark.slow

BATCHED = 8
"""The stream-batched path as it would run with ``WHISPER__BATCH_SIZE=8``."""
FILES = [(270.0, 11), (250.0, 12), (290.0, 13)]
"""(seconds, seed) of the long test files: 4–5 minutes each."""
GREEDY = DecodeOptions(temperature=0.0)
"""Temperature 0 only: the fallback samples at random (the library's WER on one of these files
moved between 5.0 % and 9.6 % from run to run), which would make the WER comparison a draw."""


@pytest.fixture(scope="module")
def long_files() -> list[LongAudio]:
    source = english_clips()
    return [build_long_audio(seconds, seed, clips=source) for seconds, seed in FILES]


@pytest.fixture(scope="module")
def tiny_location(model_dir: Path) -> str:
    return ModelResolver(model_dir).resolve("tiny.en").location


@pytest.fixture(scope="module")
def floors(tiny_location: str) -> dict[str, float]:
    """Per clip, the recall a long file must reach (``recall_floors``)."""
    library = WhisperModel(tiny_location, device="cpu", compute_type="int8", cpu_threads=2)
    return recall_floors(library, english_clips())


def _engine(location: str, batch_size: int) -> FasterWhisperModel:
    return cpu_engine("tiny.en", location, batch_size)


def _spans(segments: list[Segment]) -> list[tuple[float, float, str]]:
    return [(segment.start, segment.end, segment.text) for segment in segments]


def _text(segments: list[Segment]) -> str:
    return "".join(segment.text for segment in segments).strip()


def _assert_nothing_lost(
    audio: LongAudio,
    segments: list[Segment],
    library: LibraryRun,
    label: str,
    *,
    compare_wer: bool = True,
) -> None:
    starts = [segment.start for segment in segments]
    assert starts == sorted(starts), f"{label}: segments out of order"
    lost = [
        (clip.file, round(clip.start, 1), round(recall, 2))
        for clip, floor in zip(audio.clips, library.floors, strict=True)
        if (recall := clip_recall(clip, _spans(segments))) < floor
    ]
    assert not lost, f"{label}: clips lost: {lost}"
    if compare_wer:
        assert wer(audio.reference, _text(segments)) <= library.wer + 0.005, label


def _batched(engine: FasterWhisperModel, audio: LongAudio) -> tuple[list[Segment], BatchScheduler]:
    return decode_in_scheduler(engine, audio.samples, GREEDY)


@dataclass(frozen=True)
class LibraryRun:
    """The library's transcript of one long file (``WhisperModel.transcribe``, beam 5,
    temperature 0): its segments, its WER, and each placed clip's recall floor: ``floors``, or
    what the library itself recalls of that clip in this file, if less (a clip it misrecognises
    there too is not speech the service lost)."""

    segments: list[tuple[float, float, str]]
    wer: float
    floors: list[float]


@pytest.fixture(scope="module")
def library(tiny_location: str, long_files: list[LongAudio], floors: dict[str, float]) -> list[LibraryRun]:
    """The library's run on every long file, computed once for the module."""
    model = WhisperModel(tiny_location, device="cpu", compute_type="int8", cpu_threads=2)
    runs = []
    for audio in long_files:
        segments = list(model.transcribe(audio.samples, beam_size=5, temperature=0.0)[0])
        spans = [(round(s.start, 2), round(s.end, 2), s.text) for s in segments]
        placed = [min(floors[clip.file], clip_recall(clip, spans)) for clip in audio.clips]
        runs.append(LibraryRun(spans, wer(audio.reference, "".join(s.text for s in segments)), placed))
    return runs


def test_long_files_lose_nothing_sequentially(
    long_files: list[LongAudio], tiny_location: str, library: list[LibraryRun]
) -> None:
    """The sequential path (``batch_size=1``, 30 s windows) is the library's algorithm, and each
    window's log-mel input equals the same frames of the library's whole-file spectrogram
    (scaled by the recording's loudest frame, not the window's): the library's exact segments on
    every long file, so nothing is lost that the library hears. (Scaled by each window's own
    level, a 5-minute file came out with 6.4 % WER where the library has 4.7 %.)"""
    sequential = _engine(tiny_location, 1)
    for number, audio in enumerate(long_files):
        assert 240 <= audio.duration <= 900
        stream = sequential.transcribe(audio.samples, TaskType.transcribe, GREEDY)
        found = list(stream.segments)
        label = f"file {number}, batch_size=1"
        assert [(round(s.start, 2), round(s.end, 2), s.text) for s in found] == library[number].segments, (
            label
        )
        _assert_nothing_lost(audio, found, library[number], label)


@pytest.mark.parametrize(
    "number",
    [
        0,
        pytest.param(
            1,
            marks=pytest.mark.xfail(
                reason="known gap (issue 14, docs/batching.md): at the start of a stream tiny.en "
                "hears 'ten of clubs' (239.9 s) as '10. Cloves.' where the library, prompted, "
                "writes 'Ten of Clovs'. Strict: it fails CI once it passes, so that the gap is "
                "closed on purpose.",
                strict=True,
            ),
        ),
        2,
    ],
)
def test_long_files_lose_nothing_batched(
    number: int, long_files: list[LongAudio], tiny_location: str, library: list[LibraryRun]
) -> None:
    """The scheduler splits a lone long file into streams at pauses and decodes them side by
    side; each stream's last window reads on into the next one's audio (``Stream.horizon``), so
    no clip at a cut is lost, and a window whose words leave a second of loud audio unaccounted
    for is decoded again from there (``Stream._unheard``): in file 0 a window that began in the
    middle of jfk, prompted with its first half, went straight on from "ask not what your
    country can do for you" to the next clip (157.1 s). (The WER against the library is compared
    in ``bench/longform.py``: streams start without a prompt, which moves tiny.en's WER on a
    file by a few points either way.)"""
    audio = long_files[number]
    found, scheduler = _batched(_engine(tiny_location, BATCHED), audio)
    _assert_nothing_lost(
        audio, found, library[number], f"file {number}, batch_size={BATCHED}", compare_wer=False
    )
    # A lone long file fills the batch with its own streams (pieces of at least 30 s cut at
    # pauses), all of them decoded side by side.
    streams = {start for record in scheduler.history for _task, start in record.rows}
    assert len(streams) >= 4, list(scheduler.history)
    assert max(len(record.rows) for record in scheduler.history) == len(streams)


def test_word_times_stay_in_order_across_streams(long_files: list[LongAudio], tiny_location: str) -> None:
    """With word timestamps, the alignment moves a segment's start to its first word, which can
    lie a little before the point where a split-off stream's own speech begins (0.3 s before the
    previous stream's last segment, in this file); the stream keeps its times from there, and
    the task's segments and words stay in order. A window cut short at unheard speech aligns
    its words with the audio before that speech only (over the whole window, a word was put
    20 s later, after the next stream's first segment)."""
    options = DecodeOptions(temperature=0.0, word_timestamps=True)
    found, _scheduler = decode_in_scheduler(_engine(tiny_location, BATCHED), long_files[0].samples, options)
    assert all(segment.words for segment in found)
    starts = [segment.start for segment in found]
    assert starts == sorted(starts)
    words = [word.start for segment in found for word in segment.words or []]
    assert words == sorted(words)


def test_noise_is_not_taken_for_unheard_speech(tiny_location: str) -> None:
    """The energy gate takes any sound for speech; a stretch no word accounts for is decoded
    again only where Silero VAD finds speech in it. Over 40 s of modulated noise, a window
    decoded again without its prompt came back with "I don't know how to do it," thirty times."""
    audio = build_long_audio(240.0, 5)
    samples = audio.samples.copy()
    rng = np.random.default_rng(0)
    seconds = np.arange(40 * 16000) / 16000
    noise = rng.standard_normal(len(seconds)) * 0.05 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * seconds))
    samples[100 * 16000 : 140 * 16000] = noise.astype(np.float32)
    found, _scheduler = decode_in_scheduler(_engine(tiny_location, BATCHED), samples, GREEDY)
    # The clips the noise did not wholly cover, and a margin for misheard words (the loop
    # added about 200 words).
    spoken = [clip for clip in audio.clips if clip.start < 100 or clip.end > 140]
    expected = len(words(" ".join(clip.reference for clip in spoken)))
    assert len(words(_text(found))) <= expected + 40, _text(found)
    assert "ask what you can do for your country" in _text(found).lower()


def test_batching_never_changes_a_rows_text(tiny_location: str) -> None:
    """Rows of one batch are decoded with their whole prompts (no cut to a shared length), so
    each stream's segments are exactly those it gets decoded alone."""
    audio = build_long_audio(70.0, 21)
    other = build_long_audio(40.0, 22)
    frames = len(audio.samples) // 160

    def streams() -> list[Stream]:
        return [
            Stream(audio.samples, [(0, frames // 2)], TaskType.transcribe, GREEDY, "en"),
            Stream(audio.samples, [(frames // 2, frames)], TaskType.transcribe, GREEDY, "en"),
            Stream(other.samples, [(0, len(other.samples) // 160)], TaskType.transcribe, GREEDY, "en"),
        ]

    engine = _engine(tiny_location, BATCHED)
    together = decode_streams(engine.decoder, streams())
    alone = [decode_streams(engine.decoder, [stream])[0] for stream in streams()]
    assert [[s.text for s in stream.segments] for stream in together] == [
        [s.text for s in stream.segments] for stream in alone
    ]
    assert all(stream.segments for stream in together)


def test_word_timestamps_on_the_batched_path(tiny_location: str, floors: dict[str, float]) -> None:
    audio = build_long_audio(60.0, 7)
    engine = _engine(tiny_location, BATCHED)
    options = DecodeOptions(word_timestamps=True)
    after = next(clip for clip in audio.clips if clip.start > 25)
    cut = round((after.start - 0.5) * 100)  # before a clip, as the scheduler cuts: two streams in one batch
    streams = [
        Stream(audio.samples, [(0, cut)], TaskType.transcribe, options, "en"),
        Stream(audio.samples, [(cut, len(audio.samples) // 160)], TaskType.transcribe, options, "en"),
    ]
    decode_streams(engine.decoder, streams)
    segments = [segment for stream in streams for segment in stream.segments]
    assert segments
    for segment in segments:
        assert segment.words, segment
        assert all(
            segment.start - 0.5 <= word.start <= word.end <= segment.end + 0.5 for word in segment.words
        )
    spans = [(w.start, w.end, w.word) for segment in segments for w in segment.words or []]
    recalls = {clip.file: clip_recall(clip, spans, margin=0.5) for clip in audio.clips}
    assert all(recall >= floors[name] for name, recall in recalls.items()), (
        recalls,
        [(s.start, s.end, s.text) for s in segments],
    )


def test_temperature_fallback_decodes_a_row_again(tiny_location: str) -> None:
    """A window that fails the thresholds comes back at the next temperature: with an
    impossible log-probability threshold every window is tried at every temperature."""
    audio = build_long_audio(20.0, 3)
    engine = _engine(tiny_location, BATCHED)
    options = DecodeOptions(log_prob_threshold=0.0, temperature=[0.0, 0.5, 1.0])
    stream = Stream(audio.samples, [(0, len(audio.samples) // 160)], TaskType.transcribe, options, "en")
    steps = 0
    while not stream.done:
        decode_step(engine.decoder, [stream])
        steps += 1
    assert steps >= 3
    assert stream.segments and all(segment.temperature == 1.0 for segment in stream.segments)
    assert np.isfinite([segment.avg_logprob for segment in stream.segments]).all()


def test_streams_split_at_a_pause_overlap_up_to_the_next_one(
    tiny_location: str, floors: dict[str, float]
) -> None:
    """A stream split off at a pause (``Stream.split(cut, until)``) decodes the stretch up to the
    next pause for its prompt only; the stream before decodes it, prompted with its own text, and
    keeps it. So the speech right after a cut, which a stream starting without a prompt may skip,
    is decoded once, by the stream that knows what came before, and nothing in between is lost."""
    audio = build_long_audio(90.0, 5)
    engine = _engine(tiny_location, BATCHED)
    frames = len(audio.samples) // 160
    after = next(clip for clip in audio.clips if clip.start > 35)
    following = audio.clips[audio.clips.index(after) + 1]
    cut = round((after.start - 0.5) * 100)
    until = round((after.end + following.start) / 2 * 100)  # the middle of the next pause
    first = Stream(audio.samples, [(0, frames)], TaskType.transcribe, GREEDY, "en")
    second = first.split(cut, until)
    assert second is not None
    assert (first.end, second.start, second.keep_from) == (until, cut, until)
    decode_streams(engine.decoder, [first, second])
    assert first.segments and second.segments
    assert all(segment.end <= until / 100 + 0.02 for segment in first.segments)
    assert all(segment.start >= until / 100 - 0.02 for segment in second.segments)
    # The clip between the cut and the meeting point is the first stream's, and only its.
    assert clip_recall(after, _spans(first.segments)) >= floors[after.file]
    assert clip_recall(after, _spans(second.segments)) == 0
    # The second stream was prompted with what it decoded before the meeting point.
    assert len(second.all_tokens) > sum(len(segment.tokens) for segment in second.segments)
    segments = [*first.segments, *second.segments]
    for clip in audio.clips:
        assert clip_recall(clip, _spans(segments)) >= floors[clip.file], (clip, _spans(segments))
