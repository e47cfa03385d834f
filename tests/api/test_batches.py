"""Batches: several uploads in one request, followed as one; all-or-nothing validation."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import Clip, RunningApp, normalize_en


async def _post_batch(client: httpx.AsyncClient, paths: list[Path], **fields: str) -> httpx.Response:
    with ExitStack() as stack:
        files = [("files", (path.name, stack.enter_context(path.open("rb")))) for path in paths]
        return await client.post("/api/v1/tasks/batch", files=files, data=fields)


@pytest.mark.slow
async def test_batch_progress_and_results(api: RunningApp, clips: dict[str, Clip]) -> None:
    paths = [clips["new-home-in-the-stars-16k.wav"].path, clips["goforward.wav"].path]
    response = await _post_batch(api.client, paths, language="en", platform="batch-test")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["total"] == 2 and created["finished"] is False
    assert [task["file_name"] for task in created["tasks"]] == [
        "new-home-in-the-stars-16k.wav",
        "goforward.wav",
    ]
    assert created["counts"] == {"queued": 2, "processing": 0, "completed": 0, "failed": 0, "cancelled": 0}

    listing = (await api.client.get("/api/v1/tasks", params={"platform": "batch-test"})).json()
    assert listing["total"] == 2
    assert {item["options"]["language"] for item in listing["items"]} == {"en"}

    deadline = time.monotonic() + 120
    while True:
        batch = (await api.client.get(f"/api/v1/batches/{created['id']}")).json()
        assert 0.0 <= batch["progress"] <= 100.0
        if batch["finished"]:
            break
        assert time.monotonic() < deadline, batch
        await asyncio.sleep(0.3)
    assert batch["counts"] == {"queued": 0, "processing": 0, "completed": 2, "failed": 0, "cancelled": 0}
    assert batch["progress"] == 100.0
    stars, goforward = batch["tasks"]
    assert stars["id"] == created["tasks"][0]["id"] and stars["status"] == "completed"
    assert "new home in the stars" in normalize_en(stars["text"])
    assert "forward" in goforward["text"].lower()

    await api.client.delete(f"/api/v1/tasks/{stars['id']}")
    after = (await api.client.get(f"/api/v1/batches/{created['id']}")).json()
    assert after["total"] == 2 and [task["id"] for task in after["tasks"]] == [goforward["id"]]


async def test_batch_is_all_or_nothing(api: RunningApp, tmp_path: Path, clips: dict[str, Clip]) -> None:
    good = clips["goforward.wav"].path
    fake = tmp_path / "notes.mp3"
    fake.write_text("This is a text file pretending to be audio.\n" * 50)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")

    not_media = await _post_batch(api.client, [good, good, fake])
    assert not_media.status_code == 415, not_media.text
    assert not_media.headers["content-type"].startswith("application/problem+json")
    assert not_media.json()["file_index"] == 2 and "notes.mp3" in not_media.json()["detail"]
    assert (await _post_batch(api.client, [good, empty])).status_code == 400
    assert (await _post_batch(api.client, [good], model="large-v9")).status_code == 422
    assert (await _post_batch(api.client, [good], file_url="http://example.com/a.mp3")).status_code == 422
    assert (await api.client.post("/api/v1/tasks/batch", data={"language": "en"})).status_code == 422

    assert (await api.client.get("/api/v1/tasks")).json()["total"] == 0
    assert list(api.container.storage.root.iterdir()) == [], "rejected batches left media behind"
    missing = await api.client.get("/api/v1/batches/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404 and missing.json()["status"] == 404
