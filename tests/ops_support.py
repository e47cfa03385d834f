"""Helpers for the auth, backpressure and task-control tests: module-scoped apps and a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from config.settings import Settings
from tests.server_process import free_port


def settings_in(directory: Path, model_dir: Path, **overrides: dict[str, Any]) -> Settings:
    """The same isolated settings as ``make_settings``, for module-scoped fixtures."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{directory / 'tingxie.db'}",
        "storage": {"temp_dir": directory / "media"},
        "whisper": {
            "default_model": "tiny.en",
            "model_dir": model_dir,
            "load_mode": "lazy",
            "min_size": 0,
            "cpu_threads": 2,
        },
        "processor": {"node_id": "test-node", "poll_interval_seconds": 0.2},
        "logging": {"dir": directory / "logs"},
    }
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) with uvicorn on a free port in this event loop; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                assert not task.done(), "the server stopped while starting"
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def app_for(settings: Settings, *, paused: bool = False, role: str = "all") -> FastAPI:
    return create_app(settings, start_processor_paused=paused, role=role)
