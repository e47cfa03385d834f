"""Workflows on a shared database (SQLite, MariaDB, PostgreSQL): a cron slot fires once across nodes,
a run is advanced by one node at a time, and a node whose lease lapsed can no longer write it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from app.container import Container
from app.db.models import utcnow
from app.services.auth import ANONYMOUS, Principal
from app.workflows.definition import WorkflowDocument
from config.settings import Settings
from tests.factories import task_row

SCHEDULED: dict[str, object] = {
    "name": "every five minutes",
    "input": {"kinds": ["none"], "params": {"text": "a scheduled hello"}},
    "steps": [{"id": "stats", "uses": "word_stats", "with": {"text": "${input.params.text}"}}],
    "triggers": [{"type": "cron", "schedule": "*/5 * * * *"}],
}


async def test_cron_slot_fires_once_and_runs_are_claimed_by_one_node(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        database_url=database_url,
        processor={"enabled": False},
        # No loops: the test drives the scheduler and the claims itself.
        workflows={"enabled": False, "components": ["tests.workflows.components:word_stats"]},
    )
    nodes = [await Container.start(settings), await Container.start(settings)]
    try:
        a, b = (node.workflows for node in nodes)
        workflow = await a.create(WorkflowDocument.model_validate(SCHEDULED), ANONYMOUS)
        row = await a.repository.get(workflow.id)
        assert row is not None
        # A minute into a 5-minute slot at least 6 minutes after the change, so that "30 s later"
        # below is still the same slot whatever the time of day.
        soon = row.updated_at + timedelta(minutes=11)
        now = soon.replace(second=0, microsecond=0) - timedelta(minutes=soon.minute % 5 - 1)

        async def runs() -> list[str]:
            page = await a.search_runs(workflow.id, limit=50, offset=0, principal=ANONYMOUS)
            assert all(item.trigger == "cron" for item in page.items)
            return [item.id for item in page.items]

        # Both nodes (twice each) race for the same slot: exactly one run.
        fired = await asyncio.gather(*(s.scheduler.tick(now) for s in (a, b)), b.scheduler.tick(now))
        assert sum(fired) == 1, fired
        assert len(await runs()) == 1
        assert await a.scheduler.tick(now) == 0 and await b.scheduler.tick(now + timedelta(seconds=30)) == 0
        # The next slot fires once too.
        later = now + timedelta(minutes=5)
        assert sum(await asyncio.gather(b.scheduler.tick(later), a.scheduler.tick(later))) == 1
        (newest, first) = await runs()
        run = await a.repository.get_run(first)
        assert run is not None and run.input["params"] == {"text": "a scheduled hello"}
        assert run.input["slot"].startswith(
            (now - timedelta(minutes=now.minute % 5)).strftime("%Y-%m-%dT%H:%M")
        )

        # One node at a time: both claim at once, one of them gets each run.
        claims = await asyncio.gather(
            a.repository.claim_due("node-a", lease_seconds=0.5, limit=10),
            b.repository.claim_due("node-b", lease_seconds=0.5, limit=10),
        )
        assert sorted(claim.run_id for found in claims for claim in found) == sorted([first, newest])
        holder_a = next(claim for found in claims for claim in found if claim.run_id == first)
        # The holder "crashes" (never writes again); once its lease lapses another node takes over.
        await asyncio.sleep(0.6)
        taken = [claim for claim in await b.repository.claim_due("node-b", lease_seconds=30, limit=10)]
        takeover = next(claim for claim in taken if claim.run_id == first)
        assert takeover.token != holder_a.token
        assert not await a.repository.write(holder_a, run={"error": "stale"}), (
            "the stale holder is fenced out"
        )
        assert await b.repository.write(takeover, run={"error": None})
        assert await a.repository.claim_due("node-a", lease_seconds=30, limit=10) == []
    finally:
        for node in nodes:
            await node.stop()


PODCASTS: dict[str, object] = {
    "name": "podcast notes",
    "input": {"kinds": ["task"]},
    "steps": [{"id": "transcribe", "uses": "transcribe"}],
    "triggers": [{"type": "event", "on": "task.completed", "match": {"platform": "podcast"}}],
}


async def finish_elsewhere(container: Container, *, api_key_id: str | None, **fields: Any) -> str:
    """A task completed by a worker that died before its in-process event fired: the same database
    writes as the processor's (insert, claim, fenced finish), and no event on any live node."""
    task = task_row(api_key_id=api_key_id, **fields)
    await container.repositories.tasks.add(task)
    claim = await container.repositories.tasks.claim_next("dead-node")
    assert claim is not None and claim.task_id == task.id
    result = {"text": "hello", "language": "en", "duration": 1.0, "segments": []}
    assert await container.repositories.tasks.finish_owned(
        claim, status="completed", result=result, language="en", completed_at=utcnow()
    )
    return task.id


async def test_completed_task_whose_event_was_lost_fires_once_by_the_catch_up(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        database_url=database_url,
        processor={"enabled": False},
        workflows={"enabled": False, "event_catchup_seconds": 600},
    )
    nodes = [await Container.start(settings), await Container.start(settings)]
    try:
        a, b = (node.workflows for node in nodes)
        # Only the workflows of keys that exist and are not revoked fire.
        created = await nodes[0].auth.create("key a", is_admin=False)
        key_a = Principal(key_id=created.key.id, name="key a", is_admin=False)
        before = await finish_elsewhere(nodes[0], api_key_id=key_a.key_id, platform="podcast")
        workflow = await a.create(WorkflowDocument.model_validate(PODCASTS), key_a)

        async def fired_for() -> list[str]:
            page = await a.search_runs(workflow.id, limit=50, offset=0, principal=key_a)
            assert all(item.trigger == "task.completed" for item in page.items)
            return sorted(item.input["task_id"] for item in page.items)

        lost = await finish_elsewhere(nodes[1], api_key_id=key_a.key_id, platform="podcast")
        # None of these may fire: another key's task, no match, a workflow's own task.
        await finish_elsewhere(nodes[1], api_key_id="b" * 32, platform="podcast")
        await finish_elsewhere(nodes[1], api_key_id=key_a.key_id, platform="radio")
        await finish_elsewhere(
            nodes[1], api_key_id=key_a.key_id, platform="podcast", workflow_run_id="r" * 32
        )
        # Past the look-back window nothing is caught up.
        assert await a.catch_up_events(utcnow() + timedelta(seconds=601)) == 0
        # Both nodes (twice on one) sweep at once: one run, for the lost task only (`before`
        # completed before the workflow existed).
        started = await asyncio.gather(a.catch_up_events(), b.catch_up_events(), a.catch_up_events())
        assert sum(started) == 1, started
        assert await fired_for() == [lost] and before != lost
        assert await b.catch_up_events() == 0

        # The live event on the finishing node and a sweep on another node race: still one run.
        live = await finish_elsewhere(nodes[0], api_key_id=key_a.key_id, platform="podcast")
        nodes[0].events.finished(live)
        swept = await b.catch_up_events()
        await a.idle()
        assert await fired_for() == sorted([lost, live]), swept
        assert await a.catch_up_events() == 0 and await b.catch_up_events() == 0
    finally:
        for node in nodes:
            await node.stop()
