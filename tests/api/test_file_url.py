"""Creating tasks from a ``file_url`` served by a real local HTTP server."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, wait_done
from tests.http_peer import serve_directory

pytestmark = pytest.mark.slow


async def test_file_url_is_downloaded_and_transcribed(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(clips["jfk.mp3"].path, site / "speech.mp3")
    (site / "notes.mp3").write_text("not audio at all\n" * 100)
    settings = make_settings(storage={"max_upload_mb": 0.15})
    shutil.copy(clips["jfk.wav"].path, site / "big.wav")  # ~350 KB > 0.15 MiB
    with serve_directory(site) as base:
        async with running_app(settings) as running:
            client = running.client
            response = await client.post(
                "/api/v1/tasks", data={"file_url": f"{base}/speech.mp3", "priority": "high"}
            )
            assert response.status_code == 201, response.text
            created = response.json()
            assert created["source"] == "url" and created["file_url"] == f"{base}/speech.mp3"
            assert created["file_size"] == clips["jfk.mp3"].path.stat().st_size
            task = await wait_done(client, created["id"])
            assert "ask not what your country can do for you" in normalize_en(task["result"]["text"])

            missing = await client.post("/api/v1/tasks", data={"file_url": f"{base}/missing.mp3"})
            assert missing.status_code == 422 and "404" in missing.json()["detail"]
            not_media = await client.post("/api/v1/tasks", data={"file_url": f"{base}/notes.mp3"})
            assert not_media.status_code == 415
            too_big = await client.post("/api/v1/tasks", data={"file_url": f"{base}/big.wav"})
            assert too_big.status_code == 413
            both = await client.post(
                "/api/v1/tasks",
                data={"file_url": f"{base}/speech.mp3"},
                files={"file": ("a.mp3", (site / "speech.mp3").read_bytes())},
            )
            assert both.status_code == 422

            stored = sorted(p.name for p in settings.storage.media_dir.iterdir())
            assert len(stored) == 1, f"failed downloads leaked files: {stored}"
