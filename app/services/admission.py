"""Backpressure: refuse new work (503 + Retry-After) past the queue, disk or memory limits.

Work already accepted is never dropped; only task creation (and re-queueing by retry) is refused.
The queue-depth check is a soft limit: creations racing each other may overshoot it by a few.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shutil
import tempfile
from pathlib import Path

from app.db.task_repository import TaskRepository
from app.errors import Unavailable
from config.settings import LimitsSettings

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


def available_memory_bytes() -> int | None:
    """Memory available to new work: psutil if installed, else ``MemAvailable`` of /proc/meminfo."""
    try:
        psutil = importlib.import_module("psutil")  # optional; not a dependency
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def free_disk_bytes(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(directory).free


def spool_dir() -> Path:
    """Where uploads are spooled while a multipart form is parsed (Starlette's
    ``SpooledTemporaryFile``): Python's temporary directory (``TMPDIR``)."""
    return Path(tempfile.gettempdir())


def lowest_free_disk(directories: list[Path]) -> tuple[Path, int]:
    """The directory with the least free space, and that space in bytes."""
    return min(((directory, free_disk_bytes(directory)) for directory in directories), key=lambda d: d[1])


class AdmissionControl:
    def __init__(self, limits: LimitsSettings, media_dir: Path, repository: TaskRepository) -> None:
        self._limits = limits
        self._media_dir = media_dir
        self._repository = repository

    def _refuse(self, limit: str, detail: str) -> Unavailable:
        logger.warning("refusing new work: %s", detail)
        return Unavailable(
            detail,
            title="Service Unavailable: over capacity",
            headers={"Retry-After": str(self._limits.retry_after_seconds)},
            limit=limit,
        )

    async def check(self) -> None:
        """Raise :class:`Unavailable` (503) naming the limit hit, when new work cannot be taken."""
        limits = self._limits
        if limits.max_queue_depth > 0:
            queued = await self._repository.count_queued()
            if queued >= limits.max_queue_depth:
                raise self._refuse(
                    "queue_depth",
                    f"the queue is full: {queued} task(s) queued, limit {limits.max_queue_depth}",
                )
        if limits.min_free_disk_mb > 0:
            # Uploads land in the spool directory first, then in the media directory.
            directory, free = await asyncio.to_thread(lowest_free_disk, [self._media_dir, spool_dir()])
            if free < limits.min_free_disk_mb * MIB:
                where = (
                    "the upload spool directory" if directory != self._media_dir else "the media directory"
                )
                raise self._refuse(
                    "free_disk",
                    f"free disk space is low in {where}: {free / MIB:.0f} MiB, "
                    f"minimum {limits.min_free_disk_mb:g} MiB",
                )
        if limits.min_free_memory_mb > 0:
            available = available_memory_bytes()
            if available is not None and available < limits.min_free_memory_mb * MIB:
                raise self._refuse(
                    "free_memory",
                    f"available memory is low: {available / MIB:.0f} MiB, "
                    f"minimum {limits.min_free_memory_mb:g} MiB",
                )
