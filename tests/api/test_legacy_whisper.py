"""Legacy /api/whisper routes: the {code, router, params, data} envelope over the same services."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import srt
import webvtt

from tests.conftest import Clip
from tests.http_peer import serve_directory
from tests.live_server import LiveServer, live_server, module_settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LiveServer]:
    with live_server(module_settings(tmp_path_factory.mktemp("legacy"), model_dir)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def _ok(response: httpx.Response, router: str) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code", "router", "params", "data"}
    assert body["code"] == 200 and body["router"] == router
    return body


@pytest.fixture(scope="module")
def task(http: httpx.Client, clips: dict[str, Clip]) -> dict[str, Any]:
    """One legacy-created task, finished, shared by the tests below."""
    with clips["goforward.wav"].path.open("rb") as audio:
        response = http.post(
            "/api/whisper/tasks/create",
            params={"language": "en", "platform": "legacy", "priority": "high", "beam_size": 2},
            files={"file_upload": ("goforward.wav", audio, "audio/wav")},
        )
    body = _ok(response, "/api/whisper/tasks/create")
    assert body["params"] == {"language": "en", "platform": "legacy", "priority": "high", "beam_size": 2}
    created = body["data"]
    assert created["status"] == "queued" and created["file_name"] == "goforward.wav"
    assert created["options"]["beam_size"] == 2 and created["priority"] == "high"
    done = http.get(f"/api/v1/tasks/{created['id']}", params={"wait": 60}, timeout=70).json()
    assert done["status"] == "completed", done
    return created


def test_result(http: httpx.Client, task: dict[str, Any]) -> None:
    body = _ok(
        http.get("/api/whisper/tasks/result", params={"task_id": task["id"]}), "/api/whisper/tasks/result"
    )
    assert body["params"] == {"task_id": task["id"]}
    assert body["data"]["status"] == "completed"
    assert "forward" in body["data"]["result"]["text"].lower()


def test_query(http: httpx.Client, task: dict[str, Any]) -> None:
    body = _ok(
        http.post("/api/whisper/tasks/query", json={"status": "completed", "platform": "legacy", "limit": 5}),
        "/api/whisper/tasks/query",
    )
    assert body["params"] == {"status": "completed", "platform": "legacy", "limit": 5}
    page = body["data"]
    assert page["total"] == 1 and [item["id"] for item in page["items"]] == [task["id"]]
    none = http.post("/api/whisper/tasks/query", json={"status": "failed"}).json()["data"]
    assert none["total"] == 0 and none["items"] == []


def test_generate_subtitles(http: httpx.Client, task: dict[str, Any]) -> None:
    srt_body = _ok(
        http.get("/api/whisper/generate_subtitles", params={"task_id": task["id"], "output_format": "srt"}),
        "/api/whisper/generate_subtitles",
    )
    cues = list(srt.parse(srt_body["data"]["subtitles"]))
    assert cues and "forward" in cues[0].content.lower()
    vtt_body = _ok(
        http.get("/api/whisper/generate_subtitles", params={"task_id": task["id"], "output_format": "vtt"}),
        "/api/whisper/generate_subtitles",
    )
    assert len(webvtt.from_buffer(io.StringIO(vtt_body["data"]["subtitles"])).captions) == len(cues)


def test_health_check(http: httpx.Client) -> None:
    data = _ok(http.get("/api/health/check"), "/api/health/check")["data"]
    assert data["status"] == "ok" and data["version"] and data["processor"]["running"]


def test_create_from_file_url_then_delete(
    http: httpx.Client, server: LiveServer, task: dict[str, Any], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    shutil.copy(clips["pocketsphinx_cards_001.wav"].path, tmp_path / "cards.wav")
    with serve_directory(tmp_path) as base:
        created = _ok(
            http.post("/api/whisper/tasks/create", params={"file_url": f"{base}/cards.wav"}),
            "/api/whisper/tasks/create",
        )["data"]
    assert created["source"] == "url" and created["file_size"] == (tmp_path / "cards.wav").stat().st_size
    body = _ok(
        http.delete("/api/whisper/tasks/delete", params={"task_id": created["id"]}),
        "/api/whisper/tasks/delete",
    )
    assert body["data"] == {"task_id": created["id"], "deleted": True}
    assert http.get(f"/api/v1/tasks/{created['id']}").status_code == 404
    stored = {p.name for p in server.settings.storage.media_dir.iterdir()}
    assert len(stored) == 1, f"only the shared task's media is kept: {stored}"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/api/whisper/tasks/result", {"params": {"task_id": "0" * 32}}, 404),
        ("DELETE", "/api/whisper/tasks/delete", {"params": {"task_id": "0" * 32}}, 404),
        (
            "GET",
            "/api/whisper/generate_subtitles",
            {"params": {"task_id": "0" * 32, "output_format": "docx"}},
            422,
        ),
        ("POST", "/api/whisper/tasks/create", {"params": {"language": "en"}}, 422),
        ("POST", "/api/whisper/tasks/create", {"files": {"file_upload": ("a.mp3", b"not audio " * 50)}}, 415),
        ("POST", "/api/whisper/tasks/query", {"json": {"status": "running"}}, 422),
        # Found by the fuzzer: an offset beyond SQLite's integers used to be a 500.
        ("POST", "/api/whisper/tasks/query", {"json": {"offset": 2**63}}, 422),
        ("POST", "/api/whisper/extract_audio", {"files": {"file": ("a.mp4", b"not media " * 50)}}, 415),
        (
            "POST",
            "/api/whisper/extract_audio",
            {"params": {"output_format": "mp3", "bit_depth": 24}, "files": {"file": ("a.wav", b"x" * 64)}},
            422,
        ),
    ],
)
def test_errors_keep_status_in_envelope(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["router"] == path
    assert body["data"]["status"] == status and body["data"]["detail"]


def test_extract_audio_returns_the_audio(
    http: httpx.Client, server: LiveServer, task: dict[str, Any], clips: dict[str, Clip]
) -> None:
    with clips["jfk.flac"].path.open("rb") as media:
        response = http.post(
            "/api/whisper/extract_audio",
            params={"output_format": "wav", "sample_rate": 8000, "channels": 1},
            files={"file": ("jfk.flac", media, "audio/flac")},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("audio/wav")
    with av.open(io.BytesIO(response.content)) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels) == (8000, 1)
        assert abs(float(container.duration or 0) / av.time_base - clips["jfk.flac"].duration) < 0.2
    stored = {p.name for p in server.settings.storage.media_dir.iterdir()}
    assert len(stored) == 1, f"extraction leaves no file behind: {stored}"
