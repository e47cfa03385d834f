"""Backpressure: past the queue, disk or memory limits new work gets 503 + Retry-After; nothing accepted is lost."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from app.services.admission import available_memory_bytes
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done
from tests.ops_support import app_for

SHORT_CLIPS = ("pocketsphinx_cards_001.wav", "LJ002-0020.wav", "goforward.wav")


def _assert_503(response: httpx.Response, limit: str, retry_after: int) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    assert body["status"] == 503 and body["limit"] == limit, body


async def test_full_queue_refuses_new_tasks_and_loses_none(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings(limits={"max_queue_depth": 3, "retry_after_seconds": 7})
    async with running_app(settings, paused=True) as running:
        client = running.client
        accepted = []
        for name in SHORT_CLIPS:
            response = await upload(client, clips[name].path, beam_size=1, temperature=0)
            assert response.status_code == 201, response.text
            accepted.append(response.json()["id"])

        refused = await upload(client, clips["jfk.flac"].path)
        _assert_503(refused, "queue_depth", 7)
        assert "3 task(s) queued, limit 3" in refused.json()["detail"]
        # A URL task is refused before anything is downloaded (an unreachable URL would be 422).
        by_url = await client.post("/api/v1/tasks", data={"file_url": "http://127.0.0.1:9/a.wav"})
        _assert_503(by_url, "queue_depth", 7)
        # Nothing of the refused requests is kept: three tasks, three media files.
        assert (await client.get("/api/v1/tasks")).json()["total"] == 3
        assert len(list(settings.storage.temp_dir.iterdir())) == 3

        processor = running.services.processor
        assert processor is not None
        processor.resume()
        for task_id in accepted:
            task = await wait_done(client, task_id)
            assert task["status"] == "completed", task["error"]
            assert task["result"]["text"].strip()

        # Room again: the next task is accepted.
        processor.pause()
        assert (await upload(client, clips["jfk.flac"].path)).status_code == 201


@pytest.mark.parametrize(
    ("limits", "limit"),
    [({"min_free_disk_mb": 1e12}, "free_disk"), ({"min_free_memory_mb": 1e12}, "free_memory")],
)
async def test_low_disk_or_memory_refuses_new_tasks(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], limits: dict[str, float], limit: str
) -> None:
    settings = make_settings(limits=limits)
    app = app_for(settings, role="api")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tingxie.test") as client:
            response = await upload(client, clips["jfk.flac"].path)
            _assert_503(response, limit, 30)
            assert "MiB" in response.json()["detail"]
            assert list(settings.storage.temp_dir.iterdir()) == []
            assert (await client.get("/api/v1/tasks")).json()["total"] == 0


def test_available_memory_is_read() -> None:
    available = available_memory_bytes()
    assert available is not None and available > 16 * 1024 * 1024
