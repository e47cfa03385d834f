"""Latency: end-to-end time of one short request against the bare inference time.

Starts ``start.py``, warms it up, then N times in a row: POST ``jfk.flac`` and GET the task with
``?wait=60`` (wall time of both). After the server is stopped, the same model is loaded in this
process with the same settings and ``transcribe`` of the same file is timed N times. The last
line is ``median overhead = NN ms`` (median end-to-end minus median inference).

    /work/venv/bin/python bench/latency.py [--model tiny.en] [--reps 20] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
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
    add_common_arguments,
    check_completed,
    clip_path,
    consume,
    median,
    p90,
    print_header,
    resolve_model,
    running_server,
    server_env,
)

WAIT_SECONDS = 60


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny.en", help="model to measure (default tiny.en)")
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions on each side (default 20)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def _request(client: httpx.Client, name: str, data: bytes, fields: dict[str, str]) -> dict[str, Any]:
    created = client.post(
        "/api/v1/tasks", files={"file": (name, data, "application/octet-stream")}, data=fields
    )
    if created.status_code != 201:
        raise RuntimeError(f"POST {name}: {created.status_code} {created.text}")
    response = client.get(f"/api/v1/tasks/{created.json()['id']}", params={"wait": WAIT_SECONDS})
    response.raise_for_status()
    task: dict[str, Any] = response.json()
    check_completed(task, name)
    return task


def measure_e2e(
    args: argparse.Namespace, audio: Path, work_dir: Path
) -> tuple[list[float], list[float], str]:
    """End-to-end seconds and the tasks' ``processing_time``, per request; and the last transcript."""
    env = server_env(
        work_dir,
        model=args.model,
        model_dir=args.model_dir,
        compute_type=args.compute_type,
        threads=args.threads,
        concurrency=None,
        extra=args.env,
    )
    data = audio.read_bytes()
    fields = {"model": args.model, "beam_size": str(args.beam_size)}
    e2e: list[float] = []
    processing: list[float] = []
    text = ""
    with (
        running_server(env, work_dir, args.model) as base_url,
        httpx.Client(base_url=base_url, timeout=WAIT_SECONDS + 30) as client,
    ):
        _request(client, audio.name, data, fields)
        for _ in range(args.reps):
            start = time.perf_counter()
            task = _request(client, audio.name, data, fields)
            e2e.append(time.perf_counter() - start)
            processing.append(float(task.get("processing_time") or 0.0))
            text = str(task["result"]["text"]).strip()
    return e2e, processing, text


def measure_inference(args: argparse.Namespace, audio: Path) -> tuple[list[float], str]:
    location = resolve_model(args.model, args.model_dir)
    model = WhisperModel(location, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)
    segments, _ = model.transcribe(str(audio), beam_size=args.beam_size)
    consume(segments)
    times: list[float] = []
    text = ""
    for _ in range(args.reps):
        start = time.perf_counter()
        segments, _ = model.transcribe(str(audio), beam_size=args.beam_size)
        text = consume(segments)
        times.append(time.perf_counter() - start)
    return times, text


def _ms(values: Sequence[float]) -> str:
    return " ".join(f"{value * 1000:.0f}" for value in values)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_header()
    extra = " ".join(f"{key}={value}" for key, value in args.env) or "none"
    print(
        f"settings: model={args.model} compute_type={args.compute_type} threads={args.threads} "
        f"beam_size={args.beam_size} reps={args.reps} env={extra}"
    )
    audio = clip_path(WARMUP_CLIP)
    with tempfile.TemporaryDirectory(prefix="tingxie-latency-") as tmp:
        e2e, processing, service_text = measure_e2e(args, audio, Path(tmp) / "server")
    inference, raw_text = measure_inference(args, audio)

    print(f"file: {audio.name}")
    print(f"e2e ms:       {_ms(e2e)}")
    print(f"inference ms: {_ms(inference)}")
    print(
        f"e2e (POST + GET ?wait={WAIT_SECONDS}): median {median(e2e) * 1000:.0f} ms, p90 {p90(e2e) * 1000:.0f} ms"
    )
    print(f"service processing_time: median {median(processing) * 1000:.0f} ms")
    print(f"inference (in-process transcribe): median {median(inference) * 1000:.0f} ms")
    print(f"same transcript on both sides: {service_text == raw_text}")
    print(f"median overhead = {(median(e2e) - median(inference)) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
