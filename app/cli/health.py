"""``tingxie health``: exit 0 when a server or this host's worker is healthy (container health checks).

tingxie health [--server URL]   the server answers GET /api/v1/health/ready with 200
tingxie health --worker         a worker of this node (``PROCESSOR__NODE_ID``) heartbeats in the database
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx

from app.cli.transcribe import DEFAULT_SERVER, ExitCode
from config.settings import Settings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "health",
        help="check a server or this node's worker (for health checks)",
        description="Exit 0 when healthy, 1 when not, 3 when the server cannot be reached.",
    )
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"server base URL (default: {DEFAULT_SERVER})"
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="check instead that this node's worker heartbeats in the configured database",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    if args.worker:
        return asyncio.run(_worker_alive(settings or Settings()))
    try:
        response = httpx.get(f"{args.server.rstrip('/')}/api/v1/health/ready", timeout=5)
    except httpx.TransportError as exc:
        print(f"tingxie: cannot reach {args.server}: {exc}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    if response.status_code != 200:
        print(f"tingxie: not ready: {response.status_code} {response.text}", file=sys.stderr)
        return ExitCode.TASK_FAILED
    return ExitCode.OK


async def _worker_alive(settings: Settings) -> int:
    from app.db.session import create_engine, create_session_factory
    from app.db.worker_registry import WorkerRegistry

    node = settings.processor.node_id
    engine = create_engine(settings.database_url)
    try:
        live = await WorkerRegistry(create_session_factory(engine)).live(settings.processor.lease_seconds)
    finally:
        await engine.dispose()
    # A worker whose node id was taken runs as ``<node id>-<pid>`` (WorkerRegistry.claim_identity).
    if any(worker.id == node or worker.id.startswith(f"{node}-") for worker in live):
        return ExitCode.OK
    print(f"tingxie: no live worker {node!r} in the database", file=sys.stderr)
    return ExitCode.TASK_FAILED
