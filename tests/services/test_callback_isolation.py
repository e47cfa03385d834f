"""A slow or trickling callback receiver costs one delivery slot for one attempt's deadline: it
never holds up another task's callback (issue 13, point 5)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.db.callback_repository import CallbackRepository
from app.db.migrate import upgrade_to_head
from app.db.models import utcnow
from app.db.session import create_engine, create_session_factory
from app.db.task_repository import Claim, TaskRepository
from app.net.url_guard import UrlGuard
from app.services.callbacks import CallbackDispatcher
from config.settings import CallbacksSettings
from tests.callback_receiver import callback_receiver
from tests.factories import claimed_task_row
from tests.slow_peer import Body, slow_peer

pytestmark = pytest.mark.slow

ATTEMPT_SECONDS = 4.0


async def test_trickling_receiver_does_not_delay_another_tasks_callback(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'callbacks.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    tasks, outbox = TaskRepository(sessions), CallbackRepository(sessions)
    dispatcher = CallbackDispatcher(
        settings=CallbacksSettings(
            timeout_seconds=ATTEMPT_SECONDS,
            poll_interval_seconds=0.2,
            max_attempts=2,
            backoff_base_seconds=600,  # no second attempt inside the test
        ),
        repository=outbox,
        tasks=tasks,
        guard=UrlGuard(enabled=True, allowed_hosts=["127.0.0.1"]),
        node_id="node-a",
    )
    try:
        with slow_peer(Body.TRICKLE) as trickler, callback_receiver() as receiver:
            slow = (await tasks.add(claimed_task_row(callback_url=f"{trickler.url}/hook"))).id
            quick = (await tasks.add(claimed_task_row(callback_url=f"{receiver.url}/hook"))).id
            await dispatcher.start()
            # The slow task ends first; its receiver answers 200 and then one byte per 0.1 s.
            assert await tasks.finish_owned(Claim(slow, 1), status="completed", completed_at=utcnow())
            dispatcher.wake()
            await asyncio.to_thread(trickler.wait_for_request)
            # While that reply trickles in, another task ends: its callback goes out at once.
            assert await tasks.finish_owned(Claim(quick, 1), status="completed", completed_at=utcnow())
            finished_at = time.time()
            dispatcher.wake()
            (received,) = await receiver.wait_for(1, timeout=10)
            delay = received.at - finished_at
            assert delay < 2.0, f"the quick callback waited {delay:.1f} s behind the trickling one"
            assert received.path == "/hook"

            # The trickling attempt ends at its deadline, recorded as a failed attempt to retry.
            deadline = time.monotonic() + ATTEMPT_SECONDS + 10
            while True:
                latest = (await outbox.latest_for([slow]))[slow]
                if latest.attempts == 1:
                    break
                assert time.monotonic() < deadline, "the trickling attempt never ended"
                await asyncio.sleep(0.1)
            assert trickler.requests[0] + ATTEMPT_SECONDS - 0.5 < time.monotonic()
            assert latest.status == "pending" and latest.last_status_code is None
            assert latest.last_error is not None and "TimeoutError" in latest.last_error
            assert (await outbox.latest_for([quick]))[quick].status == "delivered"
    finally:
        await dispatcher.stop()
        await engine.dispose()
