"""The /api/v1/stats aggregates give the same answers on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.db.migrate import upgrade_to_head
from app.db.models import Task, utcnow
from app.db.session import create_engine, create_session_factory
from app.db.stats_repository import StatsRepository
from app.db.task_repository import TaskRepository
from app.schemas.task import TaskPriority, TaskStatus
from tests.factories import task_row


def _task(
    status: TaskStatus,
    priority: TaskPriority = TaskPriority.normal,
    *,
    duration: float | None = None,
    processing_time: float | None = None,
    finished_minutes_ago: float | None = None,
) -> Task:
    finished = None if finished_minutes_ago is None else utcnow() - timedelta(minutes=finished_minutes_ago)
    return task_row(
        status=status.value,
        priority=priority.rank,
        duration=duration,
        processing_time=processing_time,
        completed_at=finished,
    )


async def test_counts_queue_depth_and_last_hour(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    tasks, stats = TaskRepository(sessions), StatsRepository(sessions)
    try:
        empty = await stats.finished_since(utcnow() - timedelta(hours=1))
        assert (empty.completed, empty.failed, empty.audio_seconds, empty.mean_real_time_factor) == (
            0,
            0,
            0,
            None,
        )
        for row in (
            _task(TaskStatus.queued, TaskPriority.high),
            _task(TaskStatus.queued, TaskPriority.low),
            _task(TaskStatus.queued, TaskPriority.low),
            _task(TaskStatus.processing),
            # In the last hour: RTF 0.1 and 0.3 (mean 0.2); 40 s of audio in 8 s.
            _task(TaskStatus.completed, duration=10.0, processing_time=1.0, finished_minutes_ago=5),
            _task(TaskStatus.completed, duration=30.0, processing_time=9.0, finished_minutes_ago=50),
            # A silent file (duration 0) counts as completed but has no real-time factor.
            _task(TaskStatus.completed, duration=0.0, processing_time=0.5, finished_minutes_ago=1),
            _task(TaskStatus.failed, processing_time=2.0, finished_minutes_ago=10),
            # Too old for the window.
            _task(TaskStatus.completed, duration=100.0, processing_time=100.0, finished_minutes_ago=90),
            _task(TaskStatus.failed, finished_minutes_ago=120),
        ):
            await tasks.add(row)

        assert await stats.counts_by_status() == {
            "queued": 3,
            "processing": 1,
            "completed": 4,
            "failed": 2,
        }
        assert await stats.queue_depth() == {TaskPriority.high.rank: 1, TaskPriority.low.rank: 2}
        hour = await stats.finished_since(utcnow() - timedelta(hours=1))
        assert hour.completed == 3 and hour.failed == 1
        assert hour.audio_seconds == pytest.approx(40.0)
        assert hour.processing_seconds == pytest.approx(10.5)
        assert hour.mean_real_time_factor == pytest.approx(0.2)
    finally:
        await engine.dispose()
