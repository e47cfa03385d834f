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
from tests.conftest import isolated_settings
from tests.server_process import free_port


def settings_in(directory: Path, model_dir: Path, **overrides: Any) -> Settings:
    """The same isolated settings as ``make_settings``, for module-scoped fixtures."""
    return isolated_settings(directory, model_dir, **overrides)


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
