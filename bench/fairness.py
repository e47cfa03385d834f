"""Fairness: a short clip submitted while a long file is being decoded, against the clip alone.

For each service configuration (``--config``; by default the shipped batching defaults and the
same with one lane and no express lane), in one run and on the same model:

1. ``start.py`` as a subprocess with cross-task batching (``WHISPER__BATCH_SIZE=--batch-size``);
   one untimed warm-up task;
2. **solo**: ``jfk.flac`` (11 s) submitted alone, submit to result, best of ``--solo-rounds``;
3. **beside**: a dense ``--long-seconds`` file (shuffled English clips, as in the throughput
   workload) is submitted; once it is being decoded, ``jfk.flac`` is submitted ``--probes``
   times, ``--probe-gap`` seconds apart (each waits for the previous one), each timed from
   submit to result;
4. the long file's own wall time (submit to result).

The target (issue 8) is beside ≤ 2 × solo. The last lines are ``ratio beside/solo [config] = X.XX``
(the worst probe of each configuration).

    /work/venv/bin/python bench/fairness.py [--model tiny.en] [--long-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
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
from faster_whisper.audio import decode_audio
from workload import (
    SAMPLE_RATE,
    WARMUP_CLIP,
    _concatenate,
    _write_wav,
    add_common_arguments,
    check_completed,
    clip_path,
    english_clips,
    env_pair,
    print_header,
    running_server,
    server_env,
)

PROBE_CLIP = "jfk.flac"
DEFAULT_CONFIGS = {
    "defaults": [],
    "one-lane": [("WHISPER__BATCH_LANES", "1"), ("WHISPER__EXPRESS_SECONDS", "0")],
}


@dataclass
class ConfigResult:
    name: str
    solo: list[float]
    beside: list[float]
    long_wall: float


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny.en", help="model (default tiny.en)")
    parser.add_argument("--batch-size", type=int, default=8, help="WHISPER__BATCH_SIZE (default 8)")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="long file length (default 600)")
    parser.add_argument("--solo-rounds", type=int, default=3, help="solo measurements; the best counts")
    parser.add_argument("--probes", type=int, default=3, help="clips submitted beside the long file")
    parser.add_argument("--probe-gap", type=float, default=4.0, help="seconds between probes")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="a service configuration to compare (repeatable; default: the shipped defaults and one lane)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the servers' logs and databases here (default: a temporary directory)",
    )
    add_common_arguments(parser)
    return parser.parse_args(argv)


def configs(args: argparse.Namespace) -> dict[str, list[tuple[str, str]]]:
    if not args.config:
        return DEFAULT_CONFIGS
    chosen: dict[str, list[tuple[str, str]]] = {}
    for spec in args.config:
        name, _, pairs = spec.partition(":")
        chosen[name] = [env_pair(pair) for pair in pairs.split(",") if pair]
    return chosen


def build_long_file(path: Path, seconds: float) -> None:
    clips = english_clips()
    audio = {clip.file: decode_audio(str(clip.path), sampling_rate=SAMPLE_RATE) for clip in clips}
    samples, _used = _concatenate(audio, [clip.file for clip in clips], random.Random(7), seconds)
    _write_wav(path, samples)


async def _submit(client: httpx.AsyncClient, path: Path, fields: dict[str, str]) -> str:
    data = await asyncio.to_thread(path.read_bytes)
    created = await client.post(
        "/api/v1/tasks", files={"file": (path.name, data, "application/octet-stream")}, data=fields
    )
    if created.status_code != 201:
        raise RuntimeError(f"POST {path.name}: {created.status_code} {created.text}")
    return str(created.json()["id"])


async def _result(client: httpx.AsyncClient, task_id: str, name: str) -> dict[str, Any]:
    while True:
        response = await client.get(f"/api/v1/tasks/{task_id}", params={"wait": 30})
        response.raise_for_status()
        task: dict[str, Any] = response.json()
        if task["status"] in ("completed", "failed", "cancelled"):
            check_completed(task, name)
            return task


async def _latency(client: httpx.AsyncClient, path: Path, fields: dict[str, str]) -> float:
    started = time.perf_counter()
    await _result(client, await _submit(client, path, fields), path.name)
    return time.perf_counter() - started


async def measure(
    base_url: str, long_file: Path, args: argparse.Namespace
) -> tuple[list[float], list[float], float]:
    fields = {"model": args.model, "beam_size": str(args.beam_size), "temperature": "0"}
    probe = clip_path(PROBE_CLIP)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(120, connect=30)) as client:
        await _latency(client, clip_path(WARMUP_CLIP), fields)
        solo = [await _latency(client, probe, fields) for _ in range(args.solo_rounds)]
        long_started = time.perf_counter()
        long_id = await _submit(client, long_file, fields)
        while (await client.get(f"/api/v1/tasks/{long_id}")).json()["status"] != "processing":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # its audio decoded and its first batches running
        beside = []
        for _ in range(args.probes):
            beside.append(await _latency(client, probe, fields))
            if (await client.get(f"/api/v1/tasks/{long_id}")).json()["status"] != "processing":
                print("warning: the long file finished before every probe ran", flush=True)
                break
            await asyncio.sleep(args.probe_gap)
        await _result(client, long_id, long_file.name)
        long_wall = time.perf_counter() - long_started
    return solo, beside, long_wall


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_header()
    chosen = configs(args)
    described = ", ".join(
        f"{name}[{' '.join(f'{key}={value}' for key, value in extra) or 'as shipped'}]"
        for name, extra in chosen.items()
    )
    print(
        f"settings: model={args.model} compute_type={args.compute_type} threads={args.threads} "
        f"beam_size={args.beam_size} batch_size={args.batch_size} long_seconds={args.long_seconds} "
        f"configs={described}"
    )
    results: list[ConfigResult] = []
    with contextlib.ExitStack() as scope:
        if args.work_dir is not None:
            work = args.work_dir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="tingxie-fairness-")))
        long_file = work / "long.wav"
        build_long_file(long_file, args.long_seconds)
        for name, extra in chosen.items():
            env = server_env(
                work / name,
                model=args.model,
                model_dir=args.model_dir,
                compute_type=args.compute_type,
                threads=args.threads,
                concurrency=None,
                extra=[
                    ("WHISPER__BATCH_SIZE", str(args.batch_size)),
                    *args.env,
                    *extra,
                ],
            )
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(running_server(env, work / name, args.model))
                solo, beside, long_wall = asyncio.run(measure(url, long_file, args))
            results.append(ConfigResult(name, solo, beside, long_wall))
            print(
                f"[{name}] solo {', '.join(f'{s:.2f}' for s in solo)} s; beside "
                f"{', '.join(f'{b:.2f}' for b in beside)} s; long file {long_wall:.1f} s",
                flush=True,
            )
    print()
    print(
        "| configuration | solo (best) | beside the long file (each probe) | worst ratio | long file wall |"
    )
    print("|---|---|---|---|---|")
    for result in results:
        best = min(result.solo)
        print(
            f"| {result.name} | {best:.2f} s | {', '.join(f'{b:.2f}' for b in result.beside)} s | "
            f"{max(result.beside) / best:.2f} | {result.long_wall:.1f} s |"
        )
    for result in results:
        print(f"ratio beside/solo [{result.name}] = {max(result.beside) / min(result.solo):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
