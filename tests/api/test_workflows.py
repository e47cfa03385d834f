"""Workflows end to end on real clips: transcribe → translate (only when not English) → subtitles →
a signed webhook to a local receiver; step statuses, attempts and timings; cancel."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import srt

from tests.callback_receiver import Receiver, callback_receiver, verified_payload
from tests.conftest import Clip, RunningApp, normalize_en, running_app
from tests.live_server import module_settings
from tests.workflows.support import create_workflow, get_run, start_run, steps_of, wait_run, wait_step

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "workflow-webhook-secret"


def subtitle_pipeline(hook: str) -> dict[str, Any]:
    return {
        "name": "subtitles in English to a webhook",
        "input": {"params": {"model": "base"}},
        "steps": [
            {"id": "transcribe", "uses": "transcribe", "with": {"model": "${input.params.model}"}},
            {
                "id": "translate",
                "uses": "translate",
                "if": "steps.transcribe.language != 'en'",
                "with": {"model": "base", "language": "${steps.transcribe.language}"},
            },
            {
                "id": "subtitles",
                "uses": "subtitles",
                "with": {"transcript": "${steps.translate.result or steps.transcribe.result}"},
            },
            {
                "id": "notify",
                "uses": "webhook",
                "retry": {"max_attempts": 3, "backoff_seconds": 0.2},
                "with": {
                    "url": hook,
                    "body": {
                        "language": "${steps.transcribe.language}",
                        "translated": "${steps.translate.status == 'completed'}",
                        "srt": "${steps.subtitles.srt}",
                        "vtt": "${steps.subtitles.vtt}",
                        "file": "${input.file_name}",
                    },
                },
            },
        ],
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with callback_receiver() as found:
        yield found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AsyncIterator[RunningApp]:
    settings = module_settings(
        tmp_path_factory.mktemp("workflows"),
        model_dir,
        callbacks={"secret": SECRET},
        workflows={"poll_interval_seconds": 0.2},
    )
    async with running_app(settings) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def workflow_id(api: RunningApp, receiver: Receiver) -> str:
    return await create_workflow(api.client, subtitle_pipeline(f"{receiver.url}/hooks/subtitles"))


def delivery_for(receiver: Receiver, run_id: str) -> list[dict[str, Any]]:
    found = []
    for received in receiver.requests:
        payload = verified_payload(received, SECRET)
        if payload["run_id"] == run_id:
            assert received.headers["idempotency-key"] == f"{run_id}:notify"
            assert received.headers["x-tingxie-event"] == "workflow.step"
            assert received.path == "/hooks/subtitles"
            found.append(payload)
    return found


def check_timings(step: dict[str, Any]) -> None:
    started, completed = (
        datetime.fromisoformat(step["started_at"]),
        datetime.fromisoformat(step["completed_at"]),
    )
    assert started <= completed and step["seconds"] >= 0
    (attempt,) = step["history"]
    assert attempt["number"] == 1 and attempt["outcome"] == "completed" and attempt["seconds"] >= 0
    assert attempt["started_at"] <= attempt["finished_at"]


async def test_english_clip_skips_translation(
    api: RunningApp, workflow_id: str, receiver: Receiver, clips: dict[str, Clip]
) -> None:
    created = await start_run(api.client, workflow_id, clips["jfk.flac"].path, params={"model": "tiny.en"})
    assert created["status"] == "pending" and created["input"]["kind"] == "upload"
    assert created["input"]["file_name"] == "jfk.flac" and created["input"]["params"] == {"model": "tiny.en"}
    assert [step["status"] for step in created["steps"]] == ["pending"] * 4
    run = await wait_run(api.client, created["id"])
    assert run["status"] == "completed", run
    steps = steps_of(run)
    assert {key: step["status"] for key, step in steps.items()} == {
        "transcribe": "completed",
        "translate": "skipped",
        "subtitles": "completed",
        "notify": "completed",
    }
    for key in ("transcribe", "subtitles", "notify"):
        assert steps[key]["attempts"] == 1
        check_timings(steps[key])
    assert steps["translate"]["attempts"] == 0 and steps["translate"]["history"] == []
    transcribe = steps["transcribe"]
    assert transcribe["output"]["language"] == "en" and transcribe["task_id"]
    assert "ask not what your country can do for you" in normalize_en(transcribe["output"]["text"])
    # The step's task went through the ordinary queue and belongs to the run.
    task = (await api.client.get(f"/api/v1/tasks/{transcribe['task_id']}")).json()
    assert task["status"] == "completed" and task["model"] == "tiny.en" and task["attempts"] == 1
    assert steps["notify"]["output"]["status_code"] == 200
    assert steps["notify"]["output"]["idempotency_key"] == f"{run['id']}:notify"

    (payload,) = delivery_for(receiver, run["id"])
    assert payload["workflow_id"] == workflow_id and payload["step_id"] == "notify"
    data = payload["data"]
    assert data["language"] == "en" and data["translated"] is False and data["file"] == "jfk.flac"
    assert data["srt"] == steps["subtitles"]["output"]["srt"]
    assert data["srt"].startswith("1\n00:00:00,000 --> ") and data["vtt"].startswith("WEBVTT")
    cues = list(srt.parse(data["srt"]))
    assert "ask not what your country can do for you" in normalize_en(" ".join(cue.content for cue in cues))
    # The run's media is removed when it ends; the task keeps its own copy.
    media = api.container.storage.root
    assert {p.name for p in media.iterdir()} == {task_media for task_media in _task_media(api)}


def _task_media(api: RunningApp) -> set[str]:
    return {p.name for p in api.container.storage.root.iterdir() if p.suffix == ".media"}


@pytest.mark.slow
async def test_german_clip_is_translated(
    api: RunningApp, workflow_id: str, receiver: Receiver, clips: dict[str, Clip]
) -> None:
    created = await start_run(api.client, workflow_id, clips["picovoice_test_de.wav"].path)
    run = await wait_run(api.client, created["id"])
    assert run["status"] == "completed", run
    steps = steps_of(run)
    assert [steps[key]["status"] for key in ("transcribe", "translate", "subtitles", "notify")] == [
        "completed"
    ] * 4
    assert steps["transcribe"]["output"]["language"] == "de"
    translate = steps["translate"]
    check_timings(translate)
    task = (await api.client.get(f"/api/v1/tasks/{translate['task_id']}")).json()
    assert (
        task["task_type"] == "translate" and task["model"] == "base" and task["options"]["language"] == "de"
    )
    (payload,) = delivery_for(receiver, run["id"])
    subtitles = payload["data"]["srt"]
    assert payload["data"]["translated"] is True and payload["data"]["language"] == "de"
    text = " ".join(cue.content for cue in srt.parse(subtitles))
    words = set(re.findall(r"[a-zA-Z']+", text.lower()))
    assert text.isascii() and {"the", "was"} & words, text
    assert not {"der", "wurde", "als"} & words, f"not translated: {text}"


async def test_cancel_stops_the_run_and_its_task(
    api: RunningApp, workflow_id: str, receiver: Receiver, clips: dict[str, Clip]
) -> None:
    processor = api.container.processor
    assert processor is not None
    processor.pause()
    try:
        created = await start_run(
            api.client, workflow_id, clips["jfk.flac"].path, params={"model": "tiny.en"}
        )
        run = await wait_step(
            api.client, created["id"], "transcribe", lambda step: step["task_id"] is not None
        )
        task_id = steps_of(run)["transcribe"]["task_id"]
        busy = await api.client.delete(f"/api/v1/workflows/{workflow_id}")
        assert busy.status_code == 409 and "active" in busy.json()["detail"]
        cancelled = await api.client.post(f"/api/v1/workflow-runs/{created['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["status"] == "cancelled"
        assert [step["status"] for step in body["steps"]] == ["cancelled", "pending", "pending", "pending"]
        task = (await api.client.get(f"/api/v1/tasks/{task_id}")).json()
        assert task["status"] == "cancelled"
        again = await api.client.post(f"/api/v1/workflow-runs/{created['id']}/cancel")
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    finally:
        processor.resume()
    # Nothing more happens to a cancelled run.
    await api.container.workflows.runner.run_once()  # type: ignore[union-attr]
    assert (await get_run(api.client, created["id"]))["status"] == "cancelled"
    assert delivery_for(receiver, created["id"]) == []
    listing = (await api.client.get(f"/api/v1/workflows/{workflow_id}/runs")).json()
    assert created["id"] in [item["id"] for item in listing["items"]]
    assert (await api.client.delete(f"/api/v1/workflow-runs/{created['id']}")).status_code == 204
    assert (await api.client.get(f"/api/v1/workflow-runs/{created['id']}")).status_code == 404


async def test_run_input_is_checked(api: RunningApp, workflow_id: str, clips: dict[str, Clip]) -> None:
    url = f"/api/v1/workflows/{workflow_id}/runs"
    for data, reason in (
        ({}, "not none"),
        ({"params": json.dumps({"colour": "red"})}, "unknown parameter"),
        ({"params": "{not json"}, "not JSON"),
        ({"task_id": "0123456789abcdef0123456789abcdef"}, "does not exist"),
        ({"file_url": "http://169.254.169.254/latest"}, "not allowed"),
        ({"file_url": "https://example.com/a.mp3", "link": "https://example.com/v"}, "at most one"),
    ):
        response = await api.client.post(url, data=data)
        assert response.status_code in (404, 422), (data, response.text)
        assert reason in response.json()["detail"], (data, response.text)
    missing = await api.client.post("/api/v1/workflows/0123456789abcdef0123456789abcdef/runs", data={})
    assert missing.status_code == 404
