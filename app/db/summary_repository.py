"""Database access for LLM summaries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Summary


class SummaryRepository:
    """Owns every query on the ``summaries`` table."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def add(self, summary: Summary) -> Summary:
        async with self._sessions() as session:
            session.add(summary)
            await session.commit()
            return summary

    async def get(self, task_id: str, summary_id: str) -> Summary | None:
        async with self._sessions() as session:
            summary = await session.get(Summary, summary_id)
            return summary if summary is not None and summary.task_id == task_id else None

    async def for_task(self, task_id: str) -> Sequence[Summary]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Summary)
                .where(Summary.task_id == task_id)
                .order_by(Summary.created_at.desc(), Summary.id.desc())
            )
            return rows.all()
