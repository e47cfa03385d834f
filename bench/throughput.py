"""Throughput: Tingxie over HTTP against plain faster-whisper on the same workload.

For each model, in one run and with the same model, compute type, threads and beam size:

(a) raw: ``WhisperModel`` in this process, one warm-up clip, then a sequential loop of
    ``model.transcribe`` over every workload file (segments consumed);
(b) service: ``start.py`` as a subprocess, one untimed warm-up task, then every workload file
    submitted at once over HTTP; wall time from the first submit until the last result is back.

The two never run at the same time. The last line is ``ratio service/raw = X.XX`` (service
throughput over raw throughput; the minimum across models when several are run).

    /work/venv/bin/python bench/throughput.py [--model tiny.en] [--quick] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from faster_whisper import WhisperModel
from workload import (
    WARMUP_CLIP,
    WorkItem,
    add_common_arguments,
    build_workload,
    check_completed,
    clip_path,
    consume,
    english_wer,
    print_header,
    resolve_model,
    running_server,
    server_env,
)

DEFAULT_MODELS = ("tiny.en", "base")
WAIT_SECONDS = 600


@dataclass
class SideResult:
    """One side (raw or service) of one model."""

    wall: float
    texts: dict[str, str]
    """Transcript per workload file name."""


@dataclass
class ModelResult:
    model: str
    raw: SideResult
    service: SideResult
    service_audio: float
    """Sum of ``result.duration`` reported by the service."""
    service_processing: float
    """Sum of the tasks' ``processing_time``."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="model to benchmark (repeatable; default: tiny.en and base)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="PROCESSOR__MAX_CONCURRENT_TASKS of the service (default 2)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="only the clips and one 2-minute file (smoke test)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternating rounds per side, in ABBA order so drift cancels out (default 2)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if not args.model:
        args.model = list(DEFAULT_MODELS)
    return args


def run_raw(model: WhisperModel, items: Sequence[WorkItem], args: argparse.Namespace) -> SideResult:
    texts: dict[str, str] = {}
    start = time.perf_counter()
    for item in items:
        segments, _ = model.transcribe(str(item.path), beam_size=args.beam_size)
        texts[item.path.name] = consume(segments)
    wall = time.perf_counter() - start
    return SideResult(wall=wall, texts=texts)


async def _transcribe_over_http(
    client: httpx.AsyncClient, name: str, data: bytes, fields: dict[str, str]
) -> dict[str, Any]:
    created = await client.post(
        "/api/v1/tasks", files={"file": (name, data, "application/octet-stream")}, data=fields
    )
    if created.status_code != 201:
        raise RuntimeError(f"POST {name}: {created.status_code} {created.text}")
    task_id = created.json()["id"]
    while True:
        response = await client.get(f"/api/v1/tasks/{task_id}", params={"wait": WAIT_SECONDS})
        response.raise_for_status()
        task: dict[str, Any] = response.json()
        if task["status"] in ("completed", "failed"):
            check_completed(task, name)
            return task


async def _service_run(
    base_url: str, uploads: Sequence[tuple[str, bytes]], warmup: tuple[str, bytes], fields: dict[str, str]
) -> tuple[float, list[dict[str, Any]]]:
    limits = httpx.Limits(max_connections=len(uploads) + 4, max_keepalive_connections=len(uploads) + 4)
    timeout = httpx.Timeout(WAIT_SECONDS + 60, connect=30)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
        await _transcribe_over_http(client, *warmup, fields)
        start = time.perf_counter()
        tasks = await asyncio.gather(
            *(_transcribe_over_http(client, name, data, fields) for name, data in uploads)
        )
        wall = time.perf_counter() - start
    return wall, list(tasks)


