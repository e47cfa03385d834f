"""Periodic media housekeeping: retention of finished tasks' media and orphan sweeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from app.background import BackgroundLoop
from app.db.models import utcnow
from app.db.task_repository import TaskRepository
from app.media.storage import MediaStorage
from config.settings import StorageSettings

logger = logging.getLogger(__name__)


class MediaJanitor:
    """Deletes media past its retention and files that no task references."""

    def __init__(
        self,
        settings: StorageSettings,
        storage: MediaStorage,
        repository: TaskRepository,
        *,
        other_references: Sequence[Callable[[], Awaitable[set[str]]]] = (),
    ) -> None:
        self._settings = settings
        self._storage = storage
        self._repository = repository
        self._other_references = list(other_references)
        """Other owners of media files (workflow runs), asked before each orphan sweep."""
        self._loop = BackgroundLoop(
            "media-janitor",
            self.sweep,
            interval=settings.sweep_interval_seconds,
            wait_first=True,
            failure="media sweep failed",
            log=logger,
        )

    def add_references(self, source: Callable[[], Awaitable[set[str]]]) -> None:
        self._other_references.append(source)

    async def sweep(self, *, grace_seconds: float = 600.0) -> None:
        if self._settings.media_retention_hours > 0:
            cutoff = utcnow() - timedelta(hours=self._settings.media_retention_hours)
            for task_id, media_name in await self._repository.expired_media(cutoff):
                self._storage.remove(media_name)
                await self._repository.forget_media(task_id)
                logger.info("media of task %s passed its retention and was deleted", task_id)
        referenced = await self._repository.media_paths()
        for source in self._other_references:
            referenced |= await source()
        await asyncio.to_thread(self._storage.sweep_orphans, referenced, grace_seconds=grace_seconds)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
