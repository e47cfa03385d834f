"""The same migrations and queue semantics on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from app.db.migrate import upgrade_to_head
from app.db.models import Task, utcnow
from app.db.session import create_engine, create_session_factory
from app.db.task_repository import TaskRepository
from app.schemas.task import TaskPriority
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done
from tests.factories import task_row


def _task(priority: TaskPriority, created_offset: float) -> Task:
    return task_row(priority=priority.rank, created_at=utcnow() + timedelta(milliseconds=created_offset))


async def test_migrations_create_the_same_schema(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    await asyncio.to_thread(upgrade_to_head, database_url)  # idempotent
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes("tasks"))
        assert version
        assert ("status", "priority", "created_at") in {tuple(i["column_names"]) for i in indexes}
    finally:
        await engine.dispose()


async def test_claims_priority_then_fifo_and_fencing(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url)
    repository = TaskRepository(create_session_factory(engine))
    try:
        low = await repository.add(_task(TaskPriority.low, 0))
        normal_old = await repository.add(_task(TaskPriority.normal, 1))
        high = await repository.add(_task(TaskPriority.high, 2))
        normal_new = await repository.add(_task(TaskPriority.normal, 3))
        order = [await repository.claim_next("w1") for _ in range(5)]
        assert [c.task_id if c else None for c in order] == [
            high.id,
            normal_old.id,
            normal_new.id,
            low.id,
            None,
        ]

        stored = await repository.get(high.id)
        assert stored is not None and stored.status == "processing" and stored.worker_id == "w1"
        assert stored.created_at.tzinfo is not None and stored.started_at is not None

        # The owner's writes are fenced by the attempt: after a re-queue and a new claim,
        # the old claim can no longer write.
        first = order[0]
        assert first is not None
        assert await repository.requeue_abandoned("w1") == 4
        second = await repository.claim_next("w2")
        assert second is not None and second.task_id == high.id and second.attempt == first.attempt + 1
        assert not await repository.update_owned(first, status="completed", result={"text": "stale"})
        assert await repository.update_owned(second, status="completed", result={"text": "fresh"})
        final = await repository.get(high.id)
        assert final is not None and final.result == {"text": "fresh"}
    finally:
        await engine.dispose()


async def test_concurrent_claimers_never_share_a_task(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    setup = create_engine(database_url)
    repository = TaskRepository(create_session_factory(setup))
    for index in range(60):
        await repository.add(_task(TaskPriority.normal, index))
    engines = [create_engine(database_url) for _ in range(4)]
    try:

        async def worker(number: int) -> list[str]:
            claimer = TaskRepository(create_session_factory(engines[number]))
            claimed: list[str] = []
            while (claim := await claimer.claim_next(f"w{number}")) is not None:
                claimed.append(claim.task_id)
            return claimed

        results = await asyncio.gather(*(worker(n) for n in range(4)))
        everything = [task_id for claimed in results for task_id in claimed]
        assert len(everything) == 60 and len(set(everything)) == 60, "a task was claimed twice"
    finally:
        for engine in engines:
            await engine.dispose()
        await setup.dispose()


@pytest.mark.slow
async def test_end_to_end_on_each_backend(
    database_url: str, make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    async with running_app(make_settings(database_url=database_url)) as running:
        task_id = (await upload(running.client, clips["jfk.flac"].path, priority="high")).json()["id"]
        task = await wait_done(running.client, task_id)
        assert task["status"] == "completed", task["error"]
        assert "ask not what your country can do for you" in normalize_en(task["result"]["text"])
        listing = (await running.client.get("/api/v1/tasks", params={"status": "completed"})).json()
        assert listing["total"] == 1 and listing["items"][0]["id"] == task_id
        created = listing["items"][0]["created_at"]
        assert created.endswith("Z") or created.endswith("+00:00")


async def test_reaper_requeues_expired_leases_and_fails_after_max_attempts(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url)
    repository = TaskRepository(create_session_factory(engine))
    try:
        task = await repository.add(_task(TaskPriority.normal, 0))
        kept = await repository.add(_task(TaskPriority.low, 1))
        first = await repository.claim_next("dead-worker", lease_seconds=0.2)
        healthy = await repository.claim_next("live-worker", lease_seconds=60)
        assert first is not None and first.task_id == task.id
        assert healthy is not None and healthy.task_id == kept.id
        await asyncio.sleep(0.4)
        assert await repository.reap_expired(max_attempts=2) == (1, 0)
        row = await repository.get(task.id)
        assert row is not None and row.status == "queued" and row.worker_id is None and row.attempts == 1
        assert (await repository.get(kept.id)).status == "processing"  # type: ignore[union-attr]

        # The dead worker's late write is fenced off; the new owner's renewals succeed.
        second = await repository.claim_next("w2", lease_seconds=0.2)
        assert second is not None and second.attempt == 2
        assert not await repository.update_owned(first, status="completed")
        assert await repository.renew_leases("w2", [second], 0.2) == {second}
        assert await repository.renew_leases("dead-worker", [first], 60) == set()
        await asyncio.sleep(0.4)
        assert await repository.reap_expired(max_attempts=2) == (0, 1)
        row = await repository.get(task.id)
        assert row is not None and row.status == "failed" and "lease expired" in (row.error or "")
        assert row.completed_at is not None
    finally:
        await engine.dispose()


async def test_workers_registry_and_endpoint(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url, processor={"node_id": "node-a"})
    async with running_app(settings) as running:
        workers = (await running.client.get("/api/v1/workers")).json()
        assert [w["id"] for w in workers] == ["node-a"]
        assert workers[0]["devices"] == ["cpu"] and workers[0]["heartbeat_age_seconds"] < 5
        # A second live process asking for the same id gets a distinct one.
        async with running_app(settings) as second:
            assert second.container.processor is not None
            assert second.container.processor.worker_id.startswith("node-a-")
            ids = sorted(w["id"] for w in (await running.client.get("/api/v1/workers")).json())
            assert len(ids) == 2 and ids[0] == "node-a"
    async with running_app(settings, paused=True) as third:
        assert third.container.processor is not None and third.container.processor.worker_id == "node-a"
