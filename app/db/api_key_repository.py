"""All database access for API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import ApiKey, utcnow


class ApiKeyRepository:
    """Owns every query on the ``api_keys`` table."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def add(self, key: ApiKey) -> ApiKey:
        async with self._sessions() as session:
            session.add(key)
            await session.commit()
            return key

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not."""
        async with self._sessions() as session:
            return await session.get(ApiKey, key_id)

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not."""
        async with self._sessions() as session:
            return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    async def list(self, *, include_revoked: bool = False) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (idempotent); ``None`` when it does not exist."""
        async with self._sessions() as session, session.begin():
            key = await session.get(ApiKey, key_id)
            if key is None:
                return None
            if key.revoked_at is None:
                key.revoked_at = utcnow()
            return key

    async def touch(self, key_id: str, when: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(last_used_at=when)
                .execution_options(synchronize_session=False)
            )
