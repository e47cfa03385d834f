"""The HTTP server: uvicorn, with a shutdown that open connections cannot hold up.

uvicorn alone waits, on SIGTERM, for every open connection to close before the app's shutdown
runs, so one client on a live-event stream kept the whole server (and its running tasks) up.
Here the first signal also tells the container (:meth:`Container.begin_shutdown`): claiming stops,
long polls answer and event streams end at once; whatever is still open after
``SERVER__GRACEFUL_SHUTDOWN_SECONDS`` is cut. A second signal hands running tasks back to the
queue at once, and even when uvicorn skips the app's shutdown (a forced exit), the container stops
so that running tasks are re-queued rather than left to their leases.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.container import Container
from config.settings import Settings

logger = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    """A ``uvicorn.Server`` that tells the app's container about shutdown signals as they come."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0

    def _container(self) -> Container | None:
        container: Container | None = getattr(self._app.state, "container", None)
        return container

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._signals += 1
        if self._loop is not None:
            # A signal handler runs between two bytecodes of the loop's thread: hand over safely.
            self._loop.call_soon_threadsafe(self._begin_shutdown, self._signals > 1)

    def _begin_shutdown(self, forced: bool) -> None:
        container = self._container()
        if container is not None:
            container.begin_shutdown(forced=forced)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        container = self._container()
        if self.force_exit and container is not None:
            # uvicorn skips the lifespan's shutdown on a forced exit: running tasks still go back.
            await container.stop()


def serve(app: FastAPI, settings: Settings, *, host: str, port: int) -> None:
    """Run ``app`` on ``host:port`` until SIGTERM or SIGINT."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=settings.server.graceful_shutdown_seconds,
    )
    GracefulServer(config, app).run()
