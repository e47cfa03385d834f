"""Task control (cancel, retry) and live Server-Sent Events, on a real uvicorn server and real audio."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.container import Container
from config.settings import Settings
from tests.api.test_backpressure import assert_503
from tests.conftest import Clip, upload, wait_done
from tests.ops_support import app_for, serve, settings_in

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Node:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    @property
    def container(self) -> Container:
        container: Container = self.app.state.container
        return container

    def resume(self) -> None:
        assert self.container.processor is not None
        self.container.processor.resume()

    def pause(self) -> None:
        assert self.container.processor is not None
        self.container.processor.pause()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AsyncIterator[Node]:
    """One real server, processor paused at start; every progress step is written; at most 3 queued.

    Each test leaves no task queued."""
    settings = settings_in(
        tmp_path_factory.mktemp("control"),
        model_dir,
        processor={"progress_interval_seconds": 0, "max_concurrent_tasks": 1},
        limits={"max_queue_depth": 3, "retry_after_seconds": 7},
        # The sequential path: one window per step, so a cancel lands while windows are left
        # (batching splits a long file into streams and decodes it in two or three steps).
        whisper={"batch_size": 1},
    )
    app = app_for(settings, paused=True)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield Node(app=app, client=client, settings=settings)


@dataclass
class Event:
    name: str
    data: dict[str, Any]


async def read_events(response: httpx.Response) -> AsyncIterator[Event | str]:
    """Parse an SSE stream: yields events, and comment lines as strings."""
    name, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield line
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data += line.removeprefix("data: ")
        elif line == "" and data:
            yield Event(name, json.loads(data))
            name, data = "message", ""


async def test_events_stream_a_jfk_task_until_it_completes(node: Node, clips: dict[str, Clip]) -> None:
    created = await upload(node.client, clips["jfk.flac"].path, beam_size=1, temperature=0)
    assert created.status_code == 201
    task_id = created.json()["id"]
    events: list[Event] = []
    async with node.client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(120):
            async for item in read_events(response):
                if isinstance(item, Event):
                    events.append(item)
                    if len(events) == 1:
                        node.resume()  # the queued state was seen; now let it run
        # The iteration ended: the server closed the stream after the final event.
    node.pause()

    names = [event.name for event in events]
    statuses = [event.data["status"] for event in events if event.name == "status"]
    assert statuses == ["queued", "processing", "completed"], names
    assert names[-1] == "end" and events[-1].data["status"] == "completed"
    assert events[-1].data["id"] == task_id and "result" not in events[-1].data
    progress = [event.data["progress"] for event in events if event.name == "progress"]
    assert len(progress) >= 1 and progress == sorted(progress) and progress[-1] == 100.0
    # Order: queued, processing, then progress, and completed only after the last progress.
    assert names.index("progress") > names.index("status", 1)
    assert names[-2] == "status" and names[-3] == "progress"

    # Finished tasks cannot be cancelled or retried; an ended task's stream ends at once.
    for action in ("cancel", "retry"):
        conflict = await node.client.post(f"/api/v1/tasks/{task_id}/{action}")
        assert conflict.status_code == 409, conflict.text
        assert conflict.headers["content-type"].startswith("application/problem+json")
        assert conflict.json()["task_status"] == "completed"
    again = await node.client.get(f"/api/v1/tasks/{task_id}/events")
    assert [line for line in again.text.splitlines() if line.startswith("event:")] == [
        "event: status",
        "event: end",
    ]


async def test_full_queue_refuses_new_tasks_and_loses_none(node: Node, clips: dict[str, Clip]) -> None:
    client = node.client
    accepted = []
    for name in ("pocketsphinx_cards_001.wav", "LJ002-0020.wav", "goforward.wav"):
        response = await upload(client, clips[name].path, beam_size=1, temperature=0)
        assert response.status_code == 201, response.text
        accepted.append(response.json()["id"])

    refused = await upload(client, clips["jfk.flac"].path)
    assert_503(refused, "queue_depth", 7)
    assert "3 task(s) queued, limit 3" in refused.json()["detail"]
    # A URL task is refused before anything is downloaded (an unreachable URL would be 422).
    by_url = await client.post("/api/v1/tasks", data={"file_url": "http://127.0.0.1:9/a.wav"})
    assert_503(by_url, "queue_depth", 7)
    # Nothing of the refused requests is kept: three queued tasks, no extra media file.
    assert (await client.get("/api/v1/tasks", params={"status": "queued"})).json()["total"] == 3
    stored = {path.name for path in node.settings.storage.media_dir.iterdir()}
    rows = [await node.container.repositories.tasks.get(task_id) for task_id in accepted]
    assert {row.media_path for row in rows if row is not None} <= stored
    assert len(stored) == len(await node.container.repositories.tasks.media_paths())

    node.resume()
    try:
        for task_id in accepted:
            task = await wait_done(client, task_id)
            assert task["status"] == "completed", task["error"]
            assert task["result"]["text"].strip()
    finally:
        node.pause()
    # Room again: the next task is accepted.
    extra = await upload(client, clips["jfk.flac"].path)
    assert extra.status_code == 201
    assert (await client.post(f"/api/v1/tasks/{extra.json()['id']}/cancel")).status_code == 200


async def test_cancel_and_retry_a_queued_task(node: Node, clips: dict[str, Clip]) -> None:
    client = node.client
    task_id = (await upload(client, clips["goforward.wav"].path)).json()["id"]
    retry_queued = await client.post(f"/api/v1/tasks/{task_id}/retry")
    assert retry_queued.status_code == 409 and retry_queued.json()["task_status"] == "queued"

    # A watcher sees keep-alives while nothing happens, then the cancellation ends its stream.
    async with client.stream("GET", f"/api/v1/tasks/{task_id}/events", params={"keepalive": 1}) as response:
        seen: list[Event | str] = []
        async with asyncio.timeout(30):
            async for item in read_events(response):
                seen.append(item)
                if item == ": keep-alive":
                    cancelled = await client.post(f"/api/v1/tasks/{task_id}/cancel")
                    assert cancelled.status_code == 200, cancelled.text
                    assert cancelled.json()["status"] == "cancelled"
                    assert cancelled.json()["completed_at"] is not None
    events = [item for item in seen if isinstance(item, Event)]
    assert [(e.name, e.data["status"]) for e in events] == [
        ("status", "queued"),
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]
    assert (await client.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 409
    listed = (await client.get("/api/v1/tasks", params={"status": "cancelled"})).json()["items"]
    assert task_id in {item["id"] for item in listed}

    retried = await client.post(f"/api/v1/tasks/{task_id}/retry")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["status"] == "queued" and body["error"] is None and body["completed_at"] is None

    assert (await client.post("/api/v1/tasks/nope/cancel")).status_code == 404
    assert (await client.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 200


async def test_retry_runs_a_failed_task_again(node: Node, clips: dict[str, Clip]) -> None:
    client = node.client
    task_id = (await upload(client, clips["goforward.wav"].path, beam_size=1, temperature=0)).json()["id"]
    row = await node.container.repositories.tasks.get(task_id)
    assert row is not None and row.media_path is not None
    media = node.container.storage.path_of(row.media_path)
    aside = media.with_name("aside")
    media.rename(aside)  # the run fails: its media is gone
    node.resume()
    try:
        failed = (await client.get(f"/api/v1/tasks/{task_id}", params={"wait": 60})).json()
        assert failed["status"] == "failed" and "no longer available" in failed["error"]
        node.pause()

        gone = await client.post(f"/api/v1/tasks/{task_id}/retry")
        assert gone.status_code == 409 and gone.json()["reason"] == "media_gone", gone.text

        aside.rename(media)
        retried = await client.post(f"/api/v1/tasks/{task_id}/retry")
        assert retried.status_code == 200, retried.text
        body = retried.json()
        assert body["status"] == "queued" and body["error"] is None and body["completed_at"] is None
        assert body["attempts"] == 1  # the fencing token keeps counting
        node.resume()
        done = (await client.get(f"/api/v1/tasks/{task_id}", params={"wait": 60})).json()
        assert done["status"] == "completed", done["error"]
        assert "go forward" in done["result"]["text"].lower() and done["attempts"] == 2
    finally:
        node.pause()


def _long_audio(source: Path, target: Path, repeat: int) -> Path:
    with wave.open(str(source), "rb") as reader:
        params = reader.getparams()
        frames = reader.readframes(reader.getnframes())
    with wave.open(str(target), "wb") as writer:
        writer.setparams(params)
        for _ in range(repeat):
            writer.writeframes(frames)
    return target


async def test_cancel_from_another_node_stops_the_running_worker(
    node: Node, clips: dict[str, Clip], tmp_path: Path
) -> None:
    # 88 s: three 30 s windows. The cancel lands in the first or second; the rest is never decoded.
    audio = _long_audio(clips["jfk.wav"].path, tmp_path / "long.wav", repeat=8)
    # Greedy decoding keeps the model work short.
    task_id = (await upload(node.client, audio, beam_size=1, temperature=0)).json()["id"]
    processor = node.container.processor
    assert processor is not None
    # An API-only node sharing the database: the worker can learn of the cancel only from the DB.
    api_node = app_for(node.settings, role="api")
    async with api_node.router.lifespan_context(api_node):
        transport = httpx.ASGITransport(app=api_node)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as other:
            node.resume()
            try:
                async with asyncio.timeout(60):
                    while True:
                        task = (await other.get(f"/api/v1/tasks/{task_id}")).json()
                        if task["status"] == "processing" and task["progress"] > 0:
                            break
                        await asyncio.sleep(0.02)
                assert processor.running_task_ids == [task_id]
                cancelled = await other.post(f"/api/v1/tasks/{task_id}/cancel")
                assert cancelled.status_code == 200, cancelled.text
                async with asyncio.timeout(30):
                    while processor.running_task_ids:  # noqa: ASYNC110  (polling another component)
                        await asyncio.sleep(0.05)
            finally:
                node.pause()
    final = (await node.client.get(f"/api/v1/tasks/{task_id}")).json()
    assert final["status"] == "cancelled" and final["result"] is None and final["progress"] < 66
    assert final["media_available"]  # kept for a retry
    log = (node.settings.logging.dir / "tingxie.log").read_text()
    mine = [line for line in log.splitlines() if f"task={task_id}" in line]
    assert any("stopped: the task was deleted or cancelled while running" in line for line in mine), mine
    assert not any("result dropped" in line or "completed in" in line for line in mine), mine


async def test_wait_done_helper_sees_cancelled_as_finished(node: Node, clips: dict[str, Clip]) -> None:
    task_id = (await upload(node.client, clips["goforward.wav"].path)).json()["id"]
    assert (await node.client.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 200
    started = time.monotonic()
    response = await node.client.get(f"/api/v1/tasks/{task_id}", params={"wait": 30})
    assert response.json()["status"] == "cancelled" and time.monotonic() - started < 5
