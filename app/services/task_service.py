"""Task use cases: create from an upload or URL, read, list, wait, watch, cancel, retry, delete.

Every read and change is scoped to the caller's API key: a task is visible only to the key that
created it and to admin keys (another key's task answers 404, never 403). The principal is passed
explicitly or, by default, taken from the request context set by the auth middleware.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import timedelta
from pathlib import Path, PurePath
from typing import Any

import anyio

from app.db.callback_repository import CallbackRepository, event_for
from app.db.models import Batch, CallbackDelivery, Task, new_id, utcnow
from app.db.task_repository import TaskFilters, TaskRepository
from app.engines.model_pool import AsyncModelPool, ModelNotAllowedError
from app.errors import BadRequest, Conflict, DomainError, Gone, Invalid, NotFound, TooLarge, Unsupported
from app.logging_setup import task_log_context
from app.media.probe import MediaInfo, MediaTooLongError, NotMediaError, probe_media
from app.media.storage import (
    AsyncReader,
    EmptyMediaError,
    MediaDownloadError,
    MediaStorage,
    MediaTooLargeError,
    StoredMedia,
)
from app.net.url_guard import UrlGuard
from app.processor.task_events import TaskEvents
from app.processor.task_processor import LiveTranscript, TaskProcessor
from app.schemas.batch import BatchOut
from app.schemas.callback import (
    CallbackHistory,
    CallbackStatus,
)
from app.schemas.chinese import ChineseScript
from app.schemas.task import (
    DecodeOptions,
    LinkMetadata,
    MediaSource,
    TaskOut,
    TaskPage,
    TaskSpec,
    TaskStatus,
    TaskType,
)
from app.services.admission import AdmissionControl
from app.services.auth import Principal, creator_key, owner_filter, visible_to
from app.services.mappers import batch_out, callback_status, delivery_out, task_out
from config.engines import ENGINES, engine_for_model

logger = logging.getLogger(__name__)

MAX_BATCH_FILES = 100
"""Most files one batch request may carry."""


def display_name(file_name: str | None) -> str | None:
    """Keep only a printable base name for display; it is never used as a path."""
    if not file_name:
        return None
    base = PurePath(file_name.replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable())
    return cleaned[:255] or None


def _script_column(options: DecodeOptions) -> str | None:
    return options.chinese_script.value if options.chinese_script is not None else None


class TaskService:
    def __init__(
        self,
        *,
        repository: TaskRepository,
        storage: MediaStorage,
        pool: AsyncModelPool,
        processor: TaskProcessor | None,
        events: TaskEvents,
        default_model: str,
        default_engine: str,
        poll_interval: float,
        media_node: str | None = None,
        guard: UrlGuard | None = None,
        callbacks: CallbackRepository | None = None,
        wake_callbacks: Callable[[], None] | None = None,
        admission: AdmissionControl | None = None,
        max_media_seconds: float | None = None,
        default_chinese_script: str = ChineseScript.original.value,
    ) -> None:
        self._default_chinese_script = ChineseScript(default_chinese_script)
        self._repository = repository
        self._storage = storage
        self._pool = pool
        self._processor = processor
        self._events = events
        self._default_model = default_model
        self._default_engine = default_engine
        self._media_node = media_node
        self._poll_interval = poll_interval
        self._guard = guard
        self._callbacks = callbacks
        self._wake_callbacks = wake_callbacks
        self._admission = admission
        self._max_media_seconds = max_media_seconds

    async def probe(self, path: Path, label: str = "") -> MediaInfo:
        """Probe stored media: 415 when it is not audio or video, 413 when its container declares
        more than the duration limit (``LIMITS__MAX_MEDIA_SECONDS``). ``label`` prefixes the detail."""
        try:
            return await asyncio.to_thread(probe_media, path, self._max_media_seconds)
        except NotMediaError as exc:
            raise Unsupported(f"{label}the content is not audio or video: {exc}") from exc
        except MediaTooLongError as exc:
            raise TooLarge(f"{label}{exc}", limit="duration", max_seconds=exc.limit) from exc

    async def admit(self) -> None:
        """Raise 503 (with Retry-After) when new work is refused; see :class:`AdmissionControl`."""
        if self._admission is not None:
            await self._admission.check()

    async def create(
        self,
        spec: TaskSpec,
        *,
        upload: AsyncReader | None,
        upload_name: str | None = None,
        file_url: str | None = None,
        principal: Principal | None = None,
    ) -> TaskOut:
        """Check ``spec``, store the upload or download ``file_url`` (exactly one), and queue the task."""
        spec = await self.check_request(spec)
        if (upload is None) == (file_url is None):
            raise Invalid("give exactly one of `file` or `file_url`")

        if upload is not None:
            stored = await self.store_upload(upload)
        else:
            assert file_url is not None
            stored = await self.download(file_url)
        return await self.enqueue(
            stored,
            spec,
            source=MediaSource.url if file_url else MediaSource.upload,
            file_name=display_name(upload_name) if upload is not None else None,
            file_url=file_url,
            principal=principal,
        )

    def check_model(self, model: str | None, engine: str | None) -> tuple[str, str]:
        """The model and engine a task asks for (defaults filled in: ``model=sensevoice`` picks its
        engine, an engine with its own model picks that model); 422 unless allowed."""
        engine_name = engine or (engine_for_model(model) if model else None) or self._default_engine
        own_model = ENGINES[engine_name].own_model if engine_name in ENGINES else None
        model_name = model or own_model or self._default_model
        try:
            self._pool.check_allowed(model_name, engine_name)
        except ModelNotAllowedError as exc:
            raise Invalid(str(exc)) from exc
        return model_name, engine_name

    def _with_script(self, options: DecodeOptions) -> DecodeOptions:
        """``options`` with the server's default Chinese script when they name none."""
        if options.chinese_script is not None:
            return options
        return options.model_copy(update={"chinese_script": self._default_chinese_script})

    async def check_request(self, spec: TaskSpec) -> TaskSpec:
        """Validate what a new task asks for before any media is fetched; returns ``spec`` with the
        model and engine filled in and the server's default Chinese script when it names none.

        The ``callback_url`` must pass the SSRF guard (422)."""
        model_name, engine_name = self.check_model(spec.model, spec.engine)
        problem = self._pool.unsupported(engine_name, spec.task_type, spec.options)
        if problem is not None:
            raise Invalid(problem)
        if model_name.endswith(".en") and (
            spec.task_type is TaskType.translate or (spec.options.language not in (None, "en"))
        ):
            raise Invalid(f"model {model_name!r} is English-only")
        if spec.callback_url is not None and self._guard is not None:
            await self._guard.check(spec.callback_url)
        await self.admit()
        return replace(spec, model=model_name, engine=engine_name, options=self._with_script(spec.options))

    async def store_upload(self, upload: AsyncReader) -> StoredMedia:
        """Save an upload into storage under the size limit; failures become problems (413/400)."""
        return await self._store(self._storage.save_upload(upload))

    async def download(self, url: str, *, headers: Mapping[str, str] | None = None) -> StoredMedia:
        """Download ``url`` into storage under the size limit; failures become problems (413/400/422)."""
        return await self._store(self._storage.download(url, headers=headers))

    async def enqueue(
        self,
        stored: StoredMedia,
        spec: TaskSpec,
        *,
        source: MediaSource,
        file_name: str | None = None,
        file_url: str | None = None,
        link: LinkMetadata | None = None,
        principal: Principal | None = None,
        task_id: str | None = None,
        workflow_run_id: str | None = None,
    ) -> TaskOut:
        """Probe stored media and queue a task for it; the file is removed if that fails (415 if not media).

        ``spec`` is as :meth:`check_request` returned it. The task belongs to ``principal`` (by
        default the caller's API key). A workflow step gives the ``task_id`` it recorded beforehand
        (an existing id raises ``IntegrityError``) and its run."""
        try:
            info = await self.probe(stored.path)
            task = self._task_row(
                spec,
                stored,
                info,
                source=source,
                file_name=file_name,
                file_url=file_url,
                api_key_id=creator_key(principal),
                link=link,
                id=task_id or new_id(),
                workflow_run_id=workflow_run_id,
            )
            await self._repository.add(task)
        except BaseException:
            self._storage.remove(stored.name)
            raise
        with task_log_context(task.id):
            logger.info(
                "queued %s (%s priority, %s, %.1fs of audio, %d bytes)",
                spec.task_type.value,
                spec.priority.value,
                spec.model,
                info.duration,
                stored.size,
            )
        if self._processor is not None:
            self._processor.wake()
        return task_out(task)

    def _task_row(
        self,
        spec: TaskSpec,
        stored: StoredMedia,
        info: MediaInfo,
        *,
        source: MediaSource,
        file_name: str | None,
        file_url: str | None,
        api_key_id: str | None,
        link: LinkMetadata | None = None,
        **columns: Any,
    ) -> Task:
        """The queued row of a new task for checked ``spec`` and probed media (``columns``: the id,
        batch or run it belongs to, a creation time)."""
        assert spec.model is not None and spec.engine is not None, "check_request fills them in"
        task = Task(
            status=TaskStatus.queued.value,
            priority=spec.priority.rank,
            task_type=spec.task_type.value,
            engine=spec.engine,
            model=spec.model,
            options=spec.options.model_dump(mode="json"),
            chinese_script=_script_column(spec.options),
            diarize=spec.options.diarize,
            source=source.value,
            file_name=file_name,
            file_url=file_url,
            media_path=stored.name,
            media_node=self._media_node,
            file_size=stored.size,
            duration=info.duration,
            platform=spec.platform,
            callback_url=spec.callback_url,
            api_key_id=api_key_id,
            progress=0.0,
            attempts=0,
            **columns,
        )
        if link is not None:
            task.link_url = link.original_url
            task.link_webpage_url = link.webpage_url
            task.link_title = link.title
            task.link_author = link.author
            task.link_duration = link.duration
            task.link_thumbnail = link.thumbnail
            task.link_media_id = link.media_id
        return task

    async def _store(self, saving: Awaitable[StoredMedia]) -> StoredMedia:
        try:
            return await saving
        except MediaTooLargeError as exc:
            raise TooLarge(f"the media exceeds the limit of {exc.limit} bytes") from exc
        except EmptyMediaError as exc:
            raise BadRequest("the media file is empty") from exc
        except MediaDownloadError as exc:
            raise Invalid(str(exc)) from exc

    async def get_row(self, task_id: str, principal: Principal | None = None) -> Task:
        """The task's database row, or 404 when it does not exist or belongs to another API key
        (``get`` gives the API's view of it)."""
        task = await self._repository.get(task_id)
        if task is None or not visible_to(task.api_key_id, principal):
            raise NotFound(f"task {task_id} does not exist")
        return task

    async def get(self, task_id: str, *, wait: float = 0.0, principal: Principal | None = None) -> TaskOut:
        """The task as the API shows it; with ``wait`` > 0, long-poll until it finishes or the time is up."""
        deadline = time.monotonic() + wait
        while True:
            task = await self.get_row(task_id, principal)
            remaining = deadline - time.monotonic()
            if TaskStatus(task.status).finished or remaining <= 0 or self._events.closing:
                # At shutdown a long poll answers with the task as it is; the client polls again.
                return task_out(task, callback=await self._latest_callback(task))
            await self._events.wait(task_id, min(remaining, self._poll_interval))

    async def search(
        self, filters: TaskFilters, *, limit: int, offset: int, principal: Principal | None = None
    ) -> TaskPage:
        owner = owner_filter(principal)
        if owner is not None:
            filters = replace(filters, api_key_id=owner)
        rows, total = await self._repository.search(filters, limit=limit, offset=offset)
        latest = (
            await self._callbacks.latest_for([row.id for row in rows if row.callback_url])
            if self._callbacks is not None
            else {}
        )
        next_offset = offset + len(rows) if offset + len(rows) < total else None
        return TaskPage(
            items=[task_out(row, include_result=False, callback=latest.get(row.id)) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset,
        )

    def live(self, task_id: str) -> LiveTranscript | None:
        """Segments decoded so far by a task running on this node (None elsewhere or when idle)."""
        return self._processor.live(task_id) if self._processor is not None else None

    async def delete(self, task_id: str, principal: Principal | None = None) -> None:
        """Delete the row and its media; a running task is cancelled and its result dropped."""
        task = await self._repository.delete(task_id, api_key_id=owner_filter(principal))
        if task is None:
            raise NotFound(f"task {task_id} does not exist")
        with task_log_context(task_id):
            cancelled = self._processor.cancel(task_id) if self._processor else False
            if self._callbacks is not None:
                await self._callbacks.delete_for_task(task_id)
            self._storage.remove(task.media_path)
            self._events.changed(task_id)
            logger.info("deleted%s", " (cancelled while running)" if cancelled else "")

    async def delete_abandoned(self, task_id: str, why: str) -> None:
        """Delete a task whose synchronous client left before it finished (``why`` is logged);
        shielded, so the caller's own cancellation cannot stop it, and never raises."""
        with anyio.CancelScope(shield=True), task_log_context(task_id):
            logger.info("%s before the task finished; deleting it", why)
            try:
                await self.delete(task_id)
            except Exception as exc:
                logger.warning("could not delete the abandoned task: %s", exc)

    async def cancel(self, task_id: str, principal: Principal | None = None) -> TaskOut:
        """Cancel a queued or running task (409 otherwise). A run on this node stops at its next
        segment; a run on another node stops at its next progress write or lease renewal."""
        task = await self.get_row(task_id, principal)
        if not await self._repository.cancel(task_id):
            current = await self.get_row(task_id, principal)
            raise Conflict(
                f"task {task_id} is {current.status}; only queued or processing tasks can be cancelled",
                task_status=current.status,
            )
        with task_log_context(task_id):
            stopped = self._processor.cancel(task_id) if self._processor else False
            logger.info("cancelled (was %s%s)", task.status, ", stopping the local run" if stopped else "")
        self._events.changed(task_id)
        return task_out(await self.get_row(task_id, principal))

    async def retry(self, task_id: str, principal: Principal | None = None) -> TaskOut:
        """Queue a failed or cancelled task again (409 in other states or when its media is gone)."""
        task = await self.get_row(task_id, principal)
        if task.status not in (TaskStatus.failed.value, TaskStatus.cancelled.value):
            raise Conflict(
                f"task {task_id} is {task.status}; only failed or cancelled tasks can be retried",
                task_status=task.status,
            )
        if not self._media_retained(task):
            raise Conflict(
                f"the media of task {task_id} is no longer retained; create a new task",
                task_status=task.status,
                reason="media_gone",
            )
        await self.admit()
        if not await self._repository.requeue_finished(task_id):
            current = await self.get_row(task_id, principal)
            raise Conflict(
                f"task {task_id} is {current.status}; only failed or cancelled tasks can be retried",
                task_status=current.status,
            )
        with task_log_context(task_id):
            logger.info("re-queued by request (was %s)", task.status)
        if self._processor is not None:
            self._processor.wake()
        self._events.changed(task_id)
        return task_out(await self.get_row(task_id, principal))

    def _media_retained(self, task: Task) -> bool:
        if task.media_path is None:
            return False
        if task.media_node is not None and task.media_node != self._media_node:
            return True  # held by another node, which serves it to the worker
        return self._storage.path_of(task.media_path).is_file()

    @property
    def shutting_down(self) -> bool:
        """The server is shutting down: long polls and live-event streams end early."""
        return self._events.closing

    async def watch(
        self, task_id: str, *, poll_interval: float, keepalive: float, principal: Principal | None = None
    ) -> AsyncIterator[TaskOut | None]:
        """Yield the task at once and after each change of status or progress, until it finishes.

        Local changes wake the watcher at once; changes on other nodes are seen by re-reading
        the database every ``poll_interval`` seconds. ``None`` is yielded after ``keepalive``
        quiet seconds. Ends (without raising) when the task is deleted, or unfinished when the
        server shuts down (``shutting_down``).
        """
        last: tuple[str, float] | None = None
        quiet_since = time.monotonic()
        with self._events.subscribe(task_id) as changed:
            while True:
                changed.clear()
                try:
                    task = await self.get_row(task_id, principal)
                except DomainError:
                    return
                state = (task.status, task.progress)
                if state != last:
                    last = state
                    quiet_since = time.monotonic()
                    yield task_out(task, include_result=False)
                    if TaskStatus(task.status).finished:
                        return
                elif time.monotonic() - quiet_since >= keepalive:
                    quiet_since = time.monotonic()
                    yield None
                if self._events.closing:
                    return  # the server is shutting down (see ``shutting_down``)
                with suppress(TimeoutError):
                    async with asyncio.timeout(poll_interval):
                        await changed.wait()

    async def media(self, task_id: str, principal: Principal | None = None) -> tuple[Task, str]:
        task = await self.get_row(task_id, principal)
        if task.media_path is None or not self._storage.path_of(task.media_path).is_file():
            raise Gone("the media of this task is no longer retained")
        return task, str(self._storage.path_of(task.media_path))

    async def _latest_callback(self, task: Task) -> CallbackDelivery | None:
        if self._callbacks is None or not task.callback_url:
            return None
        return (await self._callbacks.latest_for([task.id])).get(task.id)

    async def callback_history(self, task_id: str) -> CallbackHistory:
        await self.get_row(task_id)
        history = await self._callbacks.history(task_id) if self._callbacks is not None else []
        return CallbackHistory(
            task_id=task_id, deliveries=[delivery_out(delivery, attempts) for delivery, attempts in history]
        )

    async def resend_callback(self, task_id: str) -> CallbackStatus:
        """Queue a new delivery of a finished task's callback (409 when that makes no sense)."""
        task = await self.get_row(task_id)
        if not task.callback_url:
            raise Conflict(f"task {task_id} has no callback_url")
        if not TaskStatus(task.status).finished:
            raise Conflict(f"task {task_id} is {task.status}; callbacks are sent when it ends")
        if self._callbacks is None:
            raise Conflict("callbacks are not available on this node")
        if self._guard is not None:
            await self._guard.check(task.callback_url)
        delivery = await self._callbacks.resend(task_id, task.callback_url, event_for(task.status))
        if delivery is None:
            raise Conflict(f"a callback delivery of task {task_id} is still pending")
        if self._wake_callbacks is not None:
            self._wake_callbacks()
        with task_log_context(task_id):
            logger.info("callback re-send queued as delivery %s", delivery.id)
        return callback_status(delivery)

    async def create_batch(
        self,
        spec: TaskSpec,
        *,
        uploads: Sequence[tuple[AsyncReader, str | None]],
        principal: Principal | None = None,
    ) -> BatchOut:
        """One task per upload under a new batch; one bad file rejects them all and keeps nothing."""
        spec = await self.check_request(spec)
        if not uploads:
            raise Invalid("give at least one file")
        if len(uploads) > MAX_BATCH_FILES:
            raise Invalid(f"a batch holds at most {MAX_BATCH_FILES} files")

        stored: list[StoredMedia] = []
        try:
            tasks: list[Task] = []
            batch = Batch(
                id=new_id(),
                total=len(uploads),
                created_at=utcnow(),
                api_key_id=creator_key(principal),
            )
            for index, (upload, upload_name) in enumerate(uploads):
                label = f"file {index + 1} ({display_name(upload_name) or 'unnamed'})"
                try:
                    media = await self.store_upload(upload)
                except DomainError as exc:
                    raise type(exc)(f"{label}: {exc.detail}", file_index=index) from exc
                stored.append(media)
                try:
                    info = await self.probe(media.path, f"{label}: ")
                except DomainError as exc:
                    exc.extra["file_index"] = index
                    raise
                # Microsecond steps keep the upload order, in the queue and in the batch's listing.
                created = batch.created_at + timedelta(microseconds=index)
                tasks.append(
                    self._task_row(
                        spec,
                        media,
                        info,
                        source=MediaSource.upload,
                        file_name=display_name(upload_name),
                        file_url=None,
                        api_key_id=batch.api_key_id,
                        batch_id=batch.id,
                        created_at=created,
                        updated_at=created,
                    )
                )
            await self._repository.add_batch(batch, tasks)
        except BaseException:
            for media in stored:
                self._storage.remove(media.name)
            raise
        logger.info(
            "queued batch %s: %d %s task(s) with %s", batch.id, len(tasks), spec.task_type.value, spec.model
        )
        if self._processor is not None:
            self._processor.wake()
        return batch_out(batch, tasks)

    async def get_batch(self, batch_id: str, principal: Principal | None = None) -> BatchOut:
        found = await self._repository.get_batch(batch_id)
        # Like tasks, another key's batch does not exist for the caller, even once all its tasks
        # are deleted: the batch's own key decides.
        if found is None or not visible_to(found[0].api_key_id, principal):
            raise NotFound(f"batch {batch_id} does not exist")
        return batch_out(*found)
