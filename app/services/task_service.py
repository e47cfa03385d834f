"""Task use cases: create from an upload or URL, read, list, wait, delete."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from pathlib import PurePath

from app.db.models import Task
from app.db.task_repository import TaskFilters, TaskRepository
from app.engines.model_pool import AsyncModelPool, ModelNotAllowedError
from app.errors import ProblemError
from app.logging_setup import task_log_context
from app.media.probe import NotMediaError, probe_media
from app.media.storage import (
    AsyncReader,
    EmptyMediaError,
    MediaDownloadError,
    MediaStorage,
    MediaTooLargeError,
    StoredMedia,
)
from app.processor.task_events import TaskEvents
from app.processor.task_processor import TaskProcessor
from app.schemas.result import TranscriptionResult
from app.schemas.task import (
    DecodeOptions,
    LinkMetadata,
    MediaSource,
    TaskOut,
    TaskPage,
    TaskPriority,
    TaskStatus,
    TaskType,
)

logger = logging.getLogger(__name__)


def display_name(file_name: str | None) -> str | None:
    """Keep only a printable base name for display; it is never used as a path."""
    if not file_name:
        return None
    base = PurePath(file_name.replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable())
    return cleaned[:255] or None


def to_out(task: Task, *, include_result: bool = True) -> TaskOut:
    return TaskOut(
        id=task.id,
        status=TaskStatus(task.status),
        priority=TaskPriority.from_rank(task.priority),
        task_type=TaskType(task.task_type),
        engine=task.engine,
        model=task.model,
        options=DecodeOptions.model_validate(task.options),
        source=MediaSource(task.source),
        file_name=task.file_name,
        file_url=task.file_url,
        file_size=task.file_size,
        duration=task.duration,
        platform=task.platform,
        callback_url=task.callback_url,
        progress=task.progress,
        language=task.language,
        language_probability=task.language_probability,
        error=task.error,
        processing_time=task.processing_time,
        worker_id=task.worker_id,
        attempts=task.attempts,
        media_available=task.media_path is not None,
        created_at=task.created_at,
        updated_at=task.updated_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
        link=(
            LinkMetadata(
                platform=task.platform or "generic",
                original_url=task.link_url,
                webpage_url=task.link_webpage_url,
                media_id=task.link_media_id,
                title=task.link_title,
                author=task.link_author,
                duration=task.link_duration,
                thumbnail=task.link_thumbnail,
            )
            if task.link_url is not None
            else None
        ),
        result=(
            TranscriptionResult.model_validate(task.result)
            if include_result and task.result is not None
            else None
        ),
    )


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
    ) -> None:
        self._repository = repository
        self._storage = storage
        self._pool = pool
        self._processor = processor
        self._events = events
        self._default_model = default_model
        self._default_engine = default_engine
        self._media_node = media_node
        self._poll_interval = poll_interval

    async def create(
        self,
        *,
        upload: AsyncReader | None,
        upload_name: str | None,
        file_url: str | None,
        task_type: TaskType,
        priority: TaskPriority,
        model: str | None,
        engine: str | None = None,
        options: DecodeOptions,
        callback_url: str | None,
        platform: str | None,
    ) -> TaskOut:
        model_name, engine_name = self.check_request(
            model=model, engine=engine, task_type=task_type, options=options
        )
        if (upload is None) == (file_url is None):
            raise ProblemError(422, "give exactly one of `file` or `file_url`")

        if upload is not None:
            stored = await self._store(self._storage.save_upload(upload))
        else:
            assert file_url is not None
            stored = await self.download(file_url)
        return await self.enqueue(
            stored,
            source=MediaSource.url if file_url else MediaSource.upload,
            file_name=display_name(upload_name) if upload is not None else None,
            file_url=file_url,
            task_type=task_type,
            priority=priority,
            model=model_name,
            engine=engine_name,
            options=options,
            callback_url=callback_url,
            platform=platform,
        )

    def check_request(
        self, *, model: str | None, engine: str | None, task_type: TaskType, options: DecodeOptions
    ) -> tuple[str, str]:
        """Validate the model and language choice before any media is fetched; returns (model, engine)."""
        model_name = model or self._default_model
        engine_name = engine or self._default_engine
        try:
            self._pool.check_allowed(model_name, engine_name)
        except ModelNotAllowedError as exc:
            raise ProblemError(422, str(exc)) from exc
        if model_name.endswith(".en") and (
            task_type is TaskType.translate or (options.language not in (None, "en"))
        ):
            raise ProblemError(422, f"model {model_name!r} is English-only")
        return model_name, engine_name

    async def download(self, url: str, *, headers: Mapping[str, str] | None = None) -> StoredMedia:
        """Download ``url`` into storage under the size limit; failures become problems (413/400/422)."""
        return await self._store(self._storage.download(url, headers=headers))

    async def enqueue(
        self,
        stored: StoredMedia,
        *,
        source: MediaSource,
        file_name: str | None,
        file_url: str | None,
        task_type: TaskType,
        priority: TaskPriority,
        model: str,
        engine: str,
        options: DecodeOptions,
        callback_url: str | None,
        platform: str | None,
        link: LinkMetadata | None = None,
    ) -> TaskOut:
        """Probe stored media and queue a task for it; the file is removed if that fails (415 if not media)."""
        try:
            try:
                info = await asyncio.to_thread(probe_media, stored.path)
            except NotMediaError as exc:
                raise ProblemError(415, f"the content is not audio or video: {exc}") from exc
            task = Task(
                status=TaskStatus.queued.value,
                priority=priority.rank,
                task_type=task_type.value,
                engine=engine,
                model=model,
                options=options.model_dump(mode="json"),
                source=source.value,
                file_name=file_name,
                file_url=file_url,
                media_path=stored.name,
                media_node=self._media_node,
                file_size=stored.size,
                duration=info.duration,
                platform=platform,
                callback_url=callback_url,
                progress=0.0,
                attempts=0,
            )
            if link is not None:
                task.link_url = link.original_url
                task.link_webpage_url = link.webpage_url
                task.link_title = link.title
                task.link_author = link.author
                task.link_duration = link.duration
                task.link_thumbnail = link.thumbnail
                task.link_media_id = link.media_id
            await self._repository.add(task)
        except BaseException:
            self._storage.remove(stored.name)
            raise
        with task_log_context(task.id):
            logger.info(
                "queued %s (%s priority, %s, %.1fs of audio, %d bytes)",
                task_type.value,
                priority.value,
                model,
                info.duration,
                stored.size,
            )
        if self._processor is not None:
            self._processor.wake()
        return to_out(task)

    async def _store(self, saving: Awaitable[StoredMedia]) -> StoredMedia:
        try:
            return await saving
        except MediaTooLargeError as exc:
            raise ProblemError(413, f"the media exceeds the limit of {exc.limit} bytes") from exc
        except EmptyMediaError as exc:
            raise ProblemError(400, "the media file is empty") from exc
        except MediaDownloadError as exc:
            raise ProblemError(422, str(exc)) from exc

    async def get_task(self, task_id: str) -> Task:
        task = await self._repository.get(task_id)
        if task is None:
            raise ProblemError(404, f"task {task_id} does not exist")
        return task

    async def get(self, task_id: str, *, wait: float = 0.0) -> TaskOut:
        """Return the task; with ``wait`` > 0, long-poll until it finishes or the time is up."""
        deadline = time.monotonic() + wait
        while True:
            task = await self.get_task(task_id)
            remaining = deadline - time.monotonic()
            if TaskStatus(task.status).finished or remaining <= 0:
                return to_out(task)
            await self._events.wait(task_id, min(remaining, self._poll_interval))

    async def search(self, filters: TaskFilters, *, limit: int, offset: int) -> TaskPage:
        rows, total = await self._repository.search(filters, limit=limit, offset=offset)
        next_offset = offset + len(rows) if offset + len(rows) < total else None
        return TaskPage(
            items=[to_out(row, include_result=False) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset,
        )

    async def delete(self, task_id: str) -> None:
        """Delete the row and its media; a running task is cancelled and its result dropped."""
        task = await self._repository.delete(task_id)
        if task is None:
            raise ProblemError(404, f"task {task_id} does not exist")
        with task_log_context(task_id):
            cancelled = self._processor.cancel(task_id) if self._processor else False
            self._storage.remove(task.media_path)
            logger.info("deleted%s", " (cancelled while running)" if cancelled else "")

    async def media(self, task_id: str) -> tuple[Task, str]:
        task = await self.get_task(task_id)
        if task.media_path is None or not self._storage.path_of(task.media_path).is_file():
            raise ProblemError(410, "the media of this task is no longer retained")
        return task, str(self._storage.path_of(task.media_path))
