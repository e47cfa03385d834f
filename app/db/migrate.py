"""Run Alembic migrations programmatically (the only way the schema is created)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy.engine import make_url

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    """Blocking: call from a thread when an event loop is running (env.py uses ``asyncio.run``).

    Concurrent starters are serialised: MySQL/PostgreSQL by a database lock taken in env.py,
    SQLite by a lock file beside the database.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        with FileLock(f"{url.database}.migrate.lock", timeout=300):
            command.upgrade(alembic_config(database_url), "head")
        return
    command.upgrade(alembic_config(database_url), "head")
