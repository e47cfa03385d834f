"""Cross-task batching: the next window of many streams decoded in one batch.

Every task that runs on a faster-whisper instance with ``WHISPER__BATCH_SIZE`` > 1 hands its
audio to the instance's ``BatchScheduler`` as one *stream* (``app.engines.longform``: Whisper's
own long-form algorithm, window after window, with the previous text as the prompt). One
collector per instance forms batches of up to ``batch_size`` streams and runs each batch as one
inference step (``longform.decode_step``): every stream's next 30 s window is encoded, and the
rows are decoded in one ``generate`` call per window length and search options, each row with
its own prompt. A row that needs the next temperature comes back in a later batch.

* **priority first**: the streams of the highest-priority tasks enter a batch before any other;
* **round-robin** among tasks of the same priority, oldest task first, one stream per task per
  turn: a long file fills the batch only while nobody else waits, so it cannot starve short ones;
* **splitting**: while there are fewer streams than rows in the regular lanes' batches
  (``batch_size`` × ``lanes``), a long task's stream is split in two at a pause of at least
  ``SPLIT_PAUSE_SECONDS`` (``vad.find_pauses``) near the middle of what it has left, and the second half
  becomes a stream of its own (decoded from a fresh prompt): a lone long file fills the batches
  with as few streams as it takes. Text never crosses tasks, and a cut lies in silence, shortly
  before the next speech;
* **short wait**: a batch that is not full waits at most ``max_batch_wait`` seconds, from when its
  oldest stream became ready, for company; a lone task is never held back longer;
* a cancelled task's streams are dropped before the next batch is formed;
* **lanes**: up to ``lanes`` batches run at once (CTranslate2 workers sharing the weights): on a
  2-core CPU one batch's serial stretches leave room for another's;
* **express lane**: a short task (at most ``express_seconds`` of audio) is decoded in a batch
  of short tasks only, on one more worker, so it never waits behind, nor shares a batch with,
  the windows of long files; while that lane is busy, regular batches pause at their next
  encoder or decoder call (``yield_to_short``).

Segments reach the task in order (``BatchedTranscription.segments``): a stream's as its windows
are decoded, the next stream's once the one before it is finished.
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
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engines.base import SAMPLE_RATE
from app.engines.batched import BatchedDecoder
from app.engines.longform import FRAMES_PER_SECOND, WINDOW_FRAMES, Clip, Stream, decode_step
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)

SPLIT_PAUSE_SECONDS = 1.0
"""A long task is split into streams only at pauses at least this long."""
MIN_SPLIT_SECONDS = 30.0
"""Each side of a split keeps at least this much audio (a window's worth)."""
MIN_OVERLAP_SECONDS = 2.0
MAX_OVERLAP_SECONDS = 20.0
"""Streams split at a pause overlap up to the next pause between these many seconds after it
(``Stream.split``): the stream before the cut decodes the speech after it too."""
ARRIVAL_WAIT_SECONDS = 2.0
"""Most seconds a batch that is not full waits, from its oldest stream's readiness, while other
tasks are still being prepared (audio decoding, VAD) for this instance: their streams fill it."""
SHORT_YIELD_SECONDS = 2.0
"""Longest a regular batch pauses, at one window, for short tasks being prepared or decoded."""
MAX_HELD_SECONDS = 4 * 3600.0
"""Decoded audio (about 920 MB as float32) above which new tasks wait for room before decoding."""
StepRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking function as one inference step (the pool's device gate and worker thread)."""


class StreamDroppedError(Exception):
    """A task's streams were dropped before they were decoded: it was cancelled or stopped reading."""


@dataclass(frozen=True)
class PreparedAudio:
    """A task's audio, ready for the scheduler (``FasterWhisperModel.prepare``)."""

    samples: npt.NDArray[np.float32]
    duration: float
    clips: list[Clip]
    """What to decode, in frames (the whole file, ``clip_timestamps`` or VAD speech)."""
    cuts: list[int]
    """Frames in the middle of pauses where the task may be split into streams."""
    loudest: float | None = None
    """The recording's loudest log-mel level (``longform.loudest_level``)."""
    meetings: list[int] = field(default_factory=list)
    """Frames in the middle of shorter pauses where two overlapping streams of the task meet."""
    loud: npt.NDArray[np.bool_] | None = None
    """Where the audio is louder than its pauses (``vad.Pauses.loud``), for a task that may be
    split: the streams check that their windows' words account for it (``Stream.loud``)."""


@dataclass(eq=False)
class _Job:
    """One task's submission."""

    task_id: str
    priority: int
    """Lower runs first (the stored ``TaskPriority.rank``)."""
    sequence: int
    samples: npt.NDArray[np.float32]
    streams: list[Stream]
    cuts: list[int]
    meetings: list[int]
    cancelled: Callable[[], bool]
    short: bool
    """At most ``express_seconds`` of audio: eligible for the express lane."""
    total_frames: int
    ready_at: dict[Stream, float] = field(default_factory=dict)
    in_flight: set[Stream] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first window is decoded (the language is known), or on failure."""
    error: BaseException | None = None
    dropped: bool = False

    def ready(self) -> list[Stream]:
        """Streams that may join a batch now, in order."""
        if self.dropped or self.error is not None:
            return []
        return [stream for stream in self.streams if stream not in self.in_flight and not stream.done]

    @property
    def language_known(self) -> bool:
        return all(stream.language is not None for stream in self.streams)

    def decoded(self) -> float:
        """The share of this task's audio already decoded (its streams advance side by side)."""
        if self.total_frames <= 0:
            return 1.0
        return min(1.0, sum(stream.decoded_frames() for stream in self.streams) / self.total_frames)


@dataclass
class BatchedTranscription:
    """A task's transcription through the scheduler: language known, segments arriving in order."""

    language: str | None
    language_probability: float | None
    segments: AsyncGenerator[Segment, None]
    """Read it inside ``contextlib.aclosing`` so that leaving early drops the task's streams."""
    decoded: Callable[[], float]
    """The share (0 to 1) of the task's audio already decoded."""


@dataclass(frozen=True)
class BatchRecord:
    """One batch as it was run."""

    rows: tuple[tuple[str, int], ...]
    """(task id, stream start in frames) of every row, in batch order."""
    seconds: float
    express: bool = False
    """Run on the express lane (short tasks only)."""
    started: float = 0.0
    """``time.monotonic()`` when the batch started."""
    calls: int = 0
    """``generate`` calls the batch took (one per window length, search options and prompt length)."""


class BatchScheduler:
    """Batches the streams of every task leasing one model instance (see the module doc)."""

    def __init__(
        self,
        decoder: BatchedDecoder,
        run_step: StepRunner,
        *,
        batch_size: int,
        max_batch_wait: float,
        max_held_seconds: float = MAX_HELD_SECONDS,
        lanes: int = 1,
        express_seconds: float = 0.0,
        history: int = 256,
    ) -> None:
        self._decoder = decoder
        self._run_step = run_step
        self.batch_size = batch_size
        self.max_batch_wait = max_batch_wait
        self.max_held_seconds = max_held_seconds
        self.lanes = lanes
        """Regular batches running at once."""
        self.express_seconds = express_seconds
        """Tasks with at most this much audio use the express lane; 0 turns it off."""
        self._running: set[asyncio.Task[None]] = set()
        self._express: asyncio.Task[None] | None = None
        self._short_idle = threading.Event()
        """Clear while a short task is prepared or an express batch runs: regular batches pause
        at their next encoder or decoder call, so the short task gets the cores."""
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
    def held_seconds(self) -> float:
        """Seconds of decoded audio the queued tasks hold in memory (float32: 230 MB an hour)."""
        return sum(len(job.samples) for job in self._jobs) / SAMPLE_RATE

    async def room(self) -> None:
        """Wait until the queued tasks hold less than ``max_held_seconds`` of decoded audio, so
        that many long files running at once cannot exhaust memory (one always gets in). Await
        it in turn with the decoding that follows (``Lease.transcribe``)."""
        while self._jobs and self.held_seconds >= self.max_held_seconds:
            self._released.clear()
            await self._released.wait()

    @contextlib.asynccontextmanager
    async def arriving(self, *, short: bool = False) -> AsyncIterator[None]:
        """Around a task's preparation (decoding, VAD, waiting its turn for them): a batch that
        is not full waits for the streams of tasks on their way, up to ``ARRIVAL_WAIT_SECONDS``
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
    def pending_streams(self) -> int:
        return sum(len(job.ready()) for job in self._jobs)

    @property
    def tasks(self) -> int:
        return len(self._jobs)

    async def transcribe(
        self,
        audio: PreparedAudio,
        task_type: TaskType,
        options: DecodeOptions,
        *,
        task_id: str = "",
        priority: int = 1,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchedTranscription:
        """Queue one task; returns once its first window is decoded (language known)."""
        language = options.language if self._decoder.multilingual else "en"
        stream = Stream(
            audio.samples,
            audio.clips,
            task_type,
            options,
            language,
            None if language is None else 1.0,
            short_windows=self._decoder.short_windows,
            loudest=audio.loudest,
            loud=audio.loud,
        )
        job = _Job(
            task_id=task_id,
            priority=priority,
            sequence=next(self._sequence),
            samples=audio.samples,
            streams=[stream],
            cuts=audio.cuts,
            meetings=audio.meetings,
            cancelled=cancelled or (lambda: False),
            short=0 < stream.frames <= self.express_seconds * FRAMES_PER_SECOND,
            total_frames=stream.frames,
        )
        segments = self._segments(job)
        if stream.done:
            return BatchedTranscription(language, None, segments, lambda: 1.0)
        job.ready_at[stream] = time.monotonic()
        self._jobs.append(job)
        self._ensure_collector()
        self._changed.set()
        try:
            await job.started.wait()
        except BaseException:
            await segments.aclose()
            self._drop(job)
            raise
        if job.error is not None:
            await segments.aclose()
            raise job.error
        return BatchedTranscription(stream.language, stream.language_probability, segments, job.decoded)

    async def _segments(self, job: _Job) -> AsyncGenerator[Segment, None]:
        index = 0
        position = 0
        emitted = 0
        try:
            while True:
                if job.error is not None:
                    raise job.error
                if position >= len(job.streams):
                    return
                stream = job.streams[position]
                while emitted < len(stream.segments):
                    segment = stream.segments[emitted]
                    emitted += 1
                    yield segment.model_copy(update={"id": index})
                    index += 1
                if stream not in job.in_flight and stream.done and emitted == len(stream.segments):
                    position, emitted = position + 1, 0
                    continue
                job.changed.clear()
                await job.changed.wait()
        finally:
            self._drop(job)

    def _drop(self, job: _Job, error: BaseException | None = None) -> None:
        """Forget a finished, failed or cancelled job; its streams get no further batches."""
        if job.dropped:
            return
        job.dropped = True
        if error is not None and job.error is None:
            job.error = error
        elif job.error is None and any(
            not stream.done for stream in job.streams if stream not in job.in_flight
        ):
            job.error = StreamDroppedError(f"task {job.task_id} was dropped")
        with suppress(ValueError):
            self._jobs.remove(job)
        job.started.set()
        job.changed.set()
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
            self._drop(job, RuntimeError("the model instance was closed"))

    def _live(self) -> list[_Job]:
        for job in list(self._jobs):
            if job.cancelled():
                logger.info("task %s cancelled: dropping its streams", job.task_id)
                self._drop(job, StreamDroppedError(f"task {job.task_id} was cancelled"))
        return [job for job in self._jobs if job.ready()]

    @property
    def _regular_lanes(self) -> int:
        """Regular batches that may run now: one while an express batch runs, so that the short
        tasks in it share the cores with one batch at most."""
        return 1 if self._express is not None else self.lanes

    @property
    def express_free(self) -> bool:
        return self.express_seconds > 0 and self._express is None

    def _candidates(self, express: bool) -> list[_Job]:
        """Jobs a new batch may take streams from: on the express lane short ones only; on a
        regular lane not the short ones while the express lane is free to take them."""
        jobs = self._live()
        if express:
            return [job for job in jobs if job.short]
        if self.express_free:
            return [job for job in jobs if not job.short]
        return jobs

    def _split(self, jobs: list[_Job], free: int) -> None:
        """Split long streams at pauses until ``free`` more streams are ready, or none can be."""
        while free > 0:
            best: tuple[int, _Job, Stream] | None = None
            for job in jobs:
                if not job.cuts or not job.language_known:
                    continue
                for stream in job.ready():
                    remaining = stream.remaining_frames()
                    if remaining >= 2 * MIN_SPLIT_SECONDS * FRAMES_PER_SECOND and (
                        best is None or remaining > best[0]
                    ):
                        best = (remaining, job, stream)
            if best is None:
                return
            _remaining, job, stream = best
            if not self._split_stream(job, stream):
                job.cuts = []  # nowhere left to cut this task: stop looking at it
                continue
            free -= 1

    def _split_stream(self, job: _Job, stream: Stream) -> bool:
        stream.window()  # settles its seek and clip
        low = stream.seek + max(WINDOW_FRAMES, round(MIN_SPLIT_SECONDS * FRAMES_PER_SECOND))
        high = stream.end - round(MIN_SPLIT_SECONDS * FRAMES_PER_SECOND)
        middle = stream.seek + stream.remaining_frames() // 2
        options = [cut for cut in job.cuts if low <= cut <= high]
        for cut in sorted(options, key=lambda cut: abs(cut - middle)):
            part = stream.split(cut, self._overlap_end(job.meetings, cut, stream.end))
            if part is not None and not part.done:
                job.streams.insert(job.streams.index(stream) + 1, part)
                job.ready_at[part] = time.monotonic()
                logger.debug("task %s: split at %.1f s", job.task_id, cut / FRAMES_PER_SECOND)
                return True
        return False

    @staticmethod
    def _overlap_end(meetings: list[int], cut: int, end: int) -> int:
        """Where the streams on either side of ``cut`` meet: the first pause at least
        ``MIN_OVERLAP_SECONDS`` after it (the speech that follows the cut is decoded by the stream
        before it too, with its prompt), or ``cut`` itself when there is none within
        ``MAX_OVERLAP_SECONDS``."""
        low = cut + round(MIN_OVERLAP_SECONDS * FRAMES_PER_SECOND)
        high = min(end - 1, cut + round(MAX_OVERLAP_SECONDS * FRAMES_PER_SECOND))
        return min((later for later in meetings if low <= later <= high), default=cut)

    def select(self, *, express: bool = False) -> list[tuple[_Job, Stream]]:
        """The next batch's rows: best priority first, round-robin across tasks (oldest first)
        within it, long tasks split into more streams while rows are free."""
        jobs = sorted(self._candidates(express), key=lambda job: (job.priority, job.sequence))
        if not jobs:
            return []
        if not express:  # enough streams for every regular lane's batch
            active = sum(
                1 for job in jobs for stream in job.streams if stream in job.in_flight or not stream.done
            )
            self._split(jobs, self.batch_size * self.lanes - active)
        rows: list[tuple[_Job, Stream]] = []
        for _priority, group in itertools.groupby(jobs, key=lambda job: job.priority):
            members = [(job, job.ready()) for job in group]
            for turn in itertools.count():
                added = False
                for job, streams in members:
                    if turn < len(streams):
                        rows.append((job, streams[turn]))
                        added = True
                        if len(rows) == self.batch_size:
                            return rows
                if not added:
                    break
        return rows

    def _ready_in(self, *, express: bool = False) -> float:
        """Seconds until the next batch of this lane should start: 0 when full or its oldest
        stream waited enough; infinity when it has nothing to take."""
        rows = self.select(express=express)
        if not rows:
            return float("inf")
        if len(rows) == self.batch_size:
            return 0.0
        oldest = min(job.ready_at.get(stream, 0.0) for job, stream in rows)
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
        """Take the next batch's streams and run it as a task of its own."""
        rows = self.select(express=express)
        for job, stream in rows:
            job.in_flight.add(stream)
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

    async def _run_batch(self, rows: list[tuple[_Job, Stream]], *, express: bool = False) -> None:
        started = time.perf_counter()
        monotonic = time.monotonic()
        failure: BaseException | None = None
        calls = 0
        try:
            calls = await self._run_step(self._decode, [stream for _job, stream in rows], express)
        except asyncio.CancelledError:
            failure = RuntimeError("the batch scheduler stopped")
            raise
        except Exception as exc:  # fails the batch's tasks, never batching for the others
            logger.warning("a batch of %d stream(s) failed: %s", len(rows), exc)
            failure = exc
        finally:
            now = time.monotonic()
            for job, stream in rows:
                job.in_flight.discard(stream)
                job.ready_at[stream] = now
                if failure is not None:
                    self._drop(job, failure)
                elif stream.language is not None:
                    job.started.set()
                job.changed.set()
            self._changed.set()
        self.history.append(
            BatchRecord(
                tuple((job.task_id, stream.start) for job, stream in rows),
                round(time.perf_counter() - started, 3),
                express=express,
                started=monotonic,
                calls=calls,
            )
        )
        logger.debug(
            "%s batch: %d row(s) in %d call(s), %d task(s), %.2f s",
            "express" if express else "regular",
            len(rows),
            calls,
            len({id(job) for job, _stream in rows}),
            time.perf_counter() - started,
        )

    def yield_to_short(self) -> None:
        """In a worker thread of a long task (a regular batch, or a long file's VAD): wait while
        a short task is prepared or decoded, so that it gets the cores (bounded, so a stream of
        short tasks cannot stall a long file)."""
        self._short_idle.wait(timeout=SHORT_YIELD_SECONDS)

    def _decode(self, streams: list[Stream], express: bool = False) -> int:
        """Blocking, in a worker thread: one step of every stream (``longform.decode_step``). A
        regular batch pauses before each encoder and decoder call while a short task is
        prepared or decoded."""
        return decode_step(self._decoder, streams, None if express else self.yield_to_short)
