"""Backpressure: past the disk or memory limits new work gets 503 + Retry-After.

The queue-depth limit (nothing accepted is lost) is tested on the shared node of test_task_control.py.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from app.services.admission import available_memory_bytes
from config.settings import Settings
from tests.conftest import Clip, upload
from tests.ops_support import app_for


def assert_503(response: httpx.Response, limit: str, retry_after: int) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    assert body["status"] == 503 and body["limit"] == limit, body


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
            assert_503(response, limit, 30)
            assert "MiB" in response.json()["detail"]
            assert list(settings.storage.media_dir.iterdir()) == []
            assert (await client.get("/api/v1/tasks")).json()["total"] == 0


def test_available_memory_is_read() -> None:
    available = available_memory_bytes()
    assert available is not None and available > 16 * 1024 * 1024
