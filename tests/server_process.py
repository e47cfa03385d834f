"""Real ``start.py`` processes for tests that need a server on a TCP port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(root: Path, model_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``start.py`` isolated in ``root`` (SQLite database, media, logs) that uses
    the test session's models; ``settings`` add or override variables (``GROUP__FIELD``)."""
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{root / 'tingxie.db'}",
        "STORAGE__MEDIA_DIR": str(root / "media"),
        "LOGGING__DIR": str(root / "logs"),
        "WHISPER__MODEL_DIR": str(model_dir),
        **settings,
    }


def start_server(
    env: dict[str, str],
    port: int,
    log: Path,
    *,
    role: str = "all",
    timeout: float = 60,
    command: Sequence[str] = ("start.py",),
) -> subprocess.Popen[bytes]:
    """Start ``start.py --role role --port port`` (or another ``command`` taking those options, e.g.
    ``-m app.cli serve``), output appended to ``log``; return once healthy."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, *command, "--role", role, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.2)
