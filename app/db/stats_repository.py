"""Aggregate queries over ``tasks`` for /api/v1/stats and the queue-depth metric.

Only portable SQL aggregates (COUNT, SUM, AVG, GROUP BY), so SQLite, MariaDB and PostgreSQL
give the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Task
from app.schemas.task import TaskStatus


@dataclass(frozen=True)
class FinishedStats:
    """Tasks that finished at or after ``since``."""

    completed: int
    failed: int
    audio_seconds: float
    processing_seconds: float
    mean_real_time_factor: float | None
    """Mean over completed tasks of processing time / audio duration (tasks with a duration > 0)."""


class StatsRepository:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def counts_by_status(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
            return {str(status): int(count) for status, count in rows}

    async def queue_depth(self) -> dict[int, int]:
        """Queued tasks per priority rank (0 high, 1 normal, 2 low)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(Task.priority, func.count())
                .where(Task.status == TaskStatus.queued.value)
                .group_by(Task.priority)
            )
            return {int(priority): int(count) for priority, count in rows}

    async def finished_since(self, since: datetime) -> FinishedStats:
        finished_since = Task.completed_at >= since
        completed = Task.status == TaskStatus.completed.value
        async with self._sessions() as session:
            totals = (
                await session.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(Task.duration), 0.0),
                        func.coalesce(func.sum(Task.processing_time), 0.0),
                    ).where(completed, finished_since)
                )
            ).one()
            failed = await session.scalar(
                select(func.count()).where(Task.status == TaskStatus.failed.value, finished_since)
            )
            mean_rtf = await session.scalar(
                select(func.avg(Task.processing_time / Task.duration)).where(
                    completed,
                    finished_since,
                    Task.duration > 0,
                    Task.processing_time.is_not(None),
                )
            )
        return FinishedStats(
            completed=int(totals[0]),
            failed=int(failed or 0),
            audio_seconds=float(totals[1] or 0.0),
            processing_seconds=float(totals[2] or 0.0),
            mean_real_time_factor=None if mean_rtf is None else float(mean_rtf),
        )
