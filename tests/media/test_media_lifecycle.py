"""Media retention, deletion after processing, and the start-up orphan sweep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.db.models import Task, utcnow
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done

pytestmark = pytest.mark.slow


async def test_startup_sweeps_orphaned_files(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings()
    async with running_app(settings, paused=True) as first:
        kept = (await upload(first.client, clips["goforward.wav"].path)).json()["id"]
    media = settings.storage.media_dir
    old = time.time() - 3600
    orphan = media / "0123456789abcdef0123456789abcdef.media"
    partial = media / "fedcba9876543210fedcba9876543210.media.part"
    fresh = media / "00000000000000000000000000000000.media.part"
    for path in (orphan, partial, fresh):
        path.write_bytes(b"leftover")
    for path in (orphan, partial):
        os.utime(path, (old, old))
    async with running_app(settings) as second:
        assert not orphan.exists() and not partial.exists()
        assert fresh.exists(), "a file younger than the grace period may belong to an in-flight upload"
        task = await wait_done(second.client, kept)
        assert task["status"] == "completed" and task["media_available"]


async def test_media_deleted_after_processing_when_configured(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings(storage={"delete_media_after_processing": True})
    async with running_app(settings) as running:
        task_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        task = await wait_done(running.client, task_id)
        assert task["status"] == "completed"
        after = (await running.client.get(f"/api/v1/tasks/{task_id}")).json()
        assert after["media_available"] is False
        assert list(settings.storage.media_dir.iterdir()) == []
        gone = await running.client.get(f"/api/v1/tasks/{task_id}/media")
        assert gone.status_code == 410
        assert (await running.client.get(f"/api/v1/tasks/{task_id}/subtitles")).status_code == 200


async def test_retention_expires_old_media(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings(storage={"media_retention_hours": 1})
    async with running_app(settings) as running:
        old_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        new_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        await wait_done(running.client, old_id)
        await wait_done(running.client, new_id)
        async with running.container.engine.begin() as connection:
            await connection.execute(
                update(Task).where(Task.id == old_id).values(completed_at=utcnow() - timedelta(hours=2))
            )
        await running.container.janitor.sweep()
        assert (await running.client.get(f"/api/v1/tasks/{old_id}/media")).status_code == 410
        assert (await running.client.get(f"/api/v1/tasks/{new_id}/media")).status_code == 200
        assert len(list(settings.storage.media_dir.iterdir())) == 1
