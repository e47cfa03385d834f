"""Migration 0011: each batch gets the key of its tasks, on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime

from alembic import command
from sqlalchemy import text

from app.db.migrate import alembic_config, upgrade_to_head
from app.db.models import Task
from app.db.session import create_engine, create_session_factory
from app.schemas.task import TaskStatus


def _task(batch_id: str, api_key_id: str | None) -> Task:
    return Task(
        status=TaskStatus.completed.value,
        priority=1,
        task_type="transcribe",
        engine="faster_whisper",
        model="tiny.en",
        options={},
        source="upload",
        progress=100.0,
        attempts=1,
        batch_id=batch_id,
        api_key_id=api_key_id,
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
        async with create_session_factory(engine)() as session:
            session.add_all([_task("owned", "key-a"), _task("owned", "key-a"), _task("admins", None)])
            await session.commit()
        await asyncio.to_thread(upgrade_to_head, database_url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id, api_key_id FROM batches"))).all()
        assert dict(rows) == {"owned": "key-a", "admins": None, "emptied": None}
        # Reversible.
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0011_chinese_script")
        await asyncio.to_thread(upgrade_to_head, database_url)
    finally:
        await engine.dispose()
