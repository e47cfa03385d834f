"""The workers registry: one row per live processor, kept current by heartbeats."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Worker, utcnow
from app.schemas.worker import NodeRole


class WorkerRegistry:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def claim_identity(self, wanted: str, *, stale_after: float) -> str:
        """``wanted``, unless another live worker heartbeats under it; then ``wanted-<pid>``.

        A row left by a process on this host that no longer exists (a crash) is not live, so a
        restarted worker takes its identity, and its unfinished tasks, back at once.
        """
        async with self._sessions() as session:
            row = await session.get(Worker, wanted)
        if row is None or (utcnow() - row.heartbeat_at).total_seconds() >= stale_after:
            return wanted
        if row.hostname == socket.gethostname() and row.pid != os.getpid() and not _pid_alive(row.pid):
            return wanted
        return f"{wanted}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    async def heartbeat(
        self, worker_id: str, *, role: NodeRole, devices: list[str], running: list[str], started_at: datetime
    ) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Worker, worker_id)
            if row is None:
                row = Worker(
                    id=worker_id,
                    role=role,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    devices=devices,
                    running_tasks=running,
                    started_at=started_at,
                    heartbeat_at=utcnow(),
                )
                session.add(row)
            else:
                row.role, row.pid, row.hostname = role, os.getpid(), socket.gethostname()
                row.devices, row.running_tasks, row.heartbeat_at = devices, running, utcnow()
                row.started_at = started_at

    async def remove(self, worker_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(Worker).where(Worker.id == worker_id))

    async def live(self, within_seconds: float) -> Sequence[Worker]:
        cutoff = utcnow() - timedelta(seconds=within_seconds)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Worker).where(Worker.heartbeat_at >= cutoff).order_by(Worker.id)
            )
            return rows.all()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