def run_model(model: str, items: Sequence[WorkItem], args: argparse.Namespace, work_dir: Path) -> ModelResult:
    """Raw and service rounds for one model, alternating ABBA with the server kept up (idle) throughout."""
    location = resolve_model(model, args.model_dir)
    print(f"[{model}] raw: {location}", flush=True)
    raw_model = WhisperModel(location, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)
    consume(raw_model.transcribe(str(clip_path(WARMUP_CLIP)), beam_size=args.beam_size)[0])
    env = server_env(
        work_dir,
        model=model,
        model_dir=args.model_dir,
        compute_type=args.compute_type,
        threads=args.threads,
        concurrency=args.concurrency,
        extra=args.env,
    )
    uploads = [(item.path.name, item.path.read_bytes()) for item in items]
    warmup_path = clip_path(WARMUP_CLIP)
    warmup = (warmup_path.name, warmup_path.read_bytes())
    fields = {"model": model, "beam_size": str(args.beam_size)}
    raw_walls: list[float] = []
    service_walls: list[float] = []
    raw: SideResult | None = None
    tasks: list[dict[str, Any]] = []
    with running_server(env, work_dir, model) as base_url:
        for round_number in range(args.rounds):
            order = ("raw", "service") if round_number % 2 == 0 else ("service", "raw")
            for side in order:
                if side == "raw":
                    raw = run_raw(raw_model, items, args)
                    raw_walls.append(raw.wall)
                else:
                    wall, tasks = asyncio.run(_service_run(base_url, uploads, warmup, fields))
                    service_walls.append(wall)
                print(
                    f"[{model}] round {round_number + 1} {side}: {(raw_walls if side == 'raw' else service_walls)[-1]:.2f} s",
                    flush=True,
                )
    del raw_model
    gc.collect()
    assert raw is not None
    texts = {
        name: str(task["result"]["text"]).strip() for (name, _), task in zip(uploads, tasks, strict=True)
    }
    audio = sum(float(task["result"].get("duration") or 0.0) for task in tasks)
    processing = sum(float(task.get("processing_time") or 0.0) for task in tasks)
    return ModelResult(
        model,
        SideResult(wall=sum(raw_walls) / len(raw_walls), texts=raw.texts),
        SideResult(wall=sum(service_walls) / len(service_walls), texts=texts),
        audio,
        processing,
    )


def report(result: ModelResult, items: Sequence[WorkItem], long_files: int) -> float:
    audio = sum(item.duration for item in items)
    raw_speed = audio / result.raw.wall
    service_speed = audio / result.service.wall
    ratio = service_speed / raw_speed
    same = sum(result.raw.texts[name] == result.service.texts[name] for name in result.raw.texts)
    raw_wer = english_wer(result.raw.texts)
    service_wer = english_wer(result.service.texts)
    print(f"== {result.model} ==")
    print(
        f"workload: {len(items)} files ({len(items) - long_files} clips + {long_files} concatenated), "
        f"{audio:.1f} s audio (service reports {result.service_audio:.1f} s)"
    )
    print("(walls are means over the rounds; processing_time is from the last service round)")
    print(f"raw:     wall {result.raw.wall:8.2f} s   {raw_speed:7.2f} audio-s/wall-s   WER {raw_wer:.2%}")
    print(
        f"service: wall {result.service.wall:8.2f} s   {service_speed:7.2f} audio-s/wall-s   "
        f"WER {service_wer:.2%}   (sum of task processing_time {result.service_processing:.2f} s)"
    )
    print(f"identical transcripts raw vs service: {same}/{len(result.raw.texts)} files")
    print(f"ratio service/raw [{result.model}] = {ratio:.2f}")
    sys.stdout.flush()
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_header()
    extra = " ".join(f"{key}={value}" for key, value in args.env) or "none"
    print(
        f"settings: models={','.join(args.model)} compute_type={args.compute_type} threads={args.threads} "
        f"concurrency={args.concurrency} beam_size={args.beam_size} quick={args.quick} env={extra}"
    )
    long_files = 1 if args.quick else 3
    results: list[ModelResult] = []
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-") as tmp:
        tmp_dir = Path(tmp)
        items = build_workload(tmp_dir / "workload", long_files=long_files)
        print(f"workload: {len(items)} files, {sum(item.duration for item in items):.1f} s audio")
        sys.stdout.flush()
        for model in args.model:
            results.append(run_model(model, items, args, tmp_dir / f"server-{model}"))
    # Scored after all timing, so torch (pulled in by whisper's normalizer) is never loaded during it.
    ratios = [report(result, items, long_files) for result in results]
    print(f"ratio service/raw = {min(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
