"""Run the app in-process on a real TCP port (uvicorn in a thread), for clients that need HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.services.container import Services
from config.settings import Settings
from tests.server_process import free_port


def module_settings(tmp: Path, model_dir: Path, **overrides: dict[str, Any]) -> Settings:
    """The same isolated settings as ``make_settings``, for module-scoped fixtures."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp / 'tingxie.db'}",
        "storage": {"temp_dir": tmp / "media"},
        "whisper": {
            "default_model": "tiny.en",
            "model_dir": model_dir,
            "load_mode": "lazy",
            "min_size": 0,
            "cpu_threads": 2,
        },
        "processor": {"node_id": "test-node", "poll_interval_seconds": 0.2},
        "logging": {"dir": tmp / "logs"},
    }
    for key, value in overrides.items():
        values[key] = {**values[key], **value} if isinstance(values.get(key), dict) else value
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class LiveServer:
    app: FastAPI
    base_url: str
    settings: Settings
    loop: asyncio.AbstractEventLoop

    def call(self, function: Callable[[], object]) -> None:
        """Run ``function`` on the server's event loop (thread-safe) and wait for it."""
        done = threading.Event()

        def run() -> None:
            try:
                function()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(10), "the server's loop did not run the call"

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@contextmanager
def live_server(settings: Settings, *, paused: bool = False, timeout: float = 60) -> Iterator[LiveServer]:
    """Serve ``create_app(settings)`` on a free port until the block ends."""
    app = create_app(settings, start_processor_paused=paused)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive(), "the server failed to start"
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.05)
    try:
        yield LiveServer(app=app, base_url=f"http://127.0.0.1:{port}", settings=settings, loop=loop)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        loop.close()
