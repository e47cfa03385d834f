"""Start Tingxie (the same as ``tingxie serve`` / ``tingxie worker``).

    python start.py [--host 127.0.0.1] [--port 8000] [--role all|api|worker]

``all`` (default) serves the API and runs a processor; ``api`` only serves the API; ``worker``
only runs a processor with its model pool (no HTTP). Any number of API and worker processes,
on any number of nodes, can share one MySQL/PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio

from app.cli.serve import add_server_arguments, run_worker, serve
from config.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description="Tingxie (听写) speech-to-text service")
    add_server_arguments(parser, roles=("all", "api", "worker"))
    args = parser.parse_args()
    settings = Settings()
    if args.role == "worker":
        asyncio.run(run_worker(settings))
    else:
        serve(settings, host=args.host, port=args.port, role=args.role)


if __name__ == "__main__":
    main()
