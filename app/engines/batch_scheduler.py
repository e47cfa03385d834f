"""Cross-task dynamic batching: speech chunks of many running tasks decoded in one batch.

Each task that runs on a faster-whisper instance with ``WHISPER__BATCHING=tasks`` hands its
speech chunks (≤30 s, from VAD or ``clip_timestamps``, see ``app.engines.batched``) to the
instance's ``BatchScheduler``. One collector per instance forms batches of up to
``batch_size`` chunks and runs each as one encode and one ``generate`` call through the pool's
device gate, so a batch is one inference step like any other:

* **priority first**: the chunks of the highest-priority tasks enter a batch before any other;
* **round-robin** among tasks of the same priority, oldest task first, one chunk per task per
  turn: a long file fills the batch only while nobody else waits, so it cannot starve short ones;
* **short wait**: a batch that is not full waits at most ``max_batch_wait`` seconds, counted from
  when its oldest chunk arrived, for company; a lone task is never held back longer;
* only chunks with equal search options (``batched.batch_key``: temperature, beam, patience…)
  share a batch; prompts, languages and tasks (transcribe/translate) may differ row by row;
* **one chunk per row** by default: each row's window is cut to its chunk's length
  (``batched.window_seconds``), so a short clip costs a short encoder pass, and no task's text
  can depend on another task's audio;
* **packing** (``WHISPER__BATCH_PACKING``, off by default): short
  chunks (of any tasks) with the same language, task and prompt share one row's window,
  ``PACK_GAP`` seconds of silence apart, and the row's segments are split back by time. A
  segment lying over most of two chunks sends both back to be decoded alone, so text never
  crosses tasks; a chunk Whisper stopped before (or inside, for the last one with text) is
  packed once more, then decoded alone;
* each task's chunks are taken in order, so a task's first chunk is in the first batch that
  holds any of its chunks: the encoder output of that batch also detects its language. With
  packing, chunks whose language is still unknown are packed together; each one's language is detected from its
  own frames of the window's encoder output, and a chunk whose language differs from the first
  one's in the row is packed again with its own kind;
* a cancelled task's pending chunks are dropped before the next batch is formed;
* **lanes**: up to ``lanes`` batches run at once (CTranslate2 workers sharing the weights): on a
  2-core CPU one batch's serial stretches leave room for another's. A task whose language is
  still unknown adds no chunk to a second batch until its first one has told the language;
* **express lane**: a short task (at most ``express_seconds`` of speech) is decoded in a batch
  of short tasks only, on one more worker, so it never waits behind, nor shares a batch with,
  the windows of long files; while that lane is busy, short tasks join the regular lanes.

Results go back through one future per chunk; the task reads them in order (``segments``), with
timestamps already on its own timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from app.engines.base import SAMPLE_RATE
from app.engines.batched import CHUNK_SECONDS, BatchedDecoder, Chunk, ChunkPrompt, Encoded, batch_key
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)

T = TypeVar("T")
PACK_GAP = 2.0
"""Seconds of silence between chunks of different tasks packed into one window."""
STRADDLE_SECONDS = 0.5
"""A segment overlapping a second packed chunk by more than this and half its length sends both
back to be decoded alone."""
SKIPPED: list[Segment] = []
"""Marks a packed chunk the decoder stopped before (compared by identity)."""
REQUEUE: list[Segment] = []
"""Marks a packed chunk whose detected language differs from its row's: packed again later."""
CUT_SHORT_SECONDS = 1.5
"""The last packed chunk with text, whose text ends this long before its speech, is decoded again."""
ARRIVAL_WAIT_SECONDS = 2.0
"""Most seconds a batch that is not full waits, from its oldest chunk's arrival, while other tasks
are still being prepared (audio decoding, VAD) for this instance: their chunks fill it."""
SHORT_YIELD_SECONDS = 2.0
"""Longest a regular batch pauses, at one window, for short tasks being prepared or decoded."""
MAX_HELD_SECONDS = 4 * 3600.0
"""Decoded audio (about 920 MB as float32) above which new tasks wait for room before decoding."""
StepRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking function as one inference step (the pool's device gate and worker thread)."""


class ChunkDroppedError(Exception):
    """A chunk was dropped before it was decoded: its task was cancelled or stopped reading."""


@dataclass(eq=False)
class _Item:
    job: _Job
    number: int
    chunk: Chunk
    future: asyncio.Future[list[Segment]]
    queued_at: float
    solo: bool = False
    """Decode in a window of its own (set after a packed decode could not be split)."""
    skipped: bool = False
    """Whisper stopped before this chunk once already, in a packed window."""


@dataclass(eq=False)
class _Job:
    """One task's submission."""

    task_id: str
    priority: int
    """Lower runs first (the stored ``TaskPriority.rank``)."""
    sequence: int
    samples: npt.NDArray[np.float32]
    task_type: TaskType
    options: DecodeOptions
    key: object
    cancelled: Callable[[], bool]
    language: str | None
    language_probability: float | None = None
    prompt: ChunkPrompt | None = None
    items: list[_Item] = field(default_factory=list)
    pending: deque[_Item] = field(default_factory=deque)
    dropped: bool = False
    short: bool = False
    """At most ``express_seconds`` of speech: eligible for the express lane."""
    in_flight: int = 0
    """Chunks of this job in batches now running."""

    def decoded(self) -> float:
        """The share of this job's speech in chunks already decoded (in any order)."""
        total = sum(item.chunk.end - item.chunk.start for item in self.items)
        done = sum(
            item.chunk.end - item.chunk.start
            for item in self.items
            if item.future.done() and not item.future.cancelled() and item.future.exception() is None
        )
        return done / total if total > 0 else 1.0


@dataclass
class BatchedTranscription:
    """A task's stream through the scheduler: language known, segments arriving as batches finish."""

    language: str | None
    language_probability: float | None
    segments: AsyncGenerator[Segment, None]
    """Read it inside ``contextlib.aclosing`` so that leaving early drops the pending chunks."""
    decoded: Callable[[], float]
    """The share (0 to 1) of the task's speech in chunks already decoded, in any order."""


@dataclass(frozen=True)
class BatchRecord:
    """One batch as it was run."""

    rows: tuple[tuple[str, int], ...]
    """(task id, chunk number) of every chunk, in batch order."""
    seconds: float
    windows: int = 0
    """Rows of the batch: 30 s windows, some holding several packed chunks."""
    express: bool = False
    """Run on the express lane (short tasks only)."""
    started: float = 0.0
    """``time.monotonic()`` when the batch started."""


class BatchScheduler:
    """Packs chunks of every task leasing one model instance into batches (see the module doc)."""

    def __init__(
        self,
        decoder: BatchedDecoder,
        run_step: StepRunner,
        *,
        batch_size: int,
        max_batch_wait: float,
        pack: bool = False,
        max_held_seconds: float = MAX_HELD_SECONDS,
        lanes: int = 1,
        express_seconds: float = 0.0,
        history: int = 256,
    ) -> None:
        self._decoder = decoder
        self._run_step = run_step
        self.batch_size = batch_size
        self.max_batch_wait = max_batch_wait
        self.pack = pack
        """Pack short chunks of different tasks into one 30 s window (one encoder pass for several)."""
        self.max_held_seconds = max_held_seconds
        self.lanes = lanes
        """Regular batches running at once."""
        self.express_seconds = express_seconds
        """Tasks with at most this much speech use the express lane; 0 turns it off."""
        self._running: set[asyncio.Task[None]] = set()
        self._express: asyncio.Task[None] | None = None
        self._short_idle = threading.Event()
        """Clear while a short task is prepared or an express batch runs: regular batches pause
        at their next window, so the short task gets the cores."""
        self._short_idle.set()
        self._jobs: list[_Job] = []
        self._sequence = itertools.count()
        self._changed = asyncio.Event()
        self._released = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._arriving = 0
        self._arriving_short = 0
        self.history: deque[BatchRecord] = deque(maxlen=history)
        """The most recent batches, newest last (for tests and debugging)."""

    @property
    def max_gap(self) -> float | None:
        """Longest silence worth keeping inside one chunk: with packing, regions further apart
        become chunks of their own and are packed ``PACK_GAP`` apart (Whisper tends to stop
        early in a window after a long silence, and skipped packed chunks are noticed)."""
        return PACK_GAP if self.pack else None

    @property
    def held_seconds(self) -> float:
        """Seconds of decoded audio the queued tasks hold in memory (float32: 230 MB an hour)."""
        return sum(len(job.samples) for job in self._jobs) / SAMPLE_RATE

    async def room(self) -> None:
        """Wait until the queued tasks hold less than ``max_held_seconds`` of decoded audio, so
        that many long files running at once cannot exhaust memory (one always gets in). Await
        it in turn with the decoding that follows (``Lease.prepare(admit=...)``)."""
        while self._jobs and self.held_seconds >= self.max_held_seconds:
            self._released.clear()
            await self._released.wait()

    @contextlib.asynccontextmanager
    async def arriving(self, *, short: bool = False) -> AsyncIterator[None]:
        """Around a task's preparation (decoding, VAD, waiting its turn for them): a batch that
        is not full waits for the chunks of tasks on their way, up to ``ARRIVAL_WAIT_SECONDS``
        instead of ``max_batch_wait``, so that a burst of tasks is decoded in full batches.
        An express batch waits only for ``short`` tasks (a long file's preparation takes seconds)."""
        self._arriving += 1
        self._arriving_short += short
        self._update_short_idle()
        try:
            yield
        finally:
            self._arriving -= 1
            self._arriving_short -= short
            self._update_short_idle()
            self._changed.set()

    def _update_short_idle(self) -> None:
        if self._arriving_short or self._express is not None:
            self._short_idle.clear()
        else:
            self._short_idle.set()

    @property
    def pending_chunks(self) -> int:
        return sum(len(job.pending) for job in self._jobs)

    @property
    def tasks(self) -> int:
        return len(self._jobs)

    async def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        chunks: list[Chunk],
        task_type: TaskType,
        options: DecodeOptions,
        *,
        task_id: str = "",
        priority: int = 1,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchedTranscription:
        """Queue every chunk of one task; returns once the first chunk is decoded (language known)."""
        loop = asyncio.get_running_loop()
        job = _Job(
            task_id=task_id,
            priority=priority,
            sequence=next(self._sequence),
            samples=samples,
            task_type=task_type,
            options=options,
            key=batch_key(options),
            cancelled=cancelled or (lambda: False),
            language=options.language or (None if self._decoder.multilingual else "en"),
        )
        now = time.monotonic()
        job.items = [_Item(job, n, chunk, loop.create_future(), now) for n, chunk in enumerate(chunks)]
        job.short = 0 < sum(chunk.end - chunk.start for chunk in chunks) <= self.express_seconds
        segments = self._segments(job)
        if not job.items:
            return BatchedTranscription(job.language, None, segments, lambda: 1.0)
        job.pending.extend(job.items)
        self._jobs.append(job)
        self._ensure_collector()
        self._changed.set()
        try:
            await asyncio.shield(job.items[0].future)
        except BaseException:
            await segments.aclose()
            self._drop(job)
            raise
        return BatchedTranscription(job.language, job.language_probability, segments, job.decoded)

    async def _segments(self, job: _Job) -> AsyncGenerator[Segment, None]:
        index = 0
        try:
            for item in job.items:
                for segment in await asyncio.shield(item.future):
                    yield segment.model_copy(update={"id": index})
                    index += 1
        finally:
            self._drop(job)

    def _drop(self, job: _Job) -> None:
        """Forget a finished, failed or cancelled job; its chunks not yet batched are never decoded."""
        if job.dropped:
            return
        job.dropped = True
        for item in job.pending:
            _fail(item, ChunkDroppedError(f"task {job.task_id}: chunk {item.number} was dropped"))
        job.pending.clear()
        with suppress(ValueError):
            self._jobs.remove(job)
        self._changed.set()
        self._released.set()

    # ------------------------------------------------------------------ collector
    def _ensure_collector(self) -> None:
        if self._collector is None or self._collector.done():
            self._collector = asyncio.create_task(self._collect(), name="batch-scheduler")

    async def close(self) -> None:
        """Stop the collector and the batches it started, and fail whatever is still queued."""
        tasks = [task for task in (self._collector, *self._running, self._express) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._collector = self._express = None
        self._running.clear()
        for job in list(self._jobs):
            for item in job.pending:
                _fail(item, RuntimeError("the model instance was closed"))
            job.pending.clear()
            self._drop(job)

    def _live(self) -> list[_Job]:
        for job in list(self._jobs):
            if job.cancelled():
                logger.info("task %s cancelled: dropping %d queued chunk(s)", job.task_id, len(job.pending))
                self._drop(job)
        return [job for job in self._jobs if job.pending]

    @property
    def _regular_lanes(self) -> int:
        """Regular batches that may run now: one while an express batch runs, so that the short
        tasks in it share the cores with one batch at most."""
        return 1 if self._express is not None else self.lanes

    @property
    def express_free(self) -> bool:
        return self.express_seconds > 0 and self._express is None

    def _candidates(self, express: bool) -> list[_Job]:
        """Jobs a new batch may take chunks from: on the express lane short ones only; on a
        regular lane not the short ones while the express lane is free to take them. A job
        whose language is still unknown adds nothing while one of its chunks is in a batch."""
        jobs = [job for job in self._live() if job.language is not None or job.in_flight == 0]
        if express:
            return [job for job in jobs if job.short]
        if self.express_free:
            return [job for job in jobs if not job.short]
        return jobs

    def select(self, *, express: bool = False) -> list[list[_Item]]:
        """The next batch, as rows (30 s windows) of chunks: best priority first, round-robin
        across tasks (oldest first) within it, short chunks packed together where they may be."""
        jobs = self._candidates(express)
        if not jobs:
            return []
        head = min(jobs, key=lambda job: (job.priority, job.sequence))
        same = sorted((job for job in jobs if job.key == head.key), key=lambda j: (j.priority, j.sequence))
        rows: list[list[_Item]] = []
        used: list[float] = []
        keys: list[object] = []

        def place(item: _Item) -> bool:
            length = item.chunk.end - item.chunk.start
            key = None if item.solo or not self.pack else _pack_key(item.job)
            if key is not None and not item.skipped:  # a skipped chunk starts a window of its own
                for number, row in enumerate(rows):
                    if keys[number] == key and used[number] + PACK_GAP + length <= CHUNK_SECONDS:
                        row.append(item)
                        used[number] += PACK_GAP + length
                        return True
            if len(rows) == self.batch_size:
                return False
            rows.append([item])
            used.append(length)
            keys.append(key)
            return True

        for _priority, group in itertools.groupby(same, key=lambda job: job.priority):
            members = list(group)
            for turn in itertools.count():
                added = False
                for job in members:
                    if turn < len(job.pending):
                        if not place(job.pending[turn]):
                            return rows
                        added = True
                if not added:
                    break
        return rows

    def _ready_in(self, *, express: bool = False) -> float:
        """Seconds until the next batch of this lane should start: 0 when full or its oldest
        chunk waited enough; infinity when it has nothing to take."""
        jobs = self._candidates(express)
        if not jobs:
            return float("inf")
        head = min(jobs, key=lambda job: (job.priority, job.sequence))
        same = [job for job in jobs if job.key == head.key]
        if (
            sum(len(job.pending) for job in same) >= self.batch_size
            and len(self.select(express=express)) == self.batch_size
        ):
            return 0.0
        oldest = min(job.pending[0].queued_at for job in same)
        arriving = self._arriving_short if express else self._arriving
        wait = max(self.max_batch_wait, ARRIVAL_WAIT_SECONDS) if arriving else self.max_batch_wait
        return max(0.0, oldest + wait - time.monotonic())

    async def _collect(self) -> None:
        while True:
            self._changed.clear()
            delays = []
            for express in (True, False):
                if express and not self.express_free:
                    continue
                if not express and len(self._running) >= self._regular_lanes:
                    continue
                delay = self._ready_in(express=express)
                if delay == 0:
                    self._start(express=express)
                    break
                delays.append(delay)
            else:
                delay = min(delays, default=float("inf"))
                with suppress(TimeoutError):
                    async with asyncio.timeout(None if delay == float("inf") else delay):
                        await self._changed.wait()

    def _start(self, *, express: bool) -> None:
        """Take the next batch's chunks off their queues and run it as a task of its own."""
        rows = self.select(express=express)
        batch = [item for row in rows for item in row]
        for item in batch:
            item.job.pending.remove(item)
            item.job.in_flight += 1
        task = asyncio.create_task(self._run_batch(rows, express=express), name="batch")
        if express:
            self._express = task
            self._update_short_idle()
        else:
            self._running.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            if self._express is done:
                self._express = None
                self._update_short_idle()
            self._running.discard(done)
            self._changed.set()

        task.add_done_callback(finished)

    async def _run_batch(self, rows: list[list[_Item]], *, express: bool = False) -> None:
        batch = [item for row in rows for item in row]
        try:
            await self._run_rows(rows, express=express)
        except asyncio.CancelledError:
            for item in batch:
                _fail(item, RuntimeError("the batch scheduler stopped"))
            raise
        except Exception:  # a bug here must not stop batching for every other task
            logger.exception("batch scheduler failed")
            for item in batch:
                if item not in item.job.pending:
                    _fail(item, RuntimeError("the batch scheduler failed"))
        finally:
            for item in batch:
                item.job.in_flight -= 1

    async def _run_rows(self, rows: list[list[_Item]], *, express: bool) -> None:
        started = time.perf_counter()
        monotonic = time.monotonic()
        batch = [item for row in rows for item in row]
        try:
            results = await self._run_step(self._decode, rows, express)
        except Exception as exc:
            logger.warning("a batch of %d chunk(s) failed: %s", len(batch), exc)
            for item in batch:
                _fail(item, exc)
            return
        logger.debug(
            "%s batch: %d window(s), %d chunk(s) of %d task(s), %.2f s",
            "express" if express else "regular",
            len(rows),
            len(batch),
            len({id(item.job) for item in batch}),
            time.perf_counter() - started,
        )
        self.history.append(
            BatchRecord(
                tuple((item.job.task_id, item.number) for item in batch),
                round(time.perf_counter() - started, 3),
                windows=len(rows),
                express=express,
                started=monotonic,
            )
        )
        for item, segments in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if segments is REQUEUE:  # its language is known now: it packs with its own kind
                item.job.pending.append(item)
                item.job.pending = deque(sorted(item.job.pending, key=lambda i: i.number))
                self._changed.set()
                continue
            if segments is None or segments is SKIPPED:
                # Straddled by a segment: decode alone. Skipped: pack it once more (the window now
                # starts with it), then alone.
                logger.info(
                    "task %s chunk %d was %s in a packed window; decoding it again",
                    item.job.task_id,
                    item.number,
                    "straddled" if segments is None else "skipped",
                )
                item.solo = segments is None or item.skipped
                item.skipped = True
                if item.job.dropped:
                    _fail(
                        item, ChunkDroppedError(f"task {item.job.task_id}: chunk {item.number} was dropped")
                    )
                else:
                    item.job.pending.append(item)
                    item.job.pending = deque(sorted(item.job.pending, key=lambda i: i.number))
                    self._changed.set()
                continue
            item.future.set_result(segments)

    def yield_to_short(self) -> None:
        """In a worker thread of a long task (a regular batch, or a long file's VAD): wait while
        a short task is prepared or decoded, so that it gets the cores (bounded, so a stream of
        short tasks cannot stall a long file)."""
        self._short_idle.wait(timeout=SHORT_YIELD_SECONDS)

    def _decode(self, rows: list[list[_Item]], express: bool = False) -> list[list[Segment] | None]:
        """Blocking, in a worker thread: one encode, language detection where needed, one generate.
        A regular batch pauses before each window's encoding and before its decoding while a
        short task is prepared or decoded.

        Returns each chunk's segments in batch order; ``None`` for a packed chunk that must be
        decoded again on its own, ``SKIPPED`` for one the decoder stopped before, ``REQUEUE``
        for one whose language turned out to differ from its row's."""
        decoder = self._decoder
        pause = None if express else self.yield_to_short  # an express batch would wait on itself
        windows = [_window(row) for row in rows]
        encoded = decoder.encode(
            [decoder.features(samples, chunk) for samples, chunk, _ in windows], pause=pause
        )
        self._detect_languages(rows, windows, encoded)
        prompts: list[list[int]] = []
        for row in rows:
            for item in row:
                job = item.job
                if job.prompt is None:
                    assert job.language is not None
                    job.prompt = decoder.prompt(job.task_type, job.options, job.language)
            prompts.append(row[0].job.prompt.prompt)  # type: ignore[union-attr]
        if pause is not None:
            pause()
        results = decoder.generate(encoded, prompts, rows[0][0].job.options)
        outcome: list[list[Segment] | None] = []
        for row, (_samples, chunk, offsets), result in zip(rows, windows, results, strict=True):
            job = row[0].job
            segments = list(decoder.segments(chunk, result, job.prompt.tokenizer, job.options))  # type: ignore[union-attr]
            if len(row) == 1:
                outcome.append(segments)
                continue
            unpacked = _unpack(row, offsets, segments)
            for item, mine in zip(row, unpacked, strict=True):
                outcome.append(mine if item.job.language == job.language else REQUEUE)
        return outcome

    def _detect_languages(
        self,
        rows: list[list[_Item]],
        windows: list[tuple[npt.NDArray[np.float32], Chunk, list[float]]],
        encoded: Encoded,
    ) -> None:
        """Give every job still without a language the one detected on its first chunk: from the
        row's encoder output for a chunk alone, from the chunk's own frames for a packed one."""
        decoder = self._decoder
        unknown = [
            (number, position, item)
            for number, row in enumerate(rows)
            for position, item in enumerate(row)
            if item.job.language is None
        ]
        if not unknown:
            return
        alone = any(len(rows[number]) == 1 for number, _, _ in unknown)
        whole = decoder.detect_language(encoded) if alone else []
        packed = [(number, position, item) for number, position, item in unknown if len(rows[number]) > 1]
        spans = [
            (
                number,
                windows[number][2][position],
                windows[number][2][position] + item.chunk.end - item.chunk.start,
            )
            for number, position, item in packed
        ]
        detected = decoder.detect_language_spans(encoded, spans)
        own = {id(item): found for (_, _, item), found in zip(packed, detected, strict=True)}
        for number, _position, item in sorted(unknown, key=lambda entry: entry[2].number):
            job = item.job
            if job.language is None:  # its first chunk here: a job's chunks are taken in order
                job.language, probability = whole[number] if len(rows[number]) == 1 else own[id(item)]
                job.language_probability = probability


def _pack_key(job: _Job) -> object:
    """Chunks of jobs with equal keys may share one window: same language (or both still to be
    detected, chunk by chunk), prompt and filters."""
    options = job.options
    return (
        job.language,
        job.task_type,
        options.initial_prompt,
        options.hotwords,
        options.no_speech_threshold,
        options.log_prob_threshold,
    )


def _window(row: list[_Item]) -> tuple[npt.NDArray[np.float32], Chunk, list[float]]:
    """The audio one batch row decodes: a chunk as it is, or packed chunks ``PACK_GAP`` apart."""
    if len(row) == 1:
        return row[0].job.samples, row[0].chunk, [0.0]
    pieces = [
        item.job.samples[int(item.chunk.start * SAMPLE_RATE) : int(item.chunk.end * SAMPLE_RATE)]
        for item in row
    ]
    gap = int(PACK_GAP * SAMPLE_RATE)
    audio = np.zeros(sum(len(piece) for piece in pieces) + gap * (len(pieces) - 1), dtype=np.float32)
    offsets: list[float] = []
    cursor = 0
    for piece in pieces:
        audio[cursor : cursor + len(piece)] = piece
        offsets.append(cursor / SAMPLE_RATE)
        cursor += len(piece) + gap
    return audio, Chunk(0.0, len(audio) / SAMPLE_RATE), offsets


def _unpack(row: list[_Item], offsets: list[float], segments: list[Segment]) -> list[list[Segment] | None]:
    """Segments of a packed window back to their chunks, on each chunk's own timeline.

    A segment lying over two chunks of different tasks (speech of both merged into one segment)
    cannot be split safely: those chunks are returned as ``None`` and decoded again alone. Over
    two neighbouring chunks of one task it is kept whole, by the first, ending on the second's
    timeline. A chunk that got no segment at all is returned as ``SKIPPED``."""
    spans = [
        (offset, offset + item.chunk.end - item.chunk.start)
        for item, offset in zip(row, offsets, strict=True)
    ]
    owned: list[list[Segment] | None] = [[] for _ in row]
    joined: list[int | None] = [None] * len(row)
    """For a chunk whose speech a segment of the chunk before it (same task) holds: that chunk."""
    for segment in segments:
        overlaps = [min(segment.end, end) - max(segment.start, start) for start, end in spans]
        ranked = sorted(range(len(row)), key=lambda n: overlaps[n], reverse=True)
        best = ranked[0]
        if overlaps[best] <= 0:
            continue  # only in the silence between chunks
        # Whisper's segment times are loose (a segment often runs on into the gap): only a
        # segment covering much of a second chunk holds speech of both.
        second, (second_start, second_end) = ranked[1], spans[ranked[1]]
        if overlaps[second] > max(STRADDLE_SECONDS, (second_end - second_start) / 2):
            first, later = min(best, second), max(best, second)
            target = owned[first]
            if _neighbours(row[first], row[later]) and later == first + 1 and target is not None:
                start = row[first].chunk.start + max(segment.start - spans[first][0], 0.0)
                end = row[later].chunk.start + min(segment.end, spans[later][1]) - spans[later][0]
                target.append(segment.model_copy(update={"start": round(start, 3), "end": round(end, 3)}))
                joined[later] = first
                continue
            owned[best] = owned[second] = None
            continue
        target = owned[best]
        if target is None:
            continue
        item, (start, end) = row[best], spans[best]
        target.append(
            segment.model_copy(
                update={
                    "start": round(item.chunk.start + max(segment.start - start, 0.0), 3),
                    "end": round(item.chunk.start + min(segment.end, end) - start, 3),
                }
            )
        )
    # A joined pair is decoded again together or not at all (their text is in one segment).
    changed = True
    while changed:
        changed = False
        for number, before in enumerate(joined):
            if before is not None and (owned[number] is None) != (owned[before] is None):
                owned[number] = owned[before] = None
                changed = True
    # Whisper may stop before the end of a window: a chunk left without any segment was skipped,
    # not silent (VAD found speech in it), so it is decoded again; so is the last chunk with
    # segments when they end well before its speech does (the decoder stopped inside it).
    last = max(
        (n for n, mine in enumerate(owned) if mine or (joined[n] is not None and mine is not None)),
        default=None,
    )
    if last is not None and segments and segments[-1].end < spans[last][1] - CUT_SHORT_SECONDS:
        before = joined[last]
        if before is not None:  # its start is in the chunk before's segment: both again, alone
            owned[last] = owned[before] = None
        else:
            owned[last] = []
    return [SKIPPED if mine == [] and joined[n] is None else mine for n, mine in enumerate(owned)]


def _neighbours(first: _Item, later: _Item) -> bool:
    """Consecutive chunks of one task: a segment over both stays one segment of that task."""
    return first.job is later.job and later.number == first.number + 1


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
        item.future.exception()  # retrieved: nobody may be left to read it
