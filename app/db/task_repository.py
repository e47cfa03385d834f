"""All database access for tasks: create, query, atomic claim and fenced result writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.callback_repository import enqueue_endings
from app.db.conflicts import retry_on_conflict
from app.db.models import Batch, Task, utcnow
from app.schemas.task import TaskPriority, TaskStatus, TaskType


@dataclass(frozen=True)
class TaskFilters:
    """Optional filters for listing tasks; ``None`` means 'any'."""

    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    task_type: TaskType | None = None
    language: str | None = None
    platform: str | None = None
    engine: str | None = None
    model: str | None = None
    created_after: datetime | None = None
    """Naive datetimes (a query without a zone) are read as UTC, here and in ``created_before``."""
    created_before: datetime | None = None
    has_error: bool | None = None
    api_key_id: str | None = None
    """Only tasks created with this API key (None: any, for admins and when auth is off)."""

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.status is not None:
            clauses.append(Task.status == self.status.value)
        if self.priority is not None:
            clauses.append(Task.priority == self.priority.rank)
        if self.task_type is not None:
            clauses.append(Task.task_type == self.task_type.value)
        for column, value in (
            (Task.language, self.language),
            (Task.platform, self.platform),
            (Task.engine, self.engine),
            (Task.model, self.model),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.created_after is not None:
            clauses.append(Task.created_at >= _as_utc(self.created_after))
        if self.created_before is not None:
            clauses.append(Task.created_at < _as_utc(self.created_before))
        if self.has_error is not None:
            clauses.append(Task.error.is_not(None) if self.has_error else Task.error.is_(None))
        if self.api_key_id is not None:
            clauses.append(Task.api_key_id == self.api_key_id)
        return clauses


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Claim:
    """A task claimed by a worker. ``attempt`` is the fencing token for every later write."""

    task_id: str
    attempt: int


class TaskRepository:
    """Owns every query on the ``tasks`` table."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def add(self, task: Task) -> Task:
        async with self._sessions() as session:
            session.add(task)
            await session.commit()
            return task

    async def get(self, task_id: str) -> Task | None:
        async with self._sessions() as session:
            return await session.get(Task, task_id)

    async def search(self, filters: TaskFilters, *, limit: int, offset: int) -> tuple[Sequence[Task], int]:
        clauses = filters.clauses()
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(Task).where(*clauses))
            rows = await session.scalars(
                select(Task)
                .where(*clauses)
                .order_by(Task.created_at.desc(), Task.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return rows.all(), int(total or 0)

    async def delete(self, task_id: str, *, api_key_id: str | None = None) -> Task | None:
        """Delete the row and return it as it was, or ``None`` when it does not exist
        (or, with ``api_key_id``, belongs to another key)."""
        async with self._sessions() as session, session.begin():
            task = await session.get(Task, task_id)
            if task is None or (api_key_id is not None and task.api_key_id != api_key_id):
                return None
            await session.execute(delete(Task).where(Task.id == task_id))
            return task

    @retry_on_conflict
    async def claim_next(self, worker_id: str, lease_seconds: float = 60.0) -> Claim | None:
        """Atomically move the best queued task (highest priority, then oldest) to processing.

        The claim records the worker and a lease expiry; ``attempts`` goes up by one and is the
        fencing token for every later write of this claim.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "status": TaskStatus.processing.value,
            "worker_id": worker_id,
            "started_at": now,
            "updated_at": now,
            "progress": 0.0,
            "attempts": Task.attempts + 1,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
        }
        oldest_best = (
            select(Task.id)
            .where(Task.status == TaskStatus.queued.value)
            .order_by(Task.priority, Task.created_at, Task.id)
            .limit(1)
        )
        async with self._sessions() as session, session.begin():
            if session.get_bind().dialect.name == "sqlite":
                # One statement: SQLite serialises writers, so the sub-select and the
                # update cannot interleave with another claimer.
                row = (
                    await session.execute(
                        update(Task)
                        .where(Task.id == oldest_best.scalar_subquery())
                        .where(Task.status == TaskStatus.queued.value)
                        .values(values)
                        .returning(Task.id, Task.attempts)
                        .execution_options(synchronize_session=False)
                    )
                ).first()
                return None if row is None else Claim(task_id=row[0], attempt=row[1])
            # The row stays locked (SKIP LOCKED keeps other claimers off it) until commit,
            # so the attempt read here is the one the update increments.
            locked = (
                await session.execute(
                    oldest_best.add_columns(Task.attempts).with_for_update(skip_locked=True)
                )
            ).first()
            if locked is None:
                return None
            await session.execute(
                update(Task)
                .where(Task.id == locked[0])
                .values(values)
                .execution_options(synchronize_session=False)
            )
            return Claim(task_id=locked[0], attempt=locked[1] + 1)

    def _owned(self, claim: Claim) -> list[ColumnElement[bool]]:
        return [
            Task.id == claim.task_id,
            Task.status == TaskStatus.processing.value,
            Task.attempts == claim.attempt,
        ]

    @retry_on_conflict
    async def update_owned(self, claim: Claim, **values: Any) -> bool:
        """Write ``values`` only while the claim still owns the task (fenced by attempt)."""
        values.setdefault("updated_at", utcnow())
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Task)
                .where(*self._owned(claim))
                .values(values)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    @retry_on_conflict
    async def finish_owned(self, claim: Claim, **values: Any) -> bool:
        """Like :meth:`update_owned` for the write that ends the task (``status`` completed or
        failed); the callback delivery, if the task has a ``callback_url``, is queued in the same
        transaction."""
        now = utcnow()
        values.setdefault("updated_at", now)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Task)
                .where(*self._owned(claim))
                .values(values)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            await enqueue_endings(session, Task.id == claim.task_id, now=now)
            return True

    async def renew_leases(self, worker_id: str, claims: list[Claim], lease_seconds: float) -> set[Claim]:
        """Extend the leases of ``claims``; returns the claims that still own their task (a stale
        claim of a task that was cancelled and queued again owns nothing)."""
        if not claims:
            return set()
        now = utcnow()
        owned: set[Claim] = set()
        async with self._sessions() as session, session.begin():
            for claim in claims:
                result = await session.execute(
                    update(Task)
                    .where(*self._owned(claim), Task.worker_id == worker_id)
                    .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    owned.add(claim)
        return owned

    async def reap_expired(self, max_attempts: int) -> tuple[int, int]:
        """Re-queue processing tasks whose lease expired; fail those out of attempts.

        Returns (re-queued, failed). Safe to run on every node at once: each row moves once.
        """
        now = utcnow()
        expired = [Task.status == TaskStatus.processing.value, Task.lease_expires_at < now]
        reason = f"the worker's lease expired on each of {max_attempts} attempt(s)"
        async with self._sessions() as session, session.begin():
            failed = await session.execute(
                update(Task)
                .where(*expired, Task.attempts >= max_attempts)
                .values(
                    status=TaskStatus.failed.value,
                    error=reason,
                    completed_at=now,
                    updated_at=now,
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            if failed.rowcount:  # type: ignore[attr-defined]
                # The rows this statement just failed: same transaction, same timestamp.
                await enqueue_endings(
                    session,
                    Task.status == TaskStatus.failed.value,
                    Task.completed_at == now,
                    Task.updated_at == now,
                    Task.error == reason,
                    now=now,
                )
            requeued = await session.execute(
                update(Task)
                .where(*expired, Task.attempts < max_attempts)
                .values(
                    status=TaskStatus.queued.value,
                    worker_id=None,
                    progress=0.0,
                    started_at=None,
                    updated_at=now,
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return int(requeued.rowcount), int(failed.rowcount)  # type: ignore[attr-defined]

    async def requeue_abandoned(self, worker_id: str) -> int:
        """Return tasks this node was processing when it stopped (crash or kill) to the queue."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Task)
                .where(Task.status == TaskStatus.processing.value, Task.worker_id == worker_id)
                .values(
                    status=TaskStatus.queued.value,
                    worker_id=None,
                    progress=0.0,
                    started_at=None,
                    updated_at=utcnow(),
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def media_paths(self) -> set[str]:
        async with self._sessions() as session:
            rows = await session.scalars(select(Task.media_path).where(Task.media_path.is_not(None)))
            return {path for path in rows if path}

    async def expired_media(self, finished_before: datetime) -> Sequence[tuple[str, str]]:
        """(task id, media path) of finished tasks whose media outlived the retention."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(Task.id, Task.media_path).where(
                    Task.media_path.is_not(None),
                    Task.status.in_(
                        [TaskStatus.completed.value, TaskStatus.failed.value, TaskStatus.cancelled.value]
                    ),
                    Task.completed_at < finished_before,
                )
            )
            return [(str(row[0]), str(row[1])) for row in rows]

    async def forget_media(self, task_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(media_path=None)
                .execution_options(synchronize_session=False)
            )

    async def count_queued(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Task).where(Task.status == TaskStatus.queued.value)
            )
            return int(count or 0)

    @retry_on_conflict
    async def cancel(self, task_id: str) -> bool:
        """Move a queued or processing task to cancelled; False when it was in neither state.

        A worker running it elsewhere notices at its next fenced write or lease renewal, both of
        which require ``processing``, and drops the work.
        """
        now = utcnow()
        return await self._transition(
            task_id,
            (TaskStatus.queued, TaskStatus.processing),
            status=TaskStatus.cancelled.value,
            completed_at=now,
            updated_at=now,
            lease_expires_at=None,
        )

    @retry_on_conflict
    async def requeue_finished(self, task_id: str) -> bool:
        """Queue a failed or cancelled task again; False when it was in neither state.

        ``attempts`` is kept: it is the fencing token, so a stale worker of an earlier claim can
        never write into the new run.
        """
        return await self._transition(
            task_id,
            (TaskStatus.failed, TaskStatus.cancelled),
            status=TaskStatus.queued.value,
            error=None,
            result=None,
            progress=0.0,
            language=None,
            language_probability=None,
            processing_time=None,
            worker_id=None,
            started_at=None,
            completed_at=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )

    async def _transition(self, task_id: str, sources: tuple[TaskStatus, ...], **values: Any) -> bool:
        """Write ``values`` only if the task is in one of ``sources``; True when it was."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status.in_([status.value for status in sources]))
                .values(values)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_batch(self, batch: Batch, tasks: Sequence[Task]) -> None:
        """Insert a batch and all of its tasks in one transaction: all or nothing."""
        async with self._sessions() as session, session.begin():
            session.add(batch)
            session.add_all(tasks)

    async def get_batch(self, batch_id: str) -> tuple[Batch, Sequence[Task]] | None:
        """The batch and its remaining tasks in upload order, or ``None``."""
        async with self._sessions() as session:
            batch = await session.get(Batch, batch_id)
            if batch is None:
                return None
            rows = await session.scalars(
                select(Task).where(Task.batch_id == batch_id).order_by(Task.created_at, Task.id)
            )
            return batch, rows.all()
