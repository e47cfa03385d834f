"""Queue benchmark: claim throughput and duplicate claims with N worker processes on each backend.

    python bench/queue.py [--workers 4] [--tasks 2000] [--backend sqlite --backend mysql --backend postgresql]

Each worker process runs the service's own ``TaskRepository.claim_next`` followed by a fenced
``update_owned(status=completed)`` (a no-op job) until the queue is empty, and reports the ids it
claimed. Claims per second = claimed tasks / wall time from the start signal to the last worker
finishing; duplicates = claims - distinct task ids (must be 0).
"""

# ruff: noqa: E402  (the import path is fixed up before the other imports)
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's ``queue``; keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.migrate import upgrade_to_head
from app.db.models import Task, utcnow
from app.db.session import create_engine, create_session_factory
from app.db.task_repository import TaskRepository

SERVERS = {
    "mysql": "mysql+aiomysql://root@127.0.0.1:3306/test",
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
}


async def _create_database(backend: str, tmp: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'queue.db'}", None
    name = f"tingxie_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    await admin.dispose()
    return f"{SERVERS[backend].rpartition('/')[0]}/{name}", name


async def _drop_database(backend: str, name: str | None) -> None:
    if name is None:
        return
    admin = create_async_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    await admin.dispose()


async def _fill(url: str, count: int) -> None:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    start = utcnow()
    async with sessions() as session, session.begin():
        session.add_all(
            Task(
                status="queued",
                priority=index % 3,
                task_type="transcribe",
                engine="faster_whisper",
                model="tiny.en",
                options={},
                source="upload",
                progress=0.0,
                attempts=0,
                created_at=start + timedelta(microseconds=index),
            )
            for index in range(count)
        )
    await engine.dispose()


async def _work(url: str, worker: str) -> list[str]:
    engine = create_engine(url)
    repository = TaskRepository(create_session_factory(engine))
    claimed: list[str] = []
    try:
        while (claim := await repository.claim_next(worker, lease_seconds=60)) is not None:
            claimed.append(claim.task_id)
            await repository.update_owned(claim, status="completed", progress=100.0)
    finally:
        await engine.dispose()
    return claimed


def _worker_main(url: str, worker: str, go: mp.synchronize.Event, out: mp.Queue[list[str]]) -> None:
    go.wait()
    out.put(asyncio.run(_work(url, worker)))


def run_backend(backend: str, workers: int, tasks: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(prefix="tingxie-queue-") as tmp:
        url, name = asyncio.run(_create_database(backend, Path(tmp)))
        try:
            upgrade_to_head(url)
            asyncio.run(_fill(url, tasks))
            context = mp.get_context("spawn")
            go = context.Event()
            results: mp.Queue[list[str]] = context.Queue()
            processes = [
                context.Process(target=_worker_main, args=(url, f"bench-{n}", go, results))
                for n in range(workers)
            ]
            for process in processes:
                process.start()
            time.sleep(2.0)  # let every process import and connect
            start = time.perf_counter()
            go.set()
            claimed = [results.get(timeout=600) for _ in processes]
            wall = time.perf_counter() - start
            for process in processes:
                process.join(60)
        finally:
            asyncio.run(_drop_database(backend, name))
    every = [task_id for batch in claimed for task_id in batch]
    return wall, len(every), len(every) - len(set(every))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--backend", action="append", choices=("sqlite", "mysql", "postgresql"))
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "mysql", "postgresql"]
    print(f"command: {' '.join(sys.argv)}")
    print(f"workers={args.workers} tasks={args.tasks} (claim + fenced completion per task, no-op job)")
    worst = 0
    for backend in backends:
        wall, claimed, duplicates = run_backend(backend, args.workers, args.tasks)
        worst = max(worst, duplicates)
        print(
            f"{backend:10s} claimed {claimed:6d} in {wall:6.2f} s = {claimed / wall:7.1f} claims/s, "
            f"duplicates {duplicates}"
        )
    print(f"duplicates (worst backend) = {worst}")
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
