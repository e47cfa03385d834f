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
* each task's chunks are taken in order, so a task's first chunk is in the first batch that
  holds any of its chunks: the encoder output of that batch also detects its language;
* a cancelled task's pending chunks are dropped before the next batch is formed.

Results go back through one future per chunk; the task reads them in order (``segments``), with
timestamps already on its own timeline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from app.engines.batched import BatchedDecoder, Chunk, ChunkPrompt, batch_key
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType

logger = logging.getLogger(__name__)

T = TypeVar("T")
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


@dataclass
class BatchedTranscription:
    """A task's stream through the scheduler: language known, segments arriving as batches finish."""

    language: str | None
    language_probability: float | None
    segments: AsyncGenerator[Segment, None]
    """Read it inside ``contextlib.aclosing`` so that leaving early drops the pending chunks."""


@dataclass(frozen=True)
class BatchRecord:
    """One batch as it was run: (task id, chunk number) per row, in row order."""

    rows: tuple[tuple[str, int], ...]
    seconds: float


class BatchScheduler:
    """Packs chunks of every task leasing one model instance into batches (see the module doc)."""

    def __init__(
        self,
        decoder: BatchedDecoder,
        run_step: StepRunner,
        *,
        batch_size: int,
        max_batch_wait: float,
        history: int = 256,
    ) -> None:
        self._decoder = decoder
        self._run_step = run_step
        self.batch_size = batch_size
        self.max_batch_wait = max_batch_wait
        self._jobs: list[_Job] = []
        self._sequence = itertools.count()
        self._changed = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self.history: deque[BatchRecord] = deque(maxlen=history)
        """The most recent batches, newest last (health and tests read it)."""

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
            language=options.language,
        )
        now = time.monotonic()
        job.items = [_Item(job, n, chunk, loop.create_future(), now) for n, chunk in enumerate(chunks)]
        segments = self._segments(job)
        if not job.items:
            return BatchedTranscription(options.language, None, segments)
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
        return BatchedTranscription(job.language, job.language_probability, segments)

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

    # ------------------------------------------------------------------ collector
    def _ensure_collector(self) -> None:
        if self._collector is None or self._collector.done():
            self._collector = asyncio.create_task(self._collect(), name="batch-scheduler")

    async def close(self) -> None:
        """Stop the collector and fail whatever is still queued."""
        if self._collector is not None:
            self._collector.cancel()
            with suppress(asyncio.CancelledError):
                await self._collector
            self._collector = None
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

    def select(self) -> list[_Item]:
        """The next batch: best priority first, round-robin across tasks (oldest first) within it."""
        jobs = self._live()
        if not jobs:
            return []
        head = min(jobs, key=lambda job: (job.priority, job.sequence))
        same = sorted((job for job in jobs if job.key == head.key), key=lambda j: (j.priority, j.sequence))
        batch: list[_Item] = []
        for _priority, group in itertools.groupby(same, key=lambda job: job.priority):
            members = list(group)
            for turn in itertools.count():
                added = False
                for job in members:
                    if len(batch) == self.batch_size:
                        return batch
                    if turn < len(job.pending):
                        batch.append(job.pending[turn])
                        added = True
                if not added:
                    break
        return batch

    def _ready_in(self) -> float:
        """Seconds until the next batch should start: 0 when full or its oldest chunk waited enough."""
        jobs = self._live()
        if not jobs:
            return float("inf")
        head = min(jobs, key=lambda job: (job.priority, job.sequence))
        same = [job for job in jobs if job.key == head.key]
        if sum(len(job.pending) for job in same) >= self.batch_size:
            return 0.0
        oldest = min(job.pending[0].queued_at for job in same)
        return max(0.0, oldest + self.max_batch_wait - time.monotonic())

    async def _collect(self) -> None:
        while True:
            self._changed.clear()
            delay = self._ready_in()
            if delay > 0:
                with suppress(TimeoutError):
                    async with asyncio.timeout(None if delay == float("inf") else delay):
                        await self._changed.wait()
                continue
            batch = self.select()
            for item in batch:
                item.job.pending.remove(item)
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                for item in batch:
                    _fail(item, RuntimeError("the batch scheduler stopped"))
                raise
            except Exception:  # a bug here must not stop batching for every other task
                logger.exception("batch scheduler failed")

    async def _run_batch(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            results = await self._run_step(self._decode, batch)
        except Exception as exc:
            logger.warning("a batch of %d chunk(s) failed: %s", len(batch), exc)
            for item in batch:
                _fail(item, exc)
            return
        self.history.append(
            BatchRecord(
                tuple((item.job.task_id, item.number) for item in batch),
                round(time.perf_counter() - started, 3),
            )
        )
        for item, segments in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(segments)

    def _decode(self, batch: list[_Item]) -> list[list[Segment]]:
        """Blocking, in a worker thread: one encode, language detection where needed, one generate."""
        decoder = self._decoder
        encoded = decoder.encode([decoder.features(item.job.samples, item.chunk) for item in batch])
        if any(item.job.language is None for item in batch):
            detected = decoder.detect_language(encoded)
            for item, (language, probability) in zip(batch, detected, strict=True):
                if item.job.language is None:  # its first chunk: a job's chunks are taken in order
                    item.job.language = language
                    item.job.language_probability = probability if decoder.multilingual else None
        prompts: list[list[int]] = []
        for item in batch:
            job = item.job
            if job.prompt is None:
                assert job.language is not None
                job.prompt = decoder.prompt(job.task_type, job.options, job.language)
            prompts.append(job.prompt.prompt)
        results = decoder.generate(encoded, prompts, batch[0].job.options)
        return [
            list(decoder.segments(item.chunk, result, item.job.prompt.tokenizer, item.job.options))  # type: ignore[union-attr]
            for item, result in zip(batch, results, strict=True)
        ]


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
        item.future.exception()  # retrieved: nobody may be left to read it
