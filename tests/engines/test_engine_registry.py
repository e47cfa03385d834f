"""The engine seam: a module plus one registry entry is a working engine, through the API, the
pool, the queue, subtitles and script conversion."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from config.engines import ENGINES, EngineSpec
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done


async def test_one_module_and_one_registry_line_make_an_engine(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ENGINES, "echo", EngineSpec("tests.engines.echo_engine", own_model="echo"))
    settings = make_settings(whisper={"allowed_engines": ["faster_whisper", "echo"]})
    clip = clips["funasr_asr_example.wav"]
    async with running_app(settings) as running:
        client = running.client
        health = (await client.get("/api/v1/health")).json()
        assert health["engines"] == {"faster_whisper": "ok", "echo": "ok"}
        created = await upload(client, clip.path, model="echo", language="zh-TW", priority="high")
        assert created.status_code == 201, created.text
        task = await wait_done(client, created.json()["id"])
        subtitles = await client.get(f"/api/v1/tasks/{task['id']}/subtitles", params={"format": "txt"})
        refused = await upload(client, clip.path, engine="sensevoice")
    assert task["status"] == "completed" and task["engine"] == "echo" and task["model"] == "echo"
    assert task["result"]["text"] == "軟體頭髮" and task["chinese_script"] == "taiwan"
    assert subtitles.text.strip() == "軟體頭髮"
    assert refused.status_code == 422 and "not allowed" in refused.json()["detail"]
