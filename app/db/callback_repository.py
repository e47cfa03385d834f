"""The webhook outbox: enqueue deliveries with a task's ending, claim due ones, record attempts.

Several nodes may share the database. A delivery is claimed by one node at a time (conditional
UPDATE on SQLite, ``SELECT ... FOR UPDATE SKIP LOCKED`` on MySQL/PostgreSQL) with a lease and a
fencing token; only the holder of the token records the attempt and schedules the next one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.conflicts import retry_on_conflict
from app.db.leases import Lease, lease_due_rows
from app.db.models import CallbackAttempt, CallbackDelivery, Task, utcnow
from app.schemas.callback import CallbackState


def event_for(task_status: str) -> str:
    return f"task.{task_status}"


def _new_delivery(task_id: str, url: str, event: str, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "task_id": task_id,
        "url": url,
        "event": event,
        "status": CallbackState.pending.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def enqueue_endings(session: AsyncSession, *clauses: ColumnElement[bool], now: datetime) -> int:
    """Inside the caller's transaction: queue a delivery for each task matching ``clauses`` that has a
    ``callback_url``. Called by the write that finishes the tasks, so no ending is lost."""
    rows = (
        await session.execute(
            select(Task.id, Task.callback_url, Task.status).where(*clauses, Task.callback_url.is_not(None))
        )
    ).all()
    if rows:
        await session.execute(
            insert(CallbackDelivery),
            [_new_delivery(row[0], str(row[1]), event_for(row[2]), now) for row in rows],
        )
    return len(rows)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery claimed by this node; ``token`` fences every write of this claim."""

    id: str
    task_id: str
    url: str
    event: str
    attempts: int
    token: str


@dataclass(frozen=True)
class AttemptRecord:
    status_code: int | None
    response_snippet: str | None
    error: str | None
    duration_ms: float
    attempted_at: datetime


class CallbackRepository:
    """Owns every query on ``callback_deliveries`` and ``callback_attempts``."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    @staticmethod
    def _due(now: datetime) -> list[ColumnElement[bool]]:
        return [
            CallbackDelivery.status == CallbackState.pending.value,
            CallbackDelivery.next_attempt_at <= now,
            or_(CallbackDelivery.lease_expires_at.is_(None), CallbackDelivery.lease_expires_at < now),
        ]

    @retry_on_conflict
    async def claim_due(self, node_id: str, *, lease_seconds: float, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries for ``node_id`` (earliest first)."""
        now = utcnow()
        lease = Lease.new(node_id, lease_seconds, now)
        columns = (
            CallbackDelivery.id,
            CallbackDelivery.task_id,
            CallbackDelivery.url,
            CallbackDelivery.event,
            CallbackDelivery.attempts,
        )
        due = (
            select(CallbackDelivery.id)
            .where(*self._due(now))
            .order_by(CallbackDelivery.next_attempt_at, CallbackDelivery.id)
            .limit(limit)
        )
        async with self._sessions() as session, session.begin():
            rows = await lease_due_rows(
                session, CallbackDelivery, due=due, still_due=self._due(now), columns=columns, lease=lease
            )
        return [
            ClaimedDelivery(
                id=row[0], task_id=row[1], url=row[2], event=row[3], attempts=row[4], token=lease.token
            )
            for row in rows
        ]

    @retry_on_conflict
    async def record_attempt(
        self,
        claimed: ClaimedDelivery,
        attempt: AttemptRecord,
        *,
        outcome: CallbackState,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Store the attempt and the delivery's new state, only while ``claimed`` still holds it."""
        number = claimed.attempts + 1
        now = utcnow()
        values: dict[str, Any] = {
            "status": outcome.value,
            "attempts": number,
            "claimed_by": None,
            "claim_token": None,
            "lease_expires_at": None,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
            "last_attempt_at": attempt.attempted_at,
            "updated_at": now,
        }
        if outcome is CallbackState.delivered:
            values["delivered_at"] = now
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(CallbackDelivery)
                .where(
                    CallbackDelivery.id == claimed.id,
                    CallbackDelivery.claim_token == claimed.token,
                    CallbackDelivery.status == CallbackState.pending.value,
                )
                .values(values)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            await session.execute(
                insert(CallbackAttempt).values(
                    delivery_id=claimed.id,
                    number=number,
                    status_code=attempt.status_code,
                    response_snippet=attempt.response_snippet,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                    attempted_at=attempt.attempted_at,
                )
            )
            return True

    async def release(self, claimed: ClaimedDelivery) -> None:
        """Give a claim back without recording an attempt (shutdown)."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(CallbackDelivery)
                .where(CallbackDelivery.id == claimed.id, CallbackDelivery.claim_token == claimed.token)
                .values(claimed_by=None, claim_token=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )

    async def release_node(self, node_id: str) -> int:
        """Give back the claims a previous run of this node left behind (crash or kill)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(CallbackDelivery)
                .where(
                    CallbackDelivery.claimed_by == node_id,
                    CallbackDelivery.status == CallbackState.pending.value,
                )
                .values(claimed_by=None, claim_token=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def resend(self, task_id: str, url: str, event: str) -> CallbackDelivery | None:
        """Queue a new delivery, unless one for this task is still pending (then ``None``)."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            pending = await session.scalar(
                select(CallbackDelivery.id)
                .where(
                    CallbackDelivery.task_id == task_id,
                    CallbackDelivery.status == CallbackState.pending.value,
                )
                .limit(1)
            )
            if pending is not None:
                return None
            delivery = CallbackDelivery(**_new_delivery(task_id, url, event, now))
            session.add(delivery)
        return delivery

    async def latest_for(self, task_ids: Sequence[str]) -> dict[str, CallbackDelivery]:
        """The newest delivery of each task that has one."""
        if not task_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CallbackDelivery)
                .where(CallbackDelivery.task_id.in_(list(task_ids)))
                .order_by(CallbackDelivery.created_at, CallbackDelivery.id)
            )
            return {row.task_id: row for row in rows}

    async def history(self, task_id: str) -> list[tuple[CallbackDelivery, list[CallbackAttempt]]]:
        """Every delivery of a task (oldest first) with its attempts."""
        async with self._sessions() as session:
            deliveries = (
                await session.scalars(
                    select(CallbackDelivery)
                    .where(CallbackDelivery.task_id == task_id)
                    .order_by(CallbackDelivery.created_at, CallbackDelivery.id)
                )
            ).all()
            if not deliveries:
                return []
            attempts = (
                await session.scalars(
                    select(CallbackAttempt)
                    .where(CallbackAttempt.delivery_id.in_([d.id for d in deliveries]))
                    .order_by(CallbackAttempt.number, CallbackAttempt.id)
                )
            ).all()
        by_delivery: dict[str, list[CallbackAttempt]] = {d.id: [] for d in deliveries}
        for attempt in attempts:
            by_delivery[attempt.delivery_id].append(attempt)
        return [(delivery, by_delivery[delivery.id]) for delivery in deliveries]

    async def delete_for_task(self, task_id: str) -> None:
        async with self._sessions() as session, session.begin():
            ids = select(CallbackDelivery.id).where(CallbackDelivery.task_id == task_id)
            await session.execute(delete(CallbackAttempt).where(CallbackAttempt.delivery_id.in_(ids)))
            await session.execute(delete(CallbackDelivery).where(CallbackDelivery.task_id == task_id))
