"""``tingxie serve`` and ``tingxie worker``: run the service (``python start.py`` does the same).

``serve --role all`` (the default) serves the API and runs a processor; ``--role api`` only serves
the API. ``worker`` only runs a processor with its model pool (no HTTP). Any number of API and
worker processes, on any number of nodes, can share one MySQL/PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from app.schemas.worker import NodeRole
from config.settings import Settings


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="serve the HTTP API (and a processor)", description="Serve the HTTP API."
    )
    add_server_arguments(serve, roles=("all", "api"))
    serve.set_defaults(run=_serve)
    worker = commands.add_parser(
        "worker", help="run a processor only (no HTTP)", description="Run a processor with its model pool."
    )
    worker.set_defaults(run=_worker)


def add_server_arguments(parser: argparse.ArgumentParser, *, roles: tuple[str, ...]) -> None:
    """``--host``, ``--port`` (default: the settings) and ``--role``."""
    parser.add_argument("--host", default=None, help="bind address (default: SERVER__HOST)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: SERVER__PORT)")
    parser.add_argument(
        "--role",
        choices=roles,
        default="all",
        help="all: API + processor (default); api: API only; worker: processor only",
    )


def serve(settings: Settings, *, host: str | None, port: int | None, role: NodeRole) -> None:
    """Serve ``create_app(settings)`` until SIGTERM/SIGINT (see :mod:`app.server` for the shutdown)."""
    from app.main import create_app
    from app.server import serve as serve_app

    serve_app(
        create_app(settings, role=role),
        settings,
        host=host or settings.server.host,
        port=port or settings.server.port,
    )


async def run_worker(settings: Settings) -> None:
    """A processor without HTTP; SIGTERM/SIGINT let running tasks finish (within the shutdown
    timeout) or hand them back, then exit; a second signal hands them back at once."""
    from app.container import Container
    from app.logging_setup import configure_logging

    configure_logging(settings.logging)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    container: Container | None = None

    def on_signal() -> None:
        if stop.is_set() and container is not None:
            container.begin_shutdown(forced=True)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    container = await Container.start(settings, role="worker")
    try:
        await stop.wait()
    finally:
        await container.stop()


def _serve(args: argparse.Namespace, settings: Settings | None) -> int:
    serve(settings or Settings(), host=args.host, port=args.port, role=args.role)
    return 0


def _worker(args: argparse.Namespace, settings: Settings | None) -> int:
    asyncio.run(run_worker(settings or Settings()))
    return 0
