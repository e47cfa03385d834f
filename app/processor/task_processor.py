"""The background processor: claims queued tasks and runs them through the models."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from app.background import BackgroundLoop
from app.db.models import utcnow
from app.db.outages import is_disconnect, through_outage
from app.db.task_repository import Claim, TaskRepository
from app.db.worker_registry import WorkerRegistry
from app.engines.batch_scheduler import StreamDroppedError
from app.engines.model_pool import AsyncModelPool
from app.logging_setup import task_log_context
from app.media.storage import MediaStorage
from app.observability.metrics import Metrics
from app.processor.chinese_script import convert_result
from app.processor.task_events import TaskEvents
from app.schemas.result import Segment, TranscriptionResult
from app.schemas.task import DecodeOptions, TaskStatus, TaskType
from app.schemas.worker import NodeRole
from config.settings import DiarizationSettings, ProcessorSettings

if TYPE_CHECKING:
    from app.db.speaker_repository import SpeakerRepository
    from app.speakers.diarizer import Turn

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class TaskCancelledError(Exception):
    """The task was deleted or cancelled while it ran; its result must be dropped."""


@dataclass
class _Running:
    claim: Claim
    cancelled: bool = False
    progress: float = 0.0
    """Latest progress in percent; ``_report_progress`` writes it."""
    job: asyncio.Task[None] | None = field(default=None, repr=False)
    segments: list[Segment] = field(default_factory=list, repr=False)
    """Segments decoded so far (the list the decoder appends to), for streaming clients."""
    turns: list[Turn] | None = field(default=None, repr=False)
    """Speaker turns once diarization is done (diarized tasks only)."""


@dataclass(frozen=True)
class LiveTranscript:
    """What a task running on this node has produced so far."""

    segments: list[Segment]
    turns: list[Turn] | None


class TaskProcessor:
    """Claims tasks atomically (priority, then FIFO) and runs up to N of them at once.

    Inference runs in worker threads, one decoded segment at a time, so the event loop
    stays free, progress is written as audio advances, and a deleted task stops at the
    next segment boundary.
    """

    def __init__(
        self,
        *,
        settings: ProcessorSettings,
        repository: TaskRepository,
        pool: AsyncModelPool,
        storage: MediaStorage,
        events: TaskEvents,
        registry: WorkerRegistry,
        delete_media_after_processing: bool,
        role: NodeRole = "all",
        peer_secret: str | None = None,
        metrics: Metrics | None = None,
        speakers: SpeakerRepository | None = None,
        diarization: DiarizationSettings | None = None,
        max_media_seconds: float | None = None,
    ) -> None:
        self._settings = settings
        self._speakers = speakers
        self._diarization = diarization or DiarizationSettings()
        self._max_media_seconds = max_media_seconds
        self._repository = repository
        self._pool = pool
        self._storage = storage
        self._events = events
        self._delete_media = delete_media_after_processing
        self._devices = [device.name for device in pool.devices]
        # Cross-task batching needs enough tasks running to fill its batches.
        self._slots = asyncio.Semaphore(max(settings.max_concurrent_tasks, pool.task_capacity))
        self._resumed = asyncio.Event()
        # Keyed by claim, not task id: a task cancelled and queued again can be claimed anew
        # while its first run is still winding down here, and each run ends its own entry.
        self._running: dict[Claim, _Running] = {}
        self._claims = BackgroundLoop(
            "task-processor",
            self._claim_next,
            interval=settings.poll_interval_seconds,
            failure="claiming a task failed; retrying",
            log=logger,
        )
        self._heartbeats = BackgroundLoop(
            "worker-heartbeat",
            self._beat,
            interval=settings.heartbeat_interval_seconds,
            wait_first=True,
            failure="heartbeat failed; retrying",
            log=logger,
        )
        self._registry = registry
        self._role = role
        self._peer_secret = peer_secret
        self._metrics = metrics
        self._worker_id = settings.node_id
        self._started_at = utcnow()

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def running_task_ids(self) -> list[str]:
        return list(dict.fromkeys(claim.task_id for claim in self._running))

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def started(self) -> bool:
        return self._claims.running

    async def start(self, *, paused: bool = False) -> None:
        self._worker_id = await self._registry.claim_identity(
            self._settings.node_id, stale_after=self._settings.lease_seconds
        )
        if self._worker_id == self._settings.node_id:
            # Same identity as before a crash or restart: take our unfinished tasks back now
            # instead of waiting for their leases to expire.
            requeued = await self._repository.requeue_abandoned(self._worker_id)
            if requeued:
                logger.warning("re-queued %d task(s) this worker left in processing", requeued)
        else:
            logger.warning(
                "worker id %s is in use by a live process; this one is %s",
                self._settings.node_id,
                self._worker_id,
            )
        await self._heartbeat()
        if not paused:
            self._resumed.set()
        self._claims.start()
        self._heartbeats.start()

    async def _heartbeat(self) -> None:
        """Renew leases (dropping tasks whose lease was lost), reap expired ones, refresh the registry."""
        claims = list(self._running)
        owned = await self._repository.renew_leases(self._worker_id, claims, self._settings.lease_seconds)
        for claim in claims:
            running = self._running.get(claim)
            if claim not in owned and running is not None and not running.cancelled:
                logger.warning("lost the lease of task %s; dropping it", claim.task_id)
                running.cancelled = True
        requeued, failed = await self._repository.reap_expired(self._settings.max_attempts)
        if requeued or failed:
            logger.warning("reaper: %d task(s) re-queued, %d failed after expired leases", requeued, failed)
        if failed and self._metrics is not None:
            self._metrics.task_failed(count=failed)
        await self._registry.heartbeat(
            self._worker_id,
            role=self._role,
            devices=self._devices,
            running=self.running_task_ids,
            started_at=self._started_at,
        )

    async def _beat(self) -> None:
        try:
            await self._heartbeat()
        except Exception as exc:
            if not is_disconnect(exc):
                raise
            logger.warning("heartbeat: database unavailable (%s); retrying", type(exc).__name__)

    def pause(self) -> None:
        """Stop claiming new tasks; running ones finish."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()
        self.wake()

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._claims.wake()

    def live(self, task_id: str) -> LiveTranscript | None:
        """The segments (and speaker turns) of a task running here so far; None when it is not."""
        # The newest run that goes on (an earlier, cancelled run of the task may still be ending).
        runs = [r for claim, r in self._running.items() if claim.task_id == task_id and not r.cancelled]
        if not runs:
            return None
        return LiveTranscript(list(runs[-1].segments), runs[-1].turns)

    def cancel(self, task_id: str) -> bool:
        """Ask a running task to stop and drop its result. True when it runs here."""
        runs = [running for claim, running in self._running.items() if claim.task_id == task_id]
        for running in runs:
            running.cancelled = True
        return bool(runs)

    def hand_back(self) -> None:
        """Stop claiming and give every running task back to the queue now, without waiting for
        it to finish (a second shutdown signal). Each run re-queues its task as it stops."""
        self.pause()
        for running in list(self._running.values()):
            if running.job is not None and not running.job.done():
                running.job.cancel()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; wait for running tasks, then give unfinished ones back to the queue."""
        self.pause()
        await self._claims.stop()
        await self._heartbeats.stop()
        jobs = [r.job for r in self._running.values() if r.job is not None]
        if jobs:
            _done, pending = await asyncio.wait(jobs, timeout=timeout)
            for job in pending:
                job.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with suppress(Exception):
            await self._registry.remove(self._worker_id)

    async def _claim_next(self) -> bool:
        """Claim one task once claiming is resumed and a slot is free, and start running it;
        False when none was claimed."""
        await self._resumed.wait()
        await self._slots.acquire()
        claim: Claim | None = None
        try:
            claim = await self._repository.claim_next(self._worker_id, self._settings.lease_seconds)
        except Exception as exc:
            if not is_disconnect(exc):
                logger.exception("claiming a task failed; retrying")
            else:
                logger.warning("claim: database unavailable (%s); retrying", type(exc).__name__)
        if claim is None:
            self._slots.release()
            return False
        running = _Running(claim)
        self._running[claim] = running
        self._events.changed(claim.task_id)
        running.job = asyncio.create_task(self._run(running), name=f"task-{claim.task_id}")
        running.job.add_done_callback(functools.partial(self._finished, claim))
        return True

    def _finished(self, claim: Claim, _job: asyncio.Task[None]) -> None:
        self._running.pop(claim, None)
        self._slots.release()
        self._events.finished(claim.task_id)
        self.wake()

    async def _run(self, running: _Running) -> None:
        claim = running.claim
        with task_log_context(claim.task_id):
            started = time.perf_counter()
            media_name: str | None = None
            try:
                task = await self._durably(self._repository.get, claim.task_id)
                if task is None:
                    return
                media_name = task.media_path
                logger.info("processing %s with %s (attempt %d)", task.task_type, task.model, claim.attempt)
                options = DecodeOptions.model_validate(task.options)
                result = await self._transcribe(
                    running,
                    engine=task.engine,
                    model_name=task.model,
                    media_name=task.media_path,
                    media_node=task.media_node,
                    task_type=TaskType(task.task_type),
                    options=options,
                    priority=task.priority,
                    duration=task.duration,
                    api_key_id=task.api_key_id,
                )
                elapsed = time.perf_counter() - started
                stored = await self._store_result(claim, result, elapsed)
                if stored is None:
                    # The transcript is done but the database stayed away: never record that as a
                    # failure. The lease lapses (no longer renewed) and the task is queued again.
                    running.cancelled = True  # keep the media for the next run
                elif stored:
                    if self._metrics is not None:
                        self._metrics.task_completed(elapsed, result.duration)
                    logger.info(
                        "completed in %.2fs (%.1fs of audio, language %s)",
                        elapsed,
                        result.duration,
                        result.language,
                    )
                else:
                    running.cancelled = True  # keep the media: the task is someone else's now
                    logger.warning("result dropped: the task was deleted, cancelled or taken over")
            except TaskCancelledError:
                logger.info("stopped: the task was deleted or cancelled while running")
            except asyncio.CancelledError:
                logger.warning("interrupted by shutdown; returning the task to the queue")
                await asyncio.shield(
                    self._durably(
                        self._repository.update_owned,
                        claim,
                        status=TaskStatus.queued.value,
                        worker_id=None,
                        progress=0.0,
                    )
                )
                raise
            except Exception as exc:
                logger.exception("failed")
                elapsed = time.perf_counter() - started
                with suppress(Exception):
                    if (
                        await self._durably(
                            self._repository.finish_owned,
                            claim,
                            status=TaskStatus.failed.value,
                            error=f"{type(exc).__name__}: {exc}"[:4000],
                            processing_time=round(elapsed, 3),
                            completed_at=utcnow(),
                        )
                        and self._metrics is not None
                    ):
                        self._metrics.task_failed(elapsed)
            if self._delete_media and media_name and not running.cancelled:
                self._storage.remove(media_name)
                with suppress(Exception):
                    await self._durably(self._repository.forget_media, claim.task_id)

    async def _store_result(self, claim: Claim, result: TranscriptionResult, elapsed: float) -> bool | None:
        """Write the finished transcript: True when stored, False when the claim no longer owns
        the task, ``None`` when the database stayed unreachable through the outage budget.

        Lost connections are retried with bounded backoff (``PROCESSOR__OUTAGE_RETRY_SECONDS``);
        meanwhile the heartbeat keeps renewing the lease as soon as the database answers, and the
        write is fenced by the claim, so a late retry can never overwrite a newer owner."""
        try:
            return await self._durably(
                self._repository.finish_owned,
                claim,
                status=TaskStatus.completed.value,
                result=result.model_dump(mode="json"),
                progress=100.0,
                language=result.language,
                language_probability=result.language_probability,
                duration=result.duration,
                processing_time=round(elapsed, 3),
                completed_at=utcnow(),
                error=None,
            )
        except Exception as exc:
            if not is_disconnect(exc):
                raise
            logger.error(
                "the result could not be stored: the database stayed unreachable for %.0f s (%s); "
                "the task goes back to the queue when its lease expires",
                self._settings.outage_retry_seconds,
                type(exc).__name__,
            )
            return None

    def _durably(
        self, function: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[R]:
        """An essential, idempotent database call that waits out an outage instead of failing the task."""
        return through_outage(self._settings.outage_retry_seconds, function, *args, **kwargs)

    async def _write_progress(self, claim: Claim, progress: float) -> bool:
        """Record progress; False when the task was taken away. An outage only skips this update."""
        try:
            return await self._repository.update_owned(claim, progress=progress)
        except Exception as exc:
            if not is_disconnect(exc):
                raise
            logger.warning("progress not recorded: database unavailable (%s)", type(exc).__name__)
            return True

    async def _transcribe(
        self,
        running: _Running,
        *,
        engine: str,
        model_name: str,
        media_name: str | None,
        media_node: str | None,
        task_type: TaskType,
        options: DecodeOptions,
        priority: int,
        duration: float | None = None,
        api_key_id: str | None = None,
    ) -> TranscriptionResult:
        if not media_name:
            raise FileNotFoundError("the task's media is no longer available")
        audio = self._storage.path_of(media_name)
        fetched = False
        if not audio.is_file() and media_node and self._peer_secret:
            logger.info("fetching the media from %s", media_node)
            audio = await self._storage.fetch_from_peer(media_node, media_name, self._peer_secret)
            fetched = True
        if not audio.is_file():
            raise FileNotFoundError("the task's media is no longer available")
        # Diarization needs only the audio: it runs beside the decoding, and labels the segments
        # once the engine has returned them.
        turns = (
            asyncio.ensure_future(self._speaker_turns(running, audio, options, api_key_id))
            if options.diarize
            else None
        )
        try:
            result = await self._decode(
                running, audio, engine, model_name, task_type, options, priority, media_seconds=duration
            )
            if turns is not None:
                from app.speakers.assign import label_speakers

                result = label_speakers(result, await turns)
                logger.info("diarized: %d speaker(s)", len(result.speakers or []))
            return result
        finally:
            if turns is not None and not turns.done():
                turns.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await turns
            if fetched:  # a cached copy of another node's file
                audio.unlink(missing_ok=True)

    async def _speaker_turns(
        self, running: _Running, audio: Path, options: DecodeOptions, api_key_id: str | None
    ) -> list[Turn]:
        """Who spoke when, in a worker thread (torch loads on the first diarized task); the
        voices the task's key enrolled name their speakers."""
        from app.speakers.pipeline import file_turns, known_voices

        enrolled = (
            await self._durably(self._speakers.of_key, api_key_id) if self._speakers is not None else []
        )
        voices = known_voices(options, [(speaker.name, speaker.embedding) for speaker in enrolled])
        turns = await asyncio.to_thread(
            file_turns, audio, options, voices, self._diarization, max_seconds=self._max_media_seconds
        )
        running.turns = turns
        return turns

    async def _report_progress(
        self, running: _Running, stop: asyncio.Event, decoded: Callable[[], float] | None = None
    ) -> None:
        """Write the task's progress at most once per interval while it decodes; segments can
        arrive in bursts (a batch at a time), so writes follow the clock, not the segments.
        ``decoded`` (batched tasks): the share of the task's speech already decoded, in any
        order: the streams of a long file advance side by side."""
        written = 0.0  # what the claim wrote
        while not stop.is_set():
            with suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, self._settings.progress_interval_seconds)):
                    await stop.wait()
            if decoded is not None:
                running.progress = max(running.progress, round(min(99.0, 100.0 * decoded()), 1))
            if running.progress != written and not stop.is_set():
                written = running.progress
                if not await self._write_progress(running.claim, written):
                    # Deleted, cancelled (possibly from another node) or taken over.
                    running.cancelled = True
                    return
                self._events.changed(running.claim.task_id)

    async def _decode(
        self,
        running: _Running,
        audio: Path,
        engine: str,
        model_name: str,
        task_type: TaskType,
        options: DecodeOptions,
        priority: int,
        *,
        media_seconds: float | None = None,
    ) -> TranscriptionResult:
        """``media_seconds``: the probed length, which lets a short file skip the queue for
        preparation behind a long one (see ``Lease.transcribe``)."""
        segments: list[Segment] = running.segments
        try:
            async with self._pool.lease(model_name, engine) as lease:
                decoding = await lease.transcribe(
                    audio,
                    task_type,
                    options,
                    task_id=running.claim.task_id,
                    priority=priority,
                    cancelled=lambda: running.cancelled,
                    media_seconds=media_seconds,
                )
                stop_reporting = asyncio.Event()
                reporter = asyncio.create_task(
                    self._report_progress(running, stop_reporting, decoding.decoded)
                )
                async with aclosing(decoding.segments):
                    try:
                        async for segment in decoding.segments:
                            if running.cancelled:
                                raise TaskCancelledError
                            segments.append(segment)
                            if decoding.duration > 0:
                                reached = round(min(99.0, 100.0 * segment.end / decoding.duration), 1)
                                running.progress = max(running.progress, reached)
                    finally:
                        stop_reporting.set()
                        await reporter
            if running.cancelled:
                raise TaskCancelledError
            result = TranscriptionResult(
                text="".join(segment.text for segment in segments).strip(),
                language=decoding.language,
                language_probability=decoding.language_probability,
                duration=decoding.duration,
                segments=segments,
            )
            # The one point where Chinese output gets its script: every reader of the stored
            # result (API, subtitles, OpenAI and legacy routes, summaries, workflows) sees it.
            return convert_result(result, options.chinese_script)
        except StreamDroppedError:  # the batch scheduler dropped the streams of a cancelled task
            if running.cancelled:
                raise TaskCancelledError from None
            raise
