"""The API-key migration and the cancel/retry/ownership queries on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import command

from app.db.api_key_repository import ApiKeyRepository
from app.db.migrate import alembic_config, upgrade_to_head
from app.db.session import create_engine, create_session_factory
from app.db.task_repository import TaskFilters, TaskRepository
from app.services.auth import AuthService
from config.settings import AuthSettings
from tests.factories import task_row


async def test_keys_ownership_cancel_and_retry_on_each_backend(database_url: str) -> None:
    # Down to the previous revision and up again: the migration is reversible.
    await asyncio.to_thread(upgrade_to_head, database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0003")
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        auth = AuthService(AuthSettings(enabled=True), ApiKeyRepository(sessions))
        created = await auth.create("alice")
        principal = await auth.authenticate(created.plaintext)
        assert principal is not None and principal.key_id == created.key.id and not principal.is_admin
        assert await auth.authenticate(created.plaintext + "x") is None

        tasks = TaskRepository(sessions)
        mine, other = await tasks.add(task_row(api_key_id=created.key.id)), await tasks.add(task_row())
        rows, total = await tasks.search(TaskFilters(api_key_id=created.key.id), limit=10, offset=0)
        assert [row.id for row in rows] == [mine.id] and total == 1
        assert await tasks.delete(other.id, api_key_id=created.key.id) is None
        assert await tasks.count_queued() == 2

        assert await tasks.cancel(mine.id)
        assert not await tasks.cancel(mine.id)  # only queued or processing
        assert await tasks.count_queued() == 1
        assert not await tasks.requeue_finished(other.id)  # queued: nothing to retry
        assert await tasks.requeue_finished(mine.id)
        requeued = await tasks.get(mine.id)
        assert requeued is not None and requeued.status == "queued" and requeued.completed_at is None

        await auth.revoke(created.key.id)
        assert await auth.authenticate(created.plaintext) is None
    finally:
        await engine.dispose()
