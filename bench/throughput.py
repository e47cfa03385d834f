"""Throughput: Tingxie over HTTP against plain faster-whisper on the same workload.

For each model, in one run and with the same model, compute type, threads and beam size:

(a) raw: ``WhisperModel`` in this process, one warm-up clip, then a sequential loop of
    ``model.transcribe`` over every workload file (segments consumed);
(b) service: ``start.py`` as a subprocess, one untimed warm-up task, then every workload file
    submitted at once over HTTP; wall time from the first submit until the last result is back.
    ``--mode pool`` runs the service as configured (every setting at its default, which batches
    streams across tasks); ``--mode batched`` sets ``WHISPER__BATCH_SIZE=--batch-size``;
    ``--mode both`` keeps both servers up and times both. ``--workload dense`` times one
    10-minute file alone instead of the mixed workload.

No two sides ever run at the same time. The last line is ``ratio service/raw = X.XX`` (service
throughput over raw throughput; the minimum across models when several are run); with
``--mode both`` there is one such line per service mode (``ratio pool/raw``, ``ratio batched/raw``).

    /work/venv/bin/python bench/throughput.py [--model tiny.en] [--mode batched] [--quick] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# This directory holds ``queue.py`` (the queue benchmark), which would shadow the standard
# library's ``queue`` that urllib3 imports: keep the directory on the path, after the stdlib.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

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
    english_differences,
    english_wer,
    env_pair,
    long_file_references,
    long_file_wer,
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
class ServiceResult:
    side: SideResult
    audio: float
    """Sum of ``result.duration`` reported by the service."""
    processing: float
    """Sum of the tasks' ``processing_time`` (last round)."""


