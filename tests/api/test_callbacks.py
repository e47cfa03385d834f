"""Webhooks end to end: a real receiver that fails at first, an app restart in between, signatures."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from config.settings import Settings
from tests.callback_receiver import Received, callback_receiver, verified_payload
from tests.conftest import Clip, running_app, upload, wait_done

pytestmark = pytest.mark.slow

SECRET = "receiver-shared-secret"


async def callback_of(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    callback: dict[str, Any] = response.json()["callback"]
    return callback


async def wait_callback(
    client: httpx.AsyncClient, task_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        callback = await callback_of(client, task_id)
        if callback is not None and done(callback):
            return callback
        assert time.monotonic() < deadline, callback
        await asyncio.sleep(0.05)


async def test_callback_is_retried_across_a_restart_and_signed(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings(
        callbacks={
            "secret": SECRET,
            "max_attempts": 6,
            "backoff_base_seconds": 0.25,
            "backoff_max_seconds": 0.6,
            "poll_interval_seconds": 0.1,
        }
    )
    with callback_receiver(fail_first=3) as receiver:
        hook = f"{receiver.url}/hooks/tingxie?source=test"
        async with running_app(settings) as first:
            # Only the first 3 s of speech: the callback, not the model, is under test.
            created = await upload(
                first.client, clips["jfk.flac"].path, callback_url=hook, clip_timestamps="0,3"
            )
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            assert created.json()["callback"] is None
            task = await wait_done(first.client, task_id)
            assert task["status"] == "completed"
            # The first attempt is answered 500 and recorded; then this node stops.
            pending = await wait_callback(first.client, task_id, lambda c: c["attempts"] >= 1)
            assert pending["status"] == "pending" and pending["last_status_code"] == 500
            assert pending["next_attempt_at"] is not None and pending["event"] == "task.completed"
        before_restart = len(receiver.requests)
        assert 1 <= before_restart < 4, "the delivery must still be pending when the app stops"

        async with running_app(settings, paused=True) as second:
            client = second.client
            delivered = await wait_callback(client, task_id, lambda c: c["status"] != "pending")
            assert delivered["status"] == "delivered", delivered
            assert delivered["attempts"] == 4 and delivered["last_status_code"] == 200
            assert delivered["delivery_id"] == pending["delivery_id"]
            requests = list(receiver.requests)
            assert len(requests) == 4 and requests[-1].at > requests[before_restart - 1].at
            assert {r.path for r in requests} == {"/hooks/tingxie?source=test"}
            # The same idempotency key on every retry of the delivery.
            assert {r.headers["idempotency-key"] for r in requests} == {delivered["delivery_id"]}
            assert {r.headers["x-tingxie-delivery"] for r in requests} == {delivered["delivery_id"]}
            for received in requests:
                payload = verified_payload(received, SECRET)
                assert payload["event"] == "task.completed"
                assert payload["delivery_id"] == delivered["delivery_id"]
                assert payload["task"]["id"] == task_id and payload["task"]["status"] == "completed"
                assert "fellow americans" in payload["task"]["result"]["text"].lower()
            forged = Received(requests[-1].path, dict(requests[-1].headers), requests[-1].body + b" ", 0)
            try:
                verified_payload(forged, SECRET)
            except AssertionError:
                pass
            else:
                raise AssertionError("a modified body must not verify")

            history = (await client.get(f"/api/v1/tasks/{task_id}/callback")).json()
            (only,) = history["deliveries"]
            assert [a["status_code"] for a in only["history"]] == [500, 500, 500, 200]
            assert [a["number"] for a in only["history"]] == [1, 2, 3, 4]
            assert only["history"][0]["response_snippet"] == "receiver says no (1)"
            assert only["history"][-1]["response_snippet"] == "ok, thanks"
            stamps = [a["attempted_at"] for a in only["history"]]
            assert stamps == sorted(stamps)
            # Durable backoff: 0.25 s, then 0.5 s (each plus jitter below 0.25 s, at most 0.6 s).
            gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
            assert gaps[0] >= 0.2 and gaps[2] >= 0.45, gaps

            # A re-send is a new delivery with a new idempotency key.
            resent = await client.post(f"/api/v1/tasks/{task_id}/callback")
            assert resent.status_code == 202, resent.text
            new_id = resent.json()["delivery_id"]
            assert new_id != delivered["delivery_id"] and resent.json()["status"] == "pending"
            again = await wait_callback(
                client, task_id, lambda c: c["delivery_id"] == new_id and c["status"] != "pending"
            )
            assert again["status"] == "delivered" and again["attempts"] == 1
            last = (await receiver.wait_for(5))[-1]
            assert (
                last.headers["idempotency-key"] == new_id
                and verified_payload(last, SECRET)["delivery_id"] == new_id
            )
            history = (await client.get(f"/api/v1/tasks/{task_id}/callback")).json()
            assert [d["delivery_id"] for d in history["deliveries"]] == [delivered["delivery_id"], new_id]

            # Where a re-send makes no sense: unknown task, no callback_url, task not ended.
            missing = await client.post("/api/v1/tasks/0123456789abcdef0123456789abcdef/callback")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            queued = (await upload(client, clips["jfk.flac"].path, callback_url=hook)).json()
            no_hook = (await upload(client, clips["jfk.flac"].path)).json()
            for task, reason in ((queued, "queued"), (no_hook, "no callback_url")):
                conflict = await client.post(f"/api/v1/tasks/{task['id']}/callback")
                assert conflict.status_code == 409 and reason in conflict.json()["detail"], conflict.text
            assert (await client.get(f"/api/v1/tasks/{queued['id']}/callback")).json()["deliveries"] == []
            # Deleting a task deletes its deliveries.
            assert (await client.delete(f"/api/v1/tasks/{task_id}")).status_code == 204
            assert (await client.get(f"/api/v1/tasks/{task_id}/callback")).status_code == 404
            assert await second.container.repositories.callbacks.latest_for([task_id]) == {}
