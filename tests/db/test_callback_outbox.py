"""The callback outbox on SQLite, MariaDB and PostgreSQL: enqueued with the task's ending, claimed
by one node at a time, fenced writes, and delivery up to the configured attempts."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.db.callback_repository import AttemptRecord, CallbackRepository
from app.db.migrate import upgrade_to_head
from app.db.models import CallbackAttempt, CallbackDelivery, utcnow
from app.db.session import create_engine, create_session_factory
from app.db.task_repository import Claim, TaskRepository
from app.net.url_guard import UrlGuard
from app.schemas.callback import CallbackState
from app.services.callbacks import CallbackDispatcher
from config.settings import CallbacksSettings
from tests.callback_receiver import callback_receiver
from tests.factories import claimed_task_row


async def test_outbox_claims_fencing_and_delivery(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    tasks, outbox = TaskRepository(sessions), CallbackRepository(sessions)
    try:
        with callback_receiver(fail_first=1000, fail_status=503) as receiver:
            # Endings queue a delivery in the same transaction; only tasks with a callback_url.
            ids = [
                (await tasks.add(claimed_task_row(callback_url=f"{receiver.url}/hook/{n}"))).id
                for n in range(5)
            ]
            quiet = (await tasks.add(claimed_task_row())).id
            for task_id in [*ids, quiet]:
                assert await tasks.finish_owned(Claim(task_id, 1), status="completed", completed_at=utcnow())
            assert not await tasks.finish_owned(Claim(ids[0], 2), status="failed"), "a stale claim wrote"
            # The reaper's failures queue deliveries too.
            expired = (
                await tasks.add(
                    claimed_task_row(callback_url=f"{receiver.url}/hook/r", attempts=3, lease_seconds=-1)
                )
            ).id
            assert await tasks.reap_expired(max_attempts=3) == (0, 1)
            blocked = (await tasks.add(claimed_task_row(callback_url="http://10.9.8.7/hook"))).id
            assert await tasks.finish_owned(Claim(blocked, 1), status="failed", error="boom")
            latest = await outbox.latest_for([*ids, quiet, expired, blocked])
            assert set(latest) == {*ids, expired, blocked}
            assert latest[expired].event == "task.failed" and latest[ids[0]].event == "task.completed"
            everything = {delivery.id for delivery in latest.values()}

            # Two nodes claim at once: every delivery goes to exactly one of them.
            first, second = await asyncio.gather(
                outbox.claim_due("node-a", lease_seconds=30, limit=4),
                outbox.claim_due("node-b", lease_seconds=30, limit=4),
            )
            a, b = {c.id for c in first}, {c.id for c in second}
            assert not a & b and a | b == everything, (a, b)
            assert await outbox.claim_due("node-c", lease_seconds=30, limit=10) == []

            # Fencing: a lapsed claim cannot record once another node took the delivery over.
            lapsed = first[0]
            await outbox.release(lapsed)
            (retaken,) = await outbox.claim_due("node-c", lease_seconds=30, limit=1)
            assert retaken.id == lapsed.id and retaken.token != lapsed.token
            attempt = AttemptRecord(500, "x", None, 1.0, utcnow())
            assert not await outbox.record_attempt(lapsed, attempt, outcome=CallbackState.delivered)
            for node in ("node-a", "node-b", "node-c"):
                await outbox.release_node(node)

            # Delivery: a receiver that always answers 503 gets max_attempts tries, then it fails;
            # a private callback address is refused at delivery time without any request.
            dispatcher = CallbackDispatcher(
                settings=CallbacksSettings(
                    max_attempts=2, backoff_base_seconds=0.01, backoff_max_seconds=0.02, snippet_chars=12
                ),
                repository=outbox,
                tasks=tasks,
                guard=UrlGuard(allowed_hosts=["127.0.0.1"]),
                node_id="node-d",
            )
            try:
                for _round in range(100):
                    latest = await outbox.latest_for([*ids, expired, blocked])
                    if all(d.status != "pending" for d in latest.values()):
                        break
                    if not await dispatcher.run_once():
                        await asyncio.sleep(0.02)
            finally:
                await dispatcher.stop()
            assert {d.status for d in latest.values()} == {"failed"}
            assert all(latest[t].attempts == 2 and latest[t].last_status_code == 503 for t in [*ids, expired])
            assert latest[blocked].attempts == 1 and "private address" in str(latest[blocked].last_error)
            assert len(receiver.requests) == 12
            assert {r.headers["idempotency-key"] for r in receiver.requests} == {
                latest[t].id for t in [*ids, expired]
            }
            assert "x-tingxie-signature" not in receiver.requests[0].headers  # no secret configured
            history = await outbox.history(ids[0])
            ((delivery, attempts),) = history
            assert [(a.number, a.status_code, a.response_snippet) for a in attempts] == [
                (1, 503, "receiver say"),
                (2, 503, "receiver say"),
            ]
            assert attempts[0].attempted_at <= attempts[1].attempted_at

            await outbox.delete_for_task(ids[0])
            async with sessions() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(CallbackAttempt)
                    .where(CallbackAttempt.delivery_id == delivery.id)
                )
                assert left == 0
                assert await session.get(CallbackDelivery, delivery.id) is None
    finally:
        await engine.dispose()
