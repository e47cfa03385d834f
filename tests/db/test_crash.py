"""Crash safety on MariaDB: 1 API process, 2 worker processes, 200 tasks, one worker SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Clip
from tests.server_process import free_port

pytestmark = pytest.mark.slow

SHORT_CLIPS = [
    "pocketsphinx_cards_001.wav",
    "pocketsphinx_cards_002.wav",
    "pocketsphinx_cards_003.wav",
    "pocketsphinx_cards_004.wav",
    "LJ002-0020.wav",
    "LJ002-0035.wav",
]


def _spawn(role: str, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "start.py", "--role", role, *extra], cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def test_sigkilled_worker_loses_no_task_and_runs_none_twice(
    mysql_url: str, tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    port = free_port()
    base_env = {
        **os.environ,
        "DATABASE_URL": mysql_url,
        "STORAGE__MEDIA_DIR": str(tmp_path / "media"),
        "WHISPER__MODEL_DIR": str(model_dir),
        "WHISPER__DEFAULT_MODEL": "tiny.en",
        "WHISPER__CPU_THREADS": "1",
        # Short windows (a 1–2 s clip encoded in 10 s, not 30 s) keep the 200 transcriptions quick:
        # this test is about the queue, not the decoder.
        "WHISPER__SHORT_WINDOWS": "true",
        "PROCESSOR__LEASE_SECONDS": "3",
        "PROCESSOR__HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "PROCESSOR__POLL_INTERVAL_SECONDS": "0.2",
        "PROCESSOR__MAX_CONCURRENT_TASKS": "2",
        "PROCESSOR__MAX_ATTEMPTS": "3",
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.out" for name in ("api", "w1", "w2")}
    try:
        processes["api"] = _spawn(
            "api", {**base_env, "LOGGING__DIR": str(tmp_path / "api")}, logs["api"], "--port", str(port)
        )
        for name in ("w1", "w2"):
            env = {**base_env, "PROCESSOR__NODE_ID": name, "LOGGING__DIR": str(tmp_path / name)}
            processes[name] = _spawn("worker", env, logs[name])

        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for _ in range(300):
                try:
                    workers = (await client.get("/api/v1/workers")).json()
                    if len(workers) == 2:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            assert sorted(w["id"] for w in workers) == ["w1", "w2"], workers

            payloads = [(name, clips[name].path.read_bytes()) for name in SHORT_CLIPS]
            semaphore = asyncio.Semaphore(8)

            async def submit(index: int) -> str:
                name, data = payloads[index % len(payloads)]
                async with semaphore:
                    response = await client.post("/api/v1/tasks", files={"file": (name, data)})
                assert response.status_code == 201, response.text
                return str(response.json()["id"])

            ids = await asyncio.gather(*(submit(i) for i in range(200)))

            async def count(status: str) -> int:
                page = (await client.get("/api/v1/tasks", params={"status": status, "limit": 1})).json()
                return int(page["total"])

            deadline = time.monotonic() + 120
            while await count("completed") < 40:
                assert time.monotonic() < deadline, "workers made no progress"
                await asyncio.sleep(0.2)
            # Freeze w1 at a moment it is seen holding tasks, then kill it: a short clip takes a
            # fraction of a second, so w1 may hold none at the moment a kill would come.
            held = await _freeze_holding_tasks(client, processes["w1"], "w1")
            processes["w1"].send_signal(signal.SIGKILL)
            processes["w1"].wait(10)

            deadline = time.monotonic() + 300
            while await count("completed") < 200:
                assert await count("failed") == 0
                assert time.monotonic() < deadline, "tasks were lost after the crash"
                await asyncio.sleep(0.5)
            assert await count("processing") == 0 and await count("queued") == 0

            tasks = [(await client.get(f"/api/v1/tasks/{task_id}")).json() for task_id in ids]
            assert all(t["status"] == "completed" and t["result"] is not None for t in tasks)
            # The tasks w1 held when it died were re-queued by the reaper and finished by w2.
            retried = [t for t in tasks if t["attempts"] == 2]
            assert held <= {str(t["id"]) for t in retried}, (held, retried)
            assert all(t["worker_id"] == "w2" for t in retried)
            assert all(t["attempts"] <= 2 for t in tasks)
            live = sorted(w["id"] for w in (await client.get("/api/v1/workers")).json())
            assert live == ["w2"], "the killed worker must drop out of the live list"

        # Exactly one completion per task across both workers' logs.
        completions: Counter[str] = Counter()
        for name in ("w1", "w2"):
            text = (tmp_path / name / "tingxie.log").read_text(encoding="utf-8")
            completions.update(
                re.findall(r"\[task=([0-9a-f]{32})\] app\.processor\.task_processor: completed", text)
            )
        assert set(completions) <= set(ids)
        assert max(completions.values()) == 1, [k for k, v in completions.items() if v > 1]
        by_worker = Counter(t["worker_id"] for t in tasks)
        assert by_worker["w1"] > 0 and by_worker["w2"] > 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _freeze_holding_tasks(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes], worker_id: str
) -> set[str]:
    """Stop ``worker`` (SIGSTOP) at a moment it holds tasks; the ids of the tasks it holds."""
    deadline = time.monotonic() + 60
    while True:
        worker.send_signal(signal.SIGSTOP)
        page = (await client.get("/api/v1/tasks", params={"status": "processing", "limit": 100})).json()
        held = {str(task["id"]) for task in page["items"] if task["worker_id"] == worker_id}
        if held:
            return held
        worker.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, f"{worker_id} never held a task"
        await asyncio.sleep(0.05)
