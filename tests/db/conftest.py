"""Real databases: SQLite always; MariaDB and PostgreSQL on 127.0.0.1 when their servers run.

Each test gets a database of its own, created here and dropped afterwards. Without a server the
MySQL/PostgreSQL cases skip, unless ``TINGXIE_REQUIRE_DATABASES=1`` (set by ``.ci/run``) makes
a missing server a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

MYSQL_SERVER = os.environ.get("TINGXIE_TEST_MYSQL", "mysql+aiomysql://root@127.0.0.1:3306/test")
POSTGRES_SERVER = os.environ.get("TINGXIE_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _unavailable(backend: str, exc: Exception) -> None:
    message = f"{backend} server unavailable: {type(exc).__name__}: {exc}"
    if os.environ.get("TINGXIE_REQUIRE_DATABASES") == "1":
        pytest.fail(message)
    pytest.skip(message)


async def _server_database(server_url: str, backend: str) -> AsyncIterator[str]:
    name = f"tingxie_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        await admin.dispose()
        _unavailable(backend, exc)
    base, _, _old = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        async with admin.connect() as connection:
            if backend == "postgresql":
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    )
                )
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await admin.dispose()


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}"
    elif backend == "mysql":
        async for url in _server_database(MYSQL_SERVER, "mysql"):
            yield url
    else:
        async for url in _server_database(POSTGRES_SERVER, "postgresql"):
            yield url


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    """A fresh database on the local MariaDB server."""
    async for url in _server_database(MYSQL_SERVER, "mysql"):
        yield url
