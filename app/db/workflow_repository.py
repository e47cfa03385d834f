"""All database access for workflows, their runs, steps and trigger firings.

Runs are advanced by one node at a time: a runner claims due runs (conditional UPDATE on SQLite,
``SELECT ... FOR UPDATE SKIP LOCKED`` on MySQL/PostgreSQL) with a lease and a fencing token, the
same pattern as the callback outbox. Every write of the run's or its steps' state checks the token
(and that the run is still active) in the same transaction, so a node whose lease lapsed, or a run
cancelled meanwhile, can never be written by a stale holder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, func, literal, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.conflicts import retry_on_conflict
from app.db.leases import Lease, lease_due_rows
from app.db.models import ApiKey, Task, Workflow, WorkflowFire, WorkflowRun, WorkflowStep, utcnow


class RunStatus(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.completed, RunStatus.failed, RunStatus.cancelled)


class StepStatus(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    skipped = "skipped"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def done(self) -> bool:
        """Finished in a way that lets the steps that need it go on."""
        return self in (StepStatus.completed, StepStatus.skipped)


ACTIVE = (RunStatus.pending.value, RunStatus.running.value)


@dataclass(frozen=True)
class RunClaim:
    """A run claimed by this node; ``token`` fences every write of this claim."""

    run_id: str
    token: str


class WorkflowRepository:
    """Owns every query on ``workflows``, ``workflow_runs``, ``workflow_steps`` and ``workflow_fires``."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    # --- workflows ------------------------------------------------------------------------------

    async def add(self, workflow: Workflow) -> Workflow:
        async with self._sessions() as session, session.begin():
            session.add(workflow)
        return workflow

    async def get(self, workflow_id: str) -> Workflow | None:
        async with self._sessions() as session:
            return await session.get(Workflow, workflow_id)

    async def search(
        self, *, api_key_id: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Workflow], int]:
        clauses = [Workflow.api_key_id == api_key_id] if api_key_id is not None else []
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(Workflow).where(*clauses))
            rows = await session.scalars(
                select(Workflow)
                .where(*clauses)
                .order_by(Workflow.created_at.desc(), Workflow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return rows.all(), int(total or 0)

    async def replace(self, workflow_id: str, **values: Any) -> Workflow | None:
        async with self._sessions() as session, session.begin():
            workflow = await session.get(Workflow, workflow_id)
            if workflow is None:
                return None
            for key, value in values.items():
                setattr(workflow, key, value)
            workflow.updated_at = utcnow()
        return workflow

    async def delete(self, workflow_id: str) -> list[str]:
        """Delete the workflow with its (finished) runs, steps and firings; returns the runs' media."""
        async with self._sessions() as session, session.begin():
            runs = (
                await session.execute(
                    select(WorkflowRun.id, WorkflowRun.input_media, WorkflowRun.artifacts).where(
                        WorkflowRun.workflow_id == workflow_id
                    )
                )
            ).all()
            media = [name for row in runs for name in [row[1], *(row[2] or [])] if name]
            run_ids = [row[0] for row in runs]
            if run_ids:
                await session.execute(delete(WorkflowStep).where(WorkflowStep.run_id.in_(run_ids)))
                await session.execute(delete(WorkflowRun).where(WorkflowRun.id.in_(run_ids)))
            await session.execute(delete(WorkflowFire).where(WorkflowFire.workflow_id == workflow_id))
            await session.execute(delete(Workflow).where(Workflow.id == workflow_id))
        return media

    async def with_trigger(self, kind: str) -> Sequence[Workflow]:
        """Enabled workflows that have a trigger of ``kind`` (cron, task.completed, link.submitted),
        of keys that are not revoked: a revoked key's workflows stop firing (NULL: the bootstrap
        admin key or auth off)."""
        key_active = (
            select(ApiKey.id).where(ApiKey.id == Workflow.api_key_id, ApiKey.revoked_at.is_(None)).exists()
        )
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Workflow).where(
                    Workflow.enabled.is_(True),
                    Workflow.trigger_kinds.like(f"%,{kind},%"),
                    or_(Workflow.api_key_id.is_(None), key_active),
                )
            )
            return rows.all()

    async def unfired_completed_tasks(
        self,
        workflow_id: str,
        *,
        event: str,
        since: datetime,
        api_key_id: str | None,
        matches: Sequence[Mapping[str, str]],
        limit: int,
    ) -> Sequence[Task]:
        """Tasks completed since ``since`` (oldest first) that no workflow created, of ``api_key_id``
        (any key when None), equal to one of ``matches`` (task columns; "" means empty), for which the
        workflow's ``<event>:<task id>`` firing does not exist yet. The range scan uses
        ``ix_tasks_status_completed``, the firing check the primary key of ``workflow_fires``."""
        fired = select(WorkflowFire.run_id).where(
            WorkflowFire.workflow_id == workflow_id,
            WorkflowFire.fire_key == literal(f"{event}:") + Task.id,
        )
        clauses: list[ColumnElement[bool]] = [
            Task.status == "completed",
            Task.completed_at >= since,
            Task.workflow_run_id.is_(None),
            ~fired.exists(),
            or_(false(), *(self._task_equals(match) for match in matches)),
        ]
        if api_key_id is not None:
            clauses.append(Task.api_key_id == api_key_id)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Task).where(*clauses).order_by(Task.completed_at, Task.id).limit(limit)
            )
            return rows.all()

    @staticmethod
    def _task_equals(match: Mapping[str, str]) -> ColumnElement[bool]:
        """The SQL form of :func:`app.workflows.triggers.task_matches` (keys are task columns)."""
        clauses: list[ColumnElement[bool]] = []
        for key, expected in match.items():
            column = Task.__table__.columns[key]
            clauses.append(column == expected if expected else or_(column.is_(None), column == ""))
        return and_(true(), *clauses)

    # --- runs -----------------------------------------------------------------------------------

    async def create_run(
        self, run: WorkflowRun, steps: Sequence[WorkflowStep], *, fire_key: str | None = None
    ) -> bool:
        """Insert the run and its steps in one transaction; with ``fire_key``, also the firing row, and
        nothing at all (False) when that key already fired for the workflow (on any node)."""
        try:
            async with self._sessions() as session, session.begin():
                if fire_key is not None:
                    session.add(WorkflowFire(workflow_id=run.workflow_id, fire_key=fire_key, run_id=run.id))
                    await session.flush()
                session.add(run)
                session.add_all(steps)
        except IntegrityError:
            if fire_key is None:
                raise
            return False
        return True

    async def fired(self, workflow_id: str, fire_key: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(WorkflowFire.run_id).where(
                    WorkflowFire.workflow_id == workflow_id, WorkflowFire.fire_key == fire_key
                )
            )
            return found is not None

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        async with self._sessions() as session:
            return await session.get(WorkflowRun, run_id)

    async def load(self, run_id: str) -> tuple[WorkflowRun, list[WorkflowStep]] | None:
        async with self._sessions() as session:
            run = await session.get(WorkflowRun, run_id)
            if run is None:
                return None
            steps = await session.scalars(
                select(WorkflowStep).where(WorkflowStep.run_id == run_id).order_by(WorkflowStep.position)
            )
            return run, list(steps.all())

    async def search_runs(
        self, *, workflow_id: str | None, api_key_id: str | None, limit: int, offset: int
    ) -> tuple[Sequence[WorkflowRun], int]:
        clauses: list[ColumnElement[bool]] = []
        if workflow_id is not None:
            clauses.append(WorkflowRun.workflow_id == workflow_id)
        if api_key_id is not None:
            clauses.append(WorkflowRun.api_key_id == api_key_id)
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(WorkflowRun).where(*clauses))
            rows = await session.scalars(
                select(WorkflowRun)
                .where(*clauses)
                .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return rows.all(), int(total or 0)

    async def count_active(self, workflow_id: str) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(WorkflowRun)
                .where(WorkflowRun.workflow_id == workflow_id, WorkflowRun.status.in_(ACTIVE))
            )
            return int(count or 0)

    async def delete_run(self, run_id: str) -> WorkflowRun | None:
        """Delete a finished run and its steps; None when it does not exist or is still active."""
        async with self._sessions() as session, session.begin():
            run = await session.get(WorkflowRun, run_id)
            if run is None or run.status in ACTIVE:
                return None
            await session.execute(delete(WorkflowStep).where(WorkflowStep.run_id == run_id))
            await session.execute(delete(WorkflowRun).where(WorkflowRun.id == run_id))
            return run

    # --- claims ---------------------------------------------------------------------------------

    @staticmethod
    def _due(now: datetime) -> list[ColumnElement[bool]]:
        return [
            WorkflowRun.status.in_(ACTIVE),
            WorkflowRun.next_check_at <= now,
            or_(WorkflowRun.lease_expires_at.is_(None), WorkflowRun.lease_expires_at < now),
        ]

    @retry_on_conflict
    async def claim_due(self, node_id: str, *, lease_seconds: float, limit: int) -> list[RunClaim]:
        """Claim up to ``limit`` runs that are due (oldest check first) for ``node_id``."""
        now = utcnow()
        lease = Lease.new(node_id, lease_seconds, now)
        due = (
            select(WorkflowRun.id)
            .where(*self._due(now))
            .order_by(WorkflowRun.next_check_at, WorkflowRun.id)
            .limit(limit)
        )
        async with self._sessions() as session, session.begin():
            rows = await lease_due_rows(
                session,
                WorkflowRun,
                due=due,
                still_due=self._due(now),
                columns=[WorkflowRun.id],
                lease=lease,
            )
        return [RunClaim(run_id=row[0], token=lease.token) for row in rows]

    @staticmethod
    def _owned(claim: RunClaim) -> list[ColumnElement[bool]]:
        return [
            WorkflowRun.id == claim.run_id,
            WorkflowRun.claim_token == claim.token,
            WorkflowRun.status.in_(ACTIVE),
        ]

    @retry_on_conflict
    async def renew(self, claim: RunClaim, lease_seconds: float) -> bool:
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WorkflowRun)
                .where(*self._owned(claim))
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    @retry_on_conflict
    async def write(
        self,
        claim: RunClaim,
        *,
        run: dict[str, Any] | None = None,
        steps: dict[str, dict[str, Any]] | None = None,
    ) -> bool:
        """Write the run's and its steps' new values in one transaction, only while ``claim`` holds the
        active run (the fencing check locks the run row first, so writers of one run serialise)."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WorkflowRun)
                .where(*self._owned(claim))
                .values({"updated_at": now, **(run or {})})
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            for step_id, values in (steps or {}).items():
                await session.execute(
                    update(WorkflowStep)
                    .where(WorkflowStep.run_id == claim.run_id, WorkflowStep.step_id == step_id)
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
            return True

    async def release(self, claim: RunClaim, *, next_check_at: datetime) -> None:
        """Give the claim back; the run is looked at again from ``next_check_at``."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == claim.run_id, WorkflowRun.claim_token == claim.token)
                .values(claimed_by=None, claim_token=None, lease_expires_at=None, next_check_at=next_check_at)
                .execution_options(synchronize_session=False)
            )

    async def release_node(self, node_id: str) -> int:
        """Give back the claims a previous run of this node left behind (crash or kill)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.claimed_by == node_id, WorkflowRun.status.in_(ACTIVE))
                .values(claimed_by=None, claim_token=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def wake_for_task(self, task_id: str) -> int:
        """Make the active run whose step waits on ``task_id`` due now (the task finished)."""
        async with self._sessions() as session, session.begin():
            run_ids = select(WorkflowStep.run_id).where(WorkflowStep.task_id == task_id).scalar_subquery()
            result = await session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id.in_(run_ids), WorkflowRun.status.in_(ACTIVE))
                .values(next_check_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    @retry_on_conflict
    async def cancel(self, run_id: str) -> list[WorkflowStep] | None:
        """Cancel an active run (None when it is not active); running steps are marked cancelled and
        returned (their tasks are for the caller to cancel)."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id, WorkflowRun.status.in_(ACTIVE))
                .values(
                    status=RunStatus.cancelled.value,
                    completed_at=now,
                    updated_at=now,
                    error="cancelled by request",
                )
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
            running = (
                await session.scalars(
                    select(WorkflowStep).where(
                        WorkflowStep.run_id == run_id, WorkflowStep.status == StepStatus.running.value
                    )
                )
            ).all()
            await session.execute(
                update(WorkflowStep)
                .where(WorkflowStep.run_id == run_id, WorkflowStep.status == StepStatus.running.value)
                .values(status=StepStatus.cancelled.value, completed_at=now)
                .execution_options(synchronize_session=False)
            )
            return list(running)

    async def forget_input_media(self, run_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(WorkflowRun)
                .where(WorkflowRun.id == run_id)
                .values(input_media=None)
                .execution_options(synchronize_session=False)
            )

    async def media_paths(self) -> set[str]:
        """Media the janitor must keep: input media of runs and every run's artifacts."""
        async with self._sessions() as session:
            # Every run: artifacts outlive the run (until it is deleted); input media lives while active.
            rows = (await session.execute(select(WorkflowRun.input_media, WorkflowRun.artifacts))).all()
        return {name for row in rows for name in [row[0], *(row[1] or [])] if name}
