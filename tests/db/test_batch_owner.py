"""Migration 0012: each batch gets the key of its tasks, on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime

from alembic import command
from sqlalchemy import text

from app.db.migrate import alembic_config, upgrade_to_head
from app.db.session import create_engine

# Rows as the schema stood before the migration: raw SQL, since the ORM model follows the newest schema.
INSERT_TASK = text(
    "INSERT INTO tasks (id, status, priority, task_type, engine, model, options, source, progress,"
    " attempts, batch_id, api_key_id, created_at, updated_at) VALUES (:id, 'completed', 1, 'transcribe',"
    " 'faster_whisper', 'tiny.en', '{}', 'upload', 100.0, 1, :batch_id, :api_key_id, :at, :at)"
)


async def test_existing_batches_take_their_tasks_key(database_url: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "0011_chinese_script")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for batch_id in ("owned", "admins", "emptied"):
                await connection.execute(
                    text("INSERT INTO batches (id, total, created_at) VALUES (:id, 2, :at)"),
                    {"id": batch_id, "at": datetime(2026, 12, 1, 12, 0, 0)},
                )
            for number, (batch_id, key) in enumerate(
                [("owned", "key-a"), ("owned", "key-a"), ("admins", None)]
            ):
                await connection.execute(
                    INSERT_TASK,
                    {
                        "id": f"task{number}",
                        "batch_id": batch_id,
                        "api_key_id": key,
                        "at": datetime(2026, 12, 1),
                    },
                )
        await asyncio.to_thread(upgrade_to_head, database_url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id, api_key_id FROM batches"))).all()
        assert dict(rows) == {"owned": "key-a", "admins": None, "emptied": None}
        # Reversible.
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0011_chinese_script")
        await asyncio.to_thread(upgrade_to_head, database_url)
    finally:
        await engine.dispose()
