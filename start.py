"""Start Tingxie.

    python start.py [--host 127.0.0.1] [--port 8000] [--role all|api|worker]

``all`` (default) serves the API and runs a processor; ``api`` only serves the API; ``worker``
only runs a processor with its model pool (no HTTP). Any number of API and worker processes,
on any number of nodes, can share one MySQL/PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from app.logging_setup import configure_logging
from app.main import create_app
from app.server import serve
from app.services.container import Services
from config.settings import Settings


async def run_worker(settings: Settings) -> None:
    """A processor without HTTP; SIGTERM/SIGINT let running tasks finish (within the shutdown
    timeout) or hand them back, then exit; a second signal hands them back at once."""
    configure_logging(settings.logging)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    services: Services | None = None

    def on_signal() -> None:
        if stop.is_set() and services is not None:
            services.begin_shutdown(forced=True)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    services = await Services.start(settings, role="worker")
    try:
        await stop.wait()
    finally:
        await services.stop()


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description="Tingxie (听写) speech-to-text service")
    parser.add_argument("--host", default=settings.server.host, help="bind address")
    parser.add_argument("--port", type=int, default=settings.server.port, help="TCP port")
    parser.add_argument(
        "--role",
        choices=("all", "api", "worker"),
        default="all",
        help="all: API + processor; api: API only; worker: processor only",
    )
    args = parser.parse_args()
    if args.role == "worker":
        asyncio.run(run_worker(settings))
        return
    serve(create_app(settings, role=args.role), settings, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
