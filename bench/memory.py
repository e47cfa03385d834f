"""Memory: the service's resident set against a process that only runs the library.

1. library-only: a subprocess loads ``WhisperModel`` (same model, compute type, threads),
   transcribes the warm-up clip and reports its RSS;
2. service: ``start.py`` with every setting at its default (the model loaded and warmed up),
   one task of the warm-up clip, then its RSS at rest (``idle``);
3. with ``--long-seconds N`` (e.g. 7200): one N-second file built from the shared English clips
   (``tests/long_audio.py``) submitted to the same server; its peak RSS (``VmHWM``) is reported.

    python bench/memory.py --model base [--long-seconds 7200]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import httpx
from workload import (
    ROOT,
    WARMUP_CLIP,
    _stop,
    _wait_ready,
    add_common_arguments,
    clip_path,
    free_port,
    print_header,
    resolve_model,
    server_env,
)

LIBRARY_ONLY = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type=sys.argv[2], cpu_threads=int(sys.argv[3]))
"".join(s.text for s in model.transcribe(sys.argv[4], beam_size=5)[0])
print(open("/proc/self/status").read())
"""


def _status(text: str, key: str) -> int:
    """A ``/proc/<pid>/status`` field in bytes."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _read_status(pid: int) -> str:
    return Path(f"/proc/{pid}/status").read_text()


async def _task(base_url: str, path: Path, model: str, timeout: float) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout + 30) as client:
        with path.open("rb") as handle:
            created = await client.post(
                "/api/v1/tasks", files={"file": (path.name, handle)}, data={"model": model}
            )
        created.raise_for_status()
        task_id = created.json()["id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = (await client.get(f"/api/v1/tasks/{task_id}", params={"wait": 30})).json()
            if task["status"] in ("completed", "failed"):
                return dict(task)
        raise TimeoutError(f"task {task_id} did not finish in {timeout} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="base", help="model (default base)")
    parser.add_argument("--long-seconds", type=float, default=0.0, help="also one file this long (peak RSS)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    print_header()
    location = resolve_model(args.model, args.model_dir)
    warmup = clip_path(WARMUP_CLIP)
    library = subprocess.run(
        [sys.executable, "-c", LIBRARY_ONLY, location, args.compute_type, str(args.threads), str(warmup)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    library_rss = _status(library, "VmRSS")
    print(f"library-only process: RSS {library_rss / 2**20:.0f} MiB (after one transcription)")
    with tempfile.TemporaryDirectory(prefix="tingxie-memory-") as tmp:
        work = Path(tmp)
        env = server_env(
            work / "server",
            model=args.model,
            model_dir=args.model_dir,
            compute_type=args.compute_type,
            threads=args.threads,
            concurrency=None,
            extra=args.env,
        )
        (work / "server").mkdir(parents=True)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = work / "server" / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "start.py"), "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_ready(process, base_url, args.model, log_path)
                asyncio.run(_task(base_url, warmup, args.model, 300))
                time.sleep(2)
                status = _read_status(process.pid)
                idle = _status(status, "VmRSS")
                print(
                    f"service idle after one task: RSS {idle / 2**20:.0f} MiB "
                    f"(library-only + {(idle - library_rss) / 2**20:.0f} MiB)"
                )
                if args.long_seconds:
                    if str(ROOT) not in sys.path:
                        sys.path.insert(0, str(ROOT))
                    from tests.long_audio import build_long_audio

                    audio = build_long_audio(args.long_seconds, 7)
                    path = audio.write_wav(work / "long.wav")
                    del audio
                    started = time.perf_counter()
                    task = asyncio.run(_task(base_url, path, args.model, 6 * args.long_seconds))
                    peak = _status(_read_status(process.pid), "VmHWM")
                    print(
                        f"{args.long_seconds:.0f} s file: {task['status']} in {time.perf_counter() - started:.0f} s; "
                        f"peak RSS {peak / 2**20:.0f} MiB"
                    )
            finally:
                _stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