@dataclass
class ModelResult:
    model: str
    raw: SideResult
    services: dict[str, ServiceResult]
    """Per service mode (``pool``, ``batched``)."""


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
        "--mode",
        choices=("pool", "batched", "both"),
        default="pool",
        help="service configuration(s) to time against the raw loop (default pool)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="WHISPER__BATCH_SIZE of the batched service (default 8)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where both sides run (default cpu); with cuda pass e.g. --compute-type float16",
    )
    parser.add_argument(
        "--batched-env",
        type=env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the batched service only, after --env (repeatable)",
    )
    parser.add_argument(
        "--workload",
        choices=("mixed", "dense"),
        default="mixed",
        help="mixed: the clips and three 2-minute files (default); dense: one 10-minute file of "
        "clips 0.25-1.5 s apart with a 3-6 s pause after every eighth (tests/long_audio.py), alone",
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


def service_modes(args: argparse.Namespace) -> list[str]:
    return ["pool", "batched"] if args.mode == "both" else [args.mode]


def mode_env(mode: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--env`` for every service; the batched one also gets cross-task batching (and ``--batched-env``)."""
    device: list[tuple[str, str]] = []
    if args.device == "cuda":  # the server hides GPUs unless told otherwise
        device = [
            ("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "0")),
            ("WHISPER__DEVICES", "cuda"),
        ]
    if mode == "pool":
        return [*device, *args.env]
    batching = [("WHISPER__BATCH_SIZE", str(args.batch_size))]
    return [*device, *batching, *args.env, *args.batched_env]


def run_model(model: str, items: Sequence[WorkItem], args: argparse.Namespace, work_dir: Path) -> ModelResult:
    """Raw and service rounds for one model, alternating (raw, services…, then reversed) with the
    servers kept up (idle) throughout."""
    location = resolve_model(model, args.model_dir)
    print(f"[{model}] raw: {location}", flush=True)
    raw_model = WhisperModel(
        location, device=args.device, compute_type=args.compute_type, cpu_threads=args.threads
    )
    consume(raw_model.transcribe(str(clip_path(WARMUP_CLIP)), beam_size=args.beam_size)[0])
    modes = service_modes(args)
    uploads = [(item.path.name, item.path.read_bytes()) for item in items]
    warmup_path = clip_path(WARMUP_CLIP)
    warmup = (warmup_path.name, warmup_path.read_bytes())
    fields = {"model": model, "beam_size": str(args.beam_size)}
    walls: dict[str, list[float]] = {side: [] for side in ("raw", *modes)}
    raw: SideResult | None = None
    tasks: dict[str, list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        urls = {}
        for mode in modes:
            env = server_env(
                work_dir / mode,
                model=model,
                model_dir=args.model_dir,
                compute_type=args.compute_type,
                threads=args.threads,
                concurrency=args.concurrency,
                extra=mode_env(mode, args),
            )
            urls[mode] = stack.enter_context(running_server(env, work_dir / mode, model))
        for round_number in range(args.rounds):
            order = ["raw", *modes]
            for side in order if round_number % 2 == 0 else reversed(order):
                if side == "raw":
                    raw = run_raw(raw_model, items, args)
                    walls["raw"].append(raw.wall)
                else:
                    wall, tasks[side] = asyncio.run(_service_run(urls[side], uploads, warmup, fields))
                    walls[side].append(wall)
                print(f"[{model}] round {round_number + 1} {side}: {walls[side][-1]:.2f} s", flush=True)
    del raw_model
    gc.collect()
    assert raw is not None
    services: dict[str, ServiceResult] = {}
    for mode in modes:
        texts = {
            name: str(task["result"]["text"]).strip()
            for (name, _), task in zip(uploads, tasks[mode], strict=True)
        }
        services[mode] = ServiceResult(
            SideResult(wall=sum(walls[mode]) / len(walls[mode]), texts=texts),
            audio=sum(float(task["result"].get("duration") or 0.0) for task in tasks[mode]),
            processing=sum(float(task.get("processing_time") or 0.0) for task in tasks[mode]),
        )
    return ModelResult(
        model, SideResult(wall=sum(walls["raw"]) / len(walls["raw"]), texts=raw.texts), services
    )


def _clip_wer(texts: dict[str, str]) -> float:
    """WER on the plain English clips of the workload (NaN when it has none: ``--workload dense``)."""
    try:
        return english_wer(texts)
    except ValueError:
        return float("nan")


def dense_workload(out_dir: Path) -> list[WorkItem]:
    """One 10-minute file built from the shared English clips, its reference written beside it."""
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.long_audio import build_long_audio

    out_dir.mkdir(parents=True, exist_ok=True)
    audio = build_long_audio(600.0, 2026)
    path = audio.write_wav(out_dir / "dense-10min.wav")
    path.with_suffix(".txt").write_text(audio.reference, encoding="utf-8")
    return [WorkItem(path, audio.duration)]


def report(
    result: ModelResult, items: Sequence[WorkItem], long_files: int, references: dict[str, str]
) -> dict[str, float]:
    """Prints one model's figures; returns the ratio service/raw per service mode."""
    audio = sum(item.duration for item in items)
    raw_speed = audio / result.raw.wall
    raw_wer = _clip_wer(result.raw.texts)
    print(f"== {result.model} ==")
    print(
        f"workload: {len(items)} files ({len(items) - long_files} clips + {long_files} concatenated), "
        f"{audio:.1f} s audio"
    )
    print("(walls are means over the rounds; processing_time is from the last service round)")
    print(f"raw:     wall {result.raw.wall:8.2f} s   {raw_speed:7.2f} audio-s/wall-s   WER {raw_wer:.2%}")
    raw_long = long_file_wer(references, result.raw.texts)
    if raw_long is not None:
        print(f"raw:     WER on the {long_files} long files {raw_long:.2%}")
    ratios: dict[str, float] = {}
    for mode, service in result.services.items():
        speed = audio / service.side.wall
        ratios[mode] = speed / raw_speed
        same = sum(result.raw.texts[name] == service.side.texts[name] for name in result.raw.texts)
        print(
            f"{mode + ':':8} wall {service.side.wall:8.2f} s   {speed:7.2f} audio-s/wall-s   "
            f"WER {_clip_wer(service.side.texts):.2%}   (service reports {service.audio:.1f} s audio; "
            f"sum of task processing_time {service.processing:.2f} s)"
        )
        long = long_file_wer(references, service.side.texts)
        if long is not None:
            print(f"{mode + ':':8} WER on the {long_files} long files {long:.2%}")
        print(f"identical transcripts raw vs {mode}: {same}/{len(result.raw.texts)} files")
        for name, reference, raw_text, service_text in english_differences(
            result.raw.texts, service.side.texts
        ):
            print(
                f"  {name}: reference {reference!r}\n    raw     {raw_text!r}\n    {mode:7} {service_text!r}"
            )
    for mode, ratio in ratios.items():
        label = "service" if len(ratios) == 1 else mode
        print(f"ratio {label}/raw [{result.model}] = {ratio:.2f}")
    sys.stdout.flush()
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_header()
    extra = " ".join(f"{key}={value}" for key, value in args.env) or "none"
    batched = " ".join(f"{key}={value}" for key, value in args.batched_env) or "none"
    print(
        f"settings: models={','.join(args.model)} compute_type={args.compute_type} threads={args.threads} "
        f"concurrency={args.concurrency} beam_size={args.beam_size} quick={args.quick} env={extra} "
        f"mode={args.mode} batch_size={args.batch_size} batched_env={batched} device={args.device}"
    )
    long_files = 1 if args.quick or args.workload == "dense" else 3
    results: list[ModelResult] = []
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-") as tmp:
        tmp_dir = Path(tmp)
        if args.workload == "dense":
            items = dense_workload(tmp_dir / "workload")
        else:
            items = build_workload(tmp_dir / "workload", long_files=long_files)
        references = long_file_references(items)
        print(f"workload: {len(items)} files, {sum(item.duration for item in items):.1f} s audio")
        sys.stdout.flush()
        for model in args.model:
            results.append(run_model(model, items, args, tmp_dir / f"server-{model}"))
    # Scored after all timing, so torch (pulled in by whisper's normalizer) is never loaded during it.
    ratios = [report(result, items, long_files, references) for result in results]
    modes = service_modes(args)
    for mode in modes:
        label = "service" if len(modes) == 1 else mode
        print(f"ratio {label}/raw = {min(ratio[mode] for ratio in ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
