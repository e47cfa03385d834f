"""SIGTERM hands running tasks back within the shutdown timeout; a restart finishes them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Clip
from tests.long_audio import concat_wav
from tests.server_process import free_port, server_env, start_server

pytestmark = pytest.mark.slow


def test_sigterm_releases_running_task_and_restart_resumes(
    tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    long_audio = tmp_path / "ninety-seconds.wav"
    concat_wav([clips["jfk.wav"].path] * 8, long_audio)  # two windows left when SIGTERM comes
    env = server_env(
        tmp_path,
        model_dir,
        WHISPER__DEFAULT_MODEL="tiny.en",
        PROCESSOR__SHUTDOWN_TIMEOUT_SECONDS="1",
        PROCESSOR__PROGRESS_INTERVAL_SECONDS="0",
    )
    port = free_port()
    log = tmp_path / "server.out"
    base = f"http://127.0.0.1:{port}"
    process = start_server(env, port, log)
    try:
        with long_audio.open("rb") as handle:
            task_id = httpx.post(f"{base}/api/v1/tasks", files={"file": handle}, timeout=30).json()["id"]
        for _ in range(300):
            task = httpx.get(f"{base}/api/v1/tasks/{task_id}").json()
            if task["status"] == "processing" and task["progress"] > 0:
                break
            time.sleep(0.05)
        assert task["status"] == "processing"
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert time.monotonic() - stopped_at < 15, "shutdown must respect its timeout"
    finally:
        if process.poll() is None:
            process.kill()
    assert "returning the task to the queue" in (tmp_path / "logs" / "tingxie.log").read_text()

    process = start_server(env, port, log)
    try:
        task = httpx.get(f"{base}/api/v1/tasks/{task_id}", params={"wait": 120}, timeout=130).json()
        assert task["status"] == "completed" and task["attempts"] == 2
        assert "country" in task["result"]["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
