"""A restart mid-run resumes from the last finished step: no step runs twice, no task is queued twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from config.settings import Settings
from tests.callback_receiver import callback_receiver, verified_payload
from tests.conftest import Clip, normalize_en, running_app
from tests.workflows.support import create_workflow, start_run, steps_of, tasks_of_run, wait_run, wait_step

pytestmark = pytest.mark.slow

SECRET = "resume-secret"


def pipeline(hook: str) -> dict[str, Any]:
    return {
        "name": "resume",
        "steps": [
            {"id": "transcribe", "uses": "transcribe", "with": {"model": "tiny.en"}},
            {"id": "subtitles", "uses": "subtitles", "with": {"transcript": "${steps.transcribe.result}"}},
            {
                "id": "notify",
                "uses": "webhook",
                "retry": {"max_attempts": 20, "backoff_seconds": 0.2, "max_backoff_seconds": 0.4},
                "with": {"url": hook, "body": {"srt": "${steps.subtitles.srt}"}},
            },
        ],
    }


async def wait_task_status(client: httpx.AsyncClient, task_id: str, timeout: float = 30) -> str:
    """The status of a task once it exists."""
    deadline = time.monotonic() + timeout
    while (response := await client.get(f"/api/v1/tasks/{task_id}")).status_code == 404:
        assert time.monotonic() < deadline, f"task {task_id} was never inserted"
        await asyncio.sleep(0.05)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_restarts_mid_run_resume_without_repeating_work(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings(callbacks={"secret": SECRET}, workflows={"poll_interval_seconds": 0.2})
    with callback_receiver(fail_first=10**6) as receiver:
        # 1. The transcribe step has queued its task when the app stops (the processor is paused).
        async with running_app(settings, paused=True) as first:
            workflow_id = await create_workflow(first.client, pipeline(f"{receiver.url}/hook"))
            run_id = (await start_run(first.client, workflow_id, clips["jfk.flac"].path))["id"]
            run = await wait_step(
                first.client,
                run_id,
                "transcribe",
                lambda step: step["status"] == "running" and step["task_id"] is not None,
            )
            task_id = steps_of(run)["transcribe"]["task_id"]
            # The step writes its task id before it inserts the task, so the task may appear a moment later.
            assert await wait_task_status(first.client, task_id) == "queued"

        # 2. After a restart the task runs once; the run goes on to the webhook, which keeps failing.
        async with running_app(settings) as second:
            run = await wait_step(second.client, run_id, "notify", lambda step: step["attempts"] >= 2)
            steps = steps_of(run)
            assert steps["transcribe"]["status"] == "completed" and steps["transcribe"]["task_id"] == task_id
            assert steps["subtitles"]["status"] == "completed"
            finished_before = {key: steps[key]["completed_at"] for key in ("transcribe", "subtitles")}
        assert len(receiver.requests) >= 2
        receiver.fail_first = 0  # the receiver recovers while the service is down

        # 3. After another restart only the webhook runs again, and is delivered.
        async with running_app(settings) as third:
            run = await wait_run(third.client, run_id)
            assert run["status"] == "completed", run
            steps = steps_of(run)
            for key in ("transcribe", "subtitles"):
                assert steps[key]["attempts"] == 1 and len(steps[key]["history"]) == 1, steps[key]
                assert steps[key]["completed_at"] == finished_before[key], "a finished step ran again"
            (task,) = await tasks_of_run(third.container, run_id)
            assert task.id == task_id and task.attempts == 1 and task.status == "completed"
            notify = steps["notify"]
            failed = len(notify["history"]) - 1
            assert failed >= 1 and notify["status"] == "completed" and notify["attempts"] == failed + 1
            assert [a["outcome"] for a in notify["history"]] == ["failed"] * failed + ["completed"]
            assert "HTTP 500" in notify["history"][0]["error"]

    # Every recorded attempt was one delivery. One more may have reached the receiver without
    # an outcome: the attempt the shutdown of the second app cut off, sent again, with the same
    # idempotency key, after the restart.
    requests = receiver.requests
    assert failed + 1 <= len(requests) <= failed + 2
    assert {r.headers["idempotency-key"] for r in requests} == {f"{run_id}:notify"}
    payload = verified_payload(requests[-1], SECRET)
    assert "fellow americans" in normalize_en(payload["data"]["srt"])
    assert {p.name for p in settings.storage.media_dir.iterdir()} == {task.media_path}, "run media is removed"
