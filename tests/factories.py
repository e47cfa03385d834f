"""Task rows for tests that talk to the repositories directly, without the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.db.models import Task, utcnow
from app.schemas.task import TaskPriority, TaskStatus


def task_row(**fields: Any) -> Task:
    """A queued ``tiny.en`` upload task as the API would store it; keyword arguments set other columns."""
    values: dict[str, Any] = {
        "status": TaskStatus.queued.value,
        "priority": TaskPriority.normal.rank,
        "task_type": "transcribe",
        "engine": "faster_whisper",
        "model": "tiny.en",
        "options": {},
        "source": "upload",
        "progress": 0.0,
        "attempts": 0,
    }
    return Task(**(values | fields))


def claimed_task_row(*, lease_seconds: float = 60, **fields: Any) -> Task:
    """A task that ``worker-1`` claimed once and holds the lease of for ``lease_seconds``."""
    claim: dict[str, Any] = {
        "status": TaskStatus.processing.value,
        "attempts": 1,
        "worker_id": "worker-1",
        "lease_expires_at": utcnow() + timedelta(seconds=lease_seconds),
    }
    return task_row(**(claim | fields))
