"""Load test: N concurrent clients against a running Tingxie server, mixing submits and reads.

    python bench/load.py --url http://127.0.0.1:8000 --clients 8 --seconds 60 --clip ../shared/audio/jfk.flac

Each client loops until the time is up (closed loop, no think time). Each iteration is a submit
(``POST /api/v1/tasks`` uploading the clip) with probability ``--submit-ratio``, otherwise a read
of a task submitted earlier in the run: ``GET /api/v1/tasks/{id}`` (status or result), or, for a
completed task, its subtitles (``GET /api/v1/tasks/{id}/subtitles``). Every ``--list-every``-th
request of a client lists recent tasks (``GET /api/v1/tasks?limit=20``).

It reports p50 / p99 / max latency and the error count per request kind, plus how many of the
submitted tasks the server completed during the run. Any non-2xx answer or transport error counts
as an error; the exit status is 1 when there is at least one.
"""

# ruff: noqa: E402  (the import path is fixed up before the other imports)
from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's ``queue``; keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "audio" / "jfk.flac"


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    completed: set[str] = field(default_factory=set)

    async def timed(self, kind: str, request: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response: httpx.Response = await request
        except httpx.HTTPError as exc:
            self._error(kind, f"{type(exc).__name__}: {exc}")
            return None
        self.latencies[kind].append(time.perf_counter() - started)
        if not response.is_success:
            self._error(kind, f"{response.status_code}: {response.text[:200]}")
            return None
        return response

    def _error(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{kind}: {message}")


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


async def client_loop(
    client: httpx.AsyncClient,
    recorder: Recorder,
    clip: bytes,
    clip_name: str,
    deadline: float,
    submit_ratio: float,
    list_every: int,
    rng: random.Random,
) -> None:
    count = 0
    while time.monotonic() < deadline:
        count += 1
        if list_every and count % list_every == 0:
            await recorder.timed("list", client.get("/api/v1/tasks", params={"limit": 20}))
        elif not recorder.submitted or rng.random() < submit_ratio:
            response = await recorder.timed(
                "submit",
                client.post("/api/v1/tasks", files={"file": (clip_name, clip, "application/octet-stream")}),
            )
            if response is not None:
                recorder.submitted.append(response.json()["id"])
        else:
            task_id = rng.choice(recorder.submitted)
            if task_id in recorder.completed:
                await recorder.timed(
                    "subtitles", client.get(f"/api/v1/tasks/{task_id}/subtitles", params={"format": "srt"})
                )
                continue
            response = await recorder.timed("read", client.get(f"/api/v1/tasks/{task_id}"))
            if response is not None and response.json()["status"] == "completed":
                recorder.completed.add(task_id)


async def run(args: argparse.Namespace) -> int:
    clip = args.clip.read_bytes()
    recorder = Recorder()
    rng = random.Random(args.seed)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=args.url, timeout=args.timeout, limits=limits) as client:
        health = await client.get("/api/v1/health")
        health.raise_for_status()
        before = (await client.get("/api/v1/stats")).json()
        started = time.monotonic()
        deadline = started + args.seconds
        await asyncio.gather(
            *(
                client_loop(
                    client,
                    recorder,
                    clip,
                    args.clip.name,
                    deadline,
                    args.submit_ratio,
                    args.list_every,
                    random.Random(rng.random()),
                )
                for _ in range(args.clients)
            )
        )
        elapsed = time.monotonic() - started
        after = (await client.get("/api/v1/stats")).json()

    kinds = sorted(set(recorder.latencies) | set(recorder.errors))
    total = sum(len(v) for v in recorder.latencies.values())
    report: dict[str, Any] = {
        "url": args.url,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "clip": args.clip.name,
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "errors": sum(recorder.errors.values()),
        "kinds": {
            kind: {
                "count": len(recorder.latencies[kind]),
                "p50_ms": round(1000 * percentile(recorder.latencies[kind], 50), 1)
                if recorder.latencies[kind]
                else None,
                "p99_ms": round(1000 * percentile(recorder.latencies[kind], 99), 1)
                if recorder.latencies[kind]
                else None,
                "max_ms": round(1000 * max(recorder.latencies[kind]), 1)
                if recorder.latencies[kind]
                else None,
                "errors": recorder.errors[kind],
            }
            for kind in kinds
        },
        "tasks_submitted": len(recorder.submitted),
        "tasks_completed_during_run": after["counts"]["completed"] - before["counts"]["completed"],
        "queued_at_end": after["counts"]["queued"],
        "error_samples": recorder.samples,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{args.clients} clients, {report['seconds']} s, {total} requests "
            f"({report['requests_per_second']}/s), errors: {report['errors']}"
        )
        print(f"{'kind':<10} {'count':>7} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'errors':>7}")
        for kind, row in report["kinds"].items():
            print(
                f"{kind:<10} {row['count']:>7} {row['p50_ms'] or '-':>9} {row['p99_ms'] or '-':>9} "
                f"{row['max_ms'] or '-':>9} {row['errors']:>7}"
            )
        print(
            f"tasks submitted: {report['tasks_submitted']}, completed during the run: "
            f"{report['tasks_completed_during_run']}, still queued: {report['queued_at_end']}"
        )
        for sample in recorder.samples:
            print(f"  error: {sample}")
    return 1 if report["errors"] else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the run")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="audio file the submits upload")
    parser.add_argument("--submit-ratio", type=float, default=0.1, help="share of iterations that submit")
    parser.add_argument(
        "--list-every", type=int, default=10, help="every N-th request lists tasks (0: never)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
