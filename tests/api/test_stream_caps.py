"""Open event streams (SSE) and long polls are capped per API key: 429 problem+json with
Retry-After beyond ``LIMITS__MAX_STREAMS_PER_KEY``; other keys are not affected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from app.api.stream_slots import StreamSlots
from config.settings import Settings
from tests.api.test_media_limits import assert_problem
from tests.media_samples import silent_flac
from tests.ops_support import app_for, serve

ADMIN = {"Authorization": "Bearer admin-key-for-stream-caps"}


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (the server changes it on its own)
            await asyncio.sleep(0.02)


async def new_key(client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    created = await client.post("/api/v1/keys", json={"name": name}, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()["id"], {"Authorization": f"Bearer {created.json()['key']}"}


async def new_task(client: httpx.AsyncClient, media: Path, headers: dict[str, str]) -> str:
    with media.open("rb") as handle:
        created = await client.post("/api/v1/tasks", files={"file": handle}, headers=headers)
    assert created.status_code == 201, created.text
    task_id: str = created.json()["id"]
    return task_id


async def test_streams_and_long_polls_are_capped_per_key(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        auth={"enabled": True, "admin_key": ADMIN["Authorization"].removeprefix("Bearer ")},
        limits={"max_streams_per_key": 2},
    )
    media = silent_flac(tmp_path / "quiet.flac", 5)
    app = app_for(settings, role="api")  # no processor: tasks stay queued, streams stay open
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        slots: StreamSlots = app.state.stream_slots
        alice_id, alice = await new_key(client, "alice")
        _, bob = await new_key(client, "bob")
        task = await new_task(client, media, alice)
        async with client.stream("GET", f"/api/v1/tasks/{task}/events", headers=alice) as events:
            assert events.status_code == 200
            lines = events.aiter_lines()
            assert await anext(lines) == "retry: 3000"
            long_poll = asyncio.create_task(
                client.get(f"/api/v1/tasks/{task}", params={"wait": 600}, headers=alice)
            )
            await until(lambda: slots.open_count(f"key:{alice_id}") == 2)

            # Alice holds two: a third of either kind is refused at once.
            refused = await client.get(f"/api/v1/tasks/{task}", params={"wait": 600}, headers=alice)
            assert_problem(refused, 429, "streams_per_key")
            assert refused.headers["retry-after"] == "5"
            refused = await client.get(f"/api/v1/tasks/{task}/events", headers=alice)
            assert_problem(refused, 429, "streams_per_key")
            # A plain read is not a long poll; Bob's slots are his own.
            assert (await client.get(f"/api/v1/tasks/{task}", headers=alice)).status_code == 200
            bobs_task = await new_task(client, media, bob)
            bobs = await client.get(f"/api/v1/tasks/{bobs_task}", params={"wait": 0.1}, headers=bob)
            assert bobs.status_code == 200, bobs.text

            # Deleting the task ends the long poll and the stream; their slots come back.
            assert (await client.delete(f"/api/v1/tasks/{task}", headers=alice)).status_code == 204
            assert (await long_poll).status_code == 404
            async for _line in lines:
                pass
        await until(lambda: slots.open_count(f"key:{alice_id}") == 0)
        task = await new_task(client, media, alice)
        again = await client.get(f"/api/v1/tasks/{task}", params={"wait": 0.1}, headers=alice)
        assert again.status_code == 200, again.text
