"""Database access for enrolled voices."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Speaker


class SpeakerRepository:
    """Owns every query on the ``speakers`` table."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def add(self, speaker: Speaker) -> Speaker:
        async with self._sessions() as session:
            session.add(speaker)
            await session.commit()
            return speaker

    async def get(self, speaker_id: str) -> Speaker | None:
        async with self._sessions() as session:
            return await session.get(Speaker, speaker_id)

    async def search(self, *, owner: str | None, limit: int, offset: int) -> tuple[Sequence[Speaker], int]:
        """A page of speakers, newest first; ``owner`` None lists every key's."""
        async with self._sessions() as session:
            query = select(Speaker)
            counting = select(func.count()).select_from(Speaker)
            if owner is not None:
                query = query.where(Speaker.api_key_id == owner)
                counting = counting.where(Speaker.api_key_id == owner)
            rows = await session.scalars(
                query.order_by(Speaker.created_at.desc(), Speaker.id.desc()).limit(limit).offset(offset)
            )
            total = int(await session.scalar(counting) or 0)
            return rows.all(), total

    async def of_key(self, api_key_id: str | None) -> Sequence[Speaker]:
        """The voices enrolled by one key (None: with auth off or the bootstrap admin key)."""
        async with self._sessions() as session:
            condition = (
                Speaker.api_key_id.is_(None) if api_key_id is None else Speaker.api_key_id == api_key_id
            )
            rows = await session.scalars(select(Speaker).where(condition).order_by(Speaker.created_at))
            return rows.all()

    async def delete(self, speaker_id: str) -> bool:
        async with self._sessions() as session:
            result = await session.execute(delete(Speaker).where(Speaker.id == speaker_id))
            await session.commit()
            return bool(getattr(result, "rowcount", 0))
