"""``python start.py`` serves the API and runs the processor with the embedded defaults."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Clip, normalize_en
from tests.server_process import free_port, server_env

pytestmark = pytest.mark.slow


def test_start_py_serves_and_transcribes(tmp_path: Path, model_dir: Path, clips: dict[str, Clip]) -> None:
    port = free_port()
    env = server_env(tmp_path, model_dir)
    process = subprocess.Popen(
        [sys.executable, "start.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                health = httpx.get(f"{base}/api/v1/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.3)
        state = health.json()
        assert state["status"] == "ok"
        ready = httpx.get(f"{base}/api/v1/health/ready", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok", ready.text
        assert state["processor"]["running"] is True
        loaded = [(m["name"], m["loaded"]) for m in state["pool"]["models"] if m["loaded"]]
        assert loaded == [("base", 1)], "the default model is preloaded"

        with clips["jfk.flac"].path.open("rb") as handle:
            created = httpx.post(f"{base}/api/v1/tasks", files={"file": ("jfk.flac", handle)}, timeout=30)
        assert created.status_code == 201, created.text
        assert created.json()["model"] == "base"
        task = httpx.get(
            f"{base}/api/v1/tasks/{created.json()['id']}", params={"wait": 90}, timeout=100
        ).json()
        assert task["status"] == "completed", task
        assert "ask not what your country can do for you" in normalize_en(task["result"]["text"])
        assert (tmp_path / "tingxie.db").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit too.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
