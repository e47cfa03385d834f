"""Alembic environment: runs migrations over the async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import Base
from app.db.session import create_engine

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from config.settings import Settings

        url = Settings().database_url
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_LOCK_NAME = "tingxie_migrations"
_PG_LOCK_KEY = 727274_2026


async def _lock(connection: AsyncConnection) -> None:
    """Serialise migrations across processes and nodes starting at the same time."""
    if connection.dialect.name in ("mysql", "mariadb"):
        await connection.execute(text("SELECT GET_LOCK(:name, 300)"), {"name": _LOCK_NAME})
    elif connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        await connection.commit()


async def _unlock(connection: AsyncConnection) -> None:
    if connection.dialect.name in ("mysql", "mariadb"):
        await connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK_NAME})
    elif connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
        await connection.commit()


async def _run_async() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await _lock(connection)
            try:
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                await _unlock(connection)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
