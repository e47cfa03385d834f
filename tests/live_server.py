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

from app.container import Container
from app.main import create_app
from config.settings import Settings
from tests.conftest import isolated_settings
from tests.server_process import free_port


def module_settings(tmp: Path, model_dir: Path, **overrides: Any) -> Settings:
    """The same isolated settings as ``make_settings``, for module-scoped fixtures."""
    return isolated_settings(tmp, model_dir, **overrides)


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
    def container(self) -> Container:
        container: Container = self.app.state.container
        return container


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
