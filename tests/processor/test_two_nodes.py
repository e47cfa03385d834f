"""Media from any node: a worker whose media directory differs fetches the file from the API node."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app
from tests.server_process import free_port, start_server

pytestmark = pytest.mark.slow

SECRET = "correct horse battery staple"


async def test_worker_on_another_node_fetches_media_over_http(
    make_settings: Callable[..., Settings], tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    port = free_port()
    node_a = f"http://127.0.0.1:{port}"
    database = tmp_path / "shared.db"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "STORAGE__MEDIA_DIR": str(tmp_path / "media-a"),
        "STORAGE__PEER_SECRET": SECRET,
        "SERVER__PUBLIC_URL": node_a,
        "LOGGING__DIR": str(tmp_path / "logs-a"),
        "WHISPER__MODEL_DIR": str(model_dir),
    }
    api = await asyncio.to_thread(start_server, env, port, tmp_path / "a.out", role="api")
    try:
        settings_b = make_settings(
            database_url=f"sqlite+aiosqlite:///{database}",
            storage={"media_dir": tmp_path / "media-b", "peer_secret": SECRET},
            processor={"node_id": "node-b"},
        )
        async with running_app(settings_b) as node_b, httpx.AsyncClient(base_url=node_a) as client_a:
            with clips["jfk.flac"].path.open("rb") as handle:
                created = await client_a.post(
                    "/api/v1/tasks", files={"file": ("jfk.flac", handle)}, data={"model": "tiny.en"}
                )
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            task = (await node_b.client.get(f"/api/v1/tasks/{task_id}", params={"wait": 120})).json()
            assert task["status"] == "completed", task["error"]
            assert task["worker_id"] == "node-b"
            assert "ask not what your country can do for you" in normalize_en(task["result"]["text"])

            media_a = list((tmp_path / "media-a").iterdir())
            assert len(media_a) == 1, "the API node keeps the original"
            assert list((tmp_path / "media-b").iterdir()) == [], "the worker's copy is removed"

            url = f"/internal/v1/media/{media_a[0].name}"
            assert (await client_a.get(url)).status_code == 401
            assert (await client_a.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
            ok = await client_a.get(url, headers={"Authorization": f"Bearer {SECRET}"})
            assert ok.status_code == 200 and ok.content == clips["jfk.flac"].path.read_bytes()
            missing = await client_a.get(
                "/internal/v1/media/../../etc/passwd", headers={"Authorization": f"Bearer {SECRET}"}
            )
            assert missing.status_code == 404
    finally:
        api.send_signal(signal.SIGTERM)
        await asyncio.to_thread(api.wait, 30)
