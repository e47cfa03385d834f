"""The schema comes only from Alembic, has the queue index, and stores UTC timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import inspect, text

from app.db.migrate import upgrade_to_head
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done


async def test_migrations_create_schema_with_queue_index(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings()
    async with running_app(settings) as running:
        async with running.container.engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes("tasks"))
        assert version is not None
        columns = {tuple(index["column_names"]) for index in indexes}
        assert ("status", "priority", "created_at") in columns

        task_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        task = await wait_done(running.client, task_id)
        for key in ("created_at", "updated_at", "started_at", "completed_at"):
            stamp = datetime.fromisoformat(task[key])
            assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0, key
            assert abs((datetime.now(UTC) - stamp).total_seconds()) < 120
        assert task["created_at"] <= task["started_at"] <= task["completed_at"]


def test_upgrade_is_idempotent(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    upgrade_to_head(settings.database_url)
    upgrade_to_head(settings.database_url)
