"""A service process SIGKILLed mid-run, restarted on the same database and storage: the run resumes
from its last finished step. The transcribe step keeps its one task (re-run by the reaper once the
dead node's lease lapsed), finished steps never run again, and each webhook is delivered once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.callback_receiver import Received, callback_receiver, verified_payload
from tests.conftest import Clip, normalize_en
from tests.long_audio import concat_wav
from tests.server_process import free_port, server_env, start_server
from tests.workflows.support import create_workflow, start_run, steps_of, wait_run, wait_step
from tests.workflows.test_resume import SECRET, pipeline

pytestmark = pytest.mark.slow

# Different English speech (16 kHz mono), about 45 s together: the kill lands mid-decode.
SPEECH = [
    "1089-134686-0001.wav",
    "jfk.wav",
    "stereo_diarization_left.wav",
    "1221-135766-0002.wav",
    "stereo_diarization_right.wav",
    "new-home-in-the-stars-16k.wav",
    "sense_and_sensibility_01_austen_64kb-0880.wav",
    "goforward.wav",
]


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def decoding(client: httpx.AsyncClient, task_id: str) -> None:
    """Return once the task is being decoded (its id is on the step just before it is inserted)."""
    deadline = time.monotonic() + 60
    while True:
        response = await client.get(f"/api/v1/tasks/{task_id}")
        if response.status_code != 404:
            task = response.json()
            if task["status"] == "processing" and task["progress"] > 0:
                return
            assert task["status"] in ("queued", "processing"), task
        assert time.monotonic() < deadline, "the task was not decoded"
        await asyncio.sleep(0.02)


def delivered_srt(request: Received, run_id: str) -> str:
    assert request.headers["idempotency-key"] == f"{run_id}:notify"
    payload = verified_payload(request, SECRET)
    assert payload["idempotency_key"] == f"{run_id}:notify" and payload["run_id"] == run_id
    srt: str = payload["data"]["srt"]
    return srt


async def test_sigkill_mid_run_resumes_and_runs_nothing_twice(
    tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    long_audio = tmp_path / "speech.wav"
    concat_wav([clips[name].path for name in SPEECH], long_audio, gap_seconds=0.3)
    env = server_env(
        tmp_path,
        model_dir,
        WHISPER__DEFAULT_MODEL="tiny.en",
        WHISPER__WARMUP="false",
        NETWORK__ALLOWED_HOSTS="127.0.0.1",
        CALLBACKS__SECRET=SECRET,
        PROCESSOR__LEASE_SECONDS="2",
        PROCESSOR__HEARTBEAT_INTERVAL_SECONDS="0.5",
        PROCESSOR__POLL_INTERVAL_SECONDS="0.2",
        PROCESSOR__PROGRESS_INTERVAL_SECONDS="0",
        WORKFLOWS__POLL_INTERVAL_SECONDS="0.2",
        WORKFLOWS__LEASE_SECONDS="2",
        WORKFLOWS__RECHECK_SECONDS="1",
    )
    port, late_port = free_port(), free_port()
    log = tmp_path / "server.out"
    document: dict[str, Any] = {**pipeline("${input.params.hook}"), "input": {"params": {"hook": ""}}}
    processes: list[subprocess.Popen[bytes]] = []

    def start(node: str) -> httpx.AsyncClient:
        processes.append(start_server({**env, "PROCESSOR__NODE_ID": node}, port, log))
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)

    try:
        with callback_receiver() as receiver:
            # 1. Killed while the transcribe step's task is being decoded.
            async with start("node-1") as client:
                workflow_id = await create_workflow(client, document)
                first = await start_run(client, workflow_id, long_audio, params={"hook": f"{receiver.url}/a"})
                run = await wait_step(
                    client, first["id"], "transcribe", lambda step: step["task_id"] is not None
                )
                task_id = steps_of(run)["transcribe"]["task_id"]
                await decoding(client, task_id)
                kill(processes[-1])

            # 2. Another node finishes the run; a second run's webhook target is down, and the node is
            #    killed after that run's transcript and subtitles finished, before any delivery.
            async with start("node-2") as client:
                second = await start_run(
                    client,
                    workflow_id,
                    clips["jfk.wav"].path,
                    params={"hook": f"http://127.0.0.1:{late_port}/b"},
                )
                run = await wait_run(client, first["id"], timeout=120)
                assert run["status"] == "completed", run
                steps = steps_of(run)
                assert steps["transcribe"]["task_id"] == task_id
                assert all(steps[key]["attempts"] == 1 for key in steps), steps
                assert len(steps["transcribe"]["history"]) == 1
                task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
                # Re-run by the reaper once node-1's lease lapsed: same task, second claim, node-2.
                assert task["attempts"] == 2 and task["worker_id"] == "node-2", task
                before = await wait_step(
                    client, second["id"], "notify", lambda step: step["attempts"] >= 2, timeout=120
                )
                kill(processes[-1])
            finished = {key: steps_of(before)[key] for key in ("transcribe", "subtitles")}
            assert all(step["status"] == "completed" for step in finished.values()), finished

            # 3. The receiver comes up and the service restarts: only the webhook runs again.
            with callback_receiver(port=late_port) as late:
                async with start("node-3") as client:
                    run = await wait_run(client, second["id"], timeout=120)
                    assert run["status"] == "completed", run
                    steps = steps_of(run)
                    for key, step in finished.items():
                        assert steps[key]["completed_at"] == step["completed_at"], "a finished step ran again"
                        assert steps[key]["attempts"] == 1 and steps[key]["task_id"] == step["task_id"]
                    notify = steps["notify"]
                    assert notify["history"][-1]["outcome"] == "completed"
                    assert all(a["outcome"] == "failed" for a in notify["history"][:-1])
                    # One task per run: no step queued a second one.
                    listed = (await client.get("/api/v1/tasks", params={"limit": 50})).json()
                    assert sorted(t["id"] for t in listed["items"]) == sorted(
                        [task_id, steps["transcribe"]["task_id"]]
                    )
                (late_request,) = late.requests
            (request,) = receiver.requests
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)

    srt = normalize_en(delivered_srt(request, first["id"]))
    # The whole concatenation was transcribed by the re-run: its first and last clips are there.
    assert "fellow americans" in srt and "go forward" in srt, srt
    assert "fellow americans" in normalize_en(delivered_srt(late_request, second["id"]))
