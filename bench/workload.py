"""Shared helpers of the Tingxie benchmarks: workload, WER, machine header and the server process.

Imported by ``bench/throughput.py`` and ``bench/latency.py`` (run them as scripts,
``python bench/throughput.py``, so that this module sits on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
from faster_whisper.audio import decode_audio

ROOT = Path(__file__).resolve().parents[1]
"""Repository root: ``start.py`` lives here and the server runs with it as its working directory."""

AUDIO_DIR = ROOT.parent / "shared" / "audio"
MANIFEST = AUDIO_DIR / "MANIFEST.tsv"
DUPLICATE_CLIPS = frozenset({"jfk.wav", "jfk.mp3"})
"""Same speech as ``jfk.flac``; left out so it is neither timed nor scored twice."""

WARMUP_CLIP = "jfk.flac"
SAMPLE_RATE = 16_000
GAP_SECONDS = 0.5
LONG_FILE_SECONDS = 120.0
DEFAULT_MODEL_DIR = Path.home() / ".cache" / "tingxie" / "models"
SERVER_READY_TIMEOUT = 600.0
SERVER_STOP_TIMEOUT = 30.0


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Clip:
    """One row of ``MANIFEST.tsv``."""

    file: str
    language: str
    duration: float
    reference: str

    @property
    def path(self) -> Path:
        return AUDIO_DIR / self.file


class WorkItem(NamedTuple):
    """One file of the workload and its decoded length."""

    path: Path
    duration: float


def load_manifest() -> list[Clip]:
    if not MANIFEST.is_file():
        raise SystemExit(f"shared audio is missing: {MANIFEST} (the project expects ../shared/audio)")
    with MANIFEST.open(encoding="utf-8", newline="") as handle:
        return [
            Clip(row["file"], row["language"], float(row["duration_seconds"]), row["reference_transcript"])
            for row in csv.DictReader(handle, delimiter="\t")
        ]


def english_clips() -> list[Clip]:
    """English rows of the manifest, without the duplicate JFK encodings."""
    return [clip for clip in load_manifest() if clip.language == "en" and clip.file not in DUPLICATE_CLIPS]


def clip_path(name: str) -> Path:
    return AUDIO_DIR / name


def _write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())


def _concatenate(
    audio: Mapping[str, np.ndarray], names: Sequence[str], rng: random.Random, target: float
) -> tuple[np.ndarray, list[str]]:
    """Clips in shuffled passes, 0.5 s of silence after each, until ``target`` seconds are
    reached; with the names of the clips in the order they were laid down."""
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    used: list[str] = []
    samples = 0
    while samples < target * SAMPLE_RATE:
        order = list(names)
        rng.shuffle(order)
        for name in order:
            pieces.extend((audio[name], gap))
            used.append(name)
            samples += len(audio[name]) + len(gap)
            if samples >= target * SAMPLE_RATE:
                break
    return np.concatenate(pieces), used


def build_workload(out_dir: Path, *, long_files: int = 3) -> list[WorkItem]:
    """Every English clip as it is, then ``long_files`` ~2-minute WAVs made of shuffled English clips.

    The long files are 16 kHz mono 16-bit WAV in ``out_dir``; each uses its own fixed seed, so
    the order differs from file to file but is the same on every run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = english_clips()
    audio = {clip.file: decode_audio(str(clip.path), sampling_rate=SAMPLE_RATE) for clip in clips}
    items = [WorkItem(clip.path, len(audio[clip.file]) / SAMPLE_RATE) for clip in clips]
    names = [clip.file for clip in clips]
    references = {clip.file: clip.reference for clip in clips}
    for index in range(long_files):
        samples, used = _concatenate(audio, names, random.Random(2024 + index), LONG_FILE_SECONDS)
        path = out_dir / f"concat-{index + 1:02d}.wav"
        _write_wav(path, samples)
        path.with_suffix(".txt").write_text(" ".join(references[name] for name in used), encoding="utf-8")
        items.append(WorkItem(path, len(samples) / SAMPLE_RATE))
    return items


# --------------------------------------------------------------------------- accuracy


def english_wer(hypotheses: Mapping[str, str]) -> float:
    """Corpus WER over the plain English clips found in ``hypotheses`` (file name -> transcript).

    Both sides go through Whisper's ``EnglishTextNormalizer``. Import it lazily: ``whisper``
    pulls in torch, which should not be loaded while anything is being timed.
    """
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    references: list[str] = []
    predictions: list[str] = []
    for clip in english_clips():
        if clip.file not in hypotheses:
            continue
        reference = str(normalize(clip.reference)).strip()
        if not reference:
            continue
        references.append(reference)
        predictions.append(str(normalize(hypotheses[clip.file])).strip())
    if not references:
        raise ValueError("no English clip was transcribed")
    return float(jiwer.wer(references, predictions))


def long_file_references(items: Sequence[WorkItem]) -> dict[str, str]:
    """File name -> reference of the concatenated long files (written beside them by
    ``build_workload``); read them before the workload directory goes away."""
    return {
        item.path.name: item.path.with_suffix(".txt").read_text(encoding="utf-8")
        for item in items
        if item.path.with_suffix(".txt").is_file()
    }


def long_file_wer(references: Mapping[str, str], hypotheses: Mapping[str, str]) -> float | None:
    """Corpus WER over the long files in ``references``, or ``None`` when there are none.
    Normalised as ``english_wer``."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    names = [name for name in references if name in hypotheses]
    if not names:
        return None
    return float(
        jiwer.wer(
            [str(normalize(references[name])).strip() for name in names],
            [str(normalize(hypotheses[name])).strip() for name in names],
        )
    )


def english_differences(
    first: Mapping[str, str], second: Mapping[str, str]
) -> list[tuple[str, str, str, str]]:
    """(file, reference, first, second), all normalised, for the plain English clips whose
    normalised transcripts differ: where a WER difference comes from."""
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    rows = []
    for clip in english_clips():
        if clip.file in first and clip.file in second:
            a, b = str(normalize(first[clip.file])).strip(), str(normalize(second[clip.file])).strip()
            if a != b:
                rows.append((clip.file, str(normalize(clip.reference)).strip(), a, b))
    return rows


# --------------------------------------------------------------------------- raw library side


def resolve_model(name: str, model_dir: Path) -> str:
    """CTranslate2 directory (or hub id) of ``name``, resolved exactly as the service resolves it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app.engines.model_resolver import ModelResolver

    return ModelResolver(model_dir).resolve(name).location


def consume(segments: Any) -> str:
    """Run the lazy segment generator to the end and return the joined text."""
    return "".join(segment.text for segment in segments).strip()


# --------------------------------------------------------------------------- CLI and report


def env_pair(value: str) -> tuple[str, str]:
    """argparse type of ``--env KEY=VALUE``."""
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), val


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compute-type", default="int8", help="CTranslate2 compute type (default int8)")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU threads of the model, in-process and in the service (default: all cores)",
    )
    parser.add_argument("--beam-size", type=int, default=5, help="beam width on both sides (default 5)")
    parser.add_argument(
        "--env",
        type=env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server, e.g. WHISPER__NUM_WORKERS=2 (repeatable)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help=f"where bundled models are assembled, for both sides (default {DEFAULT_MODEL_DIR})",
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}"


def print_header() -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpu: {cpu_model()}")
    print(f"cores: {os.cpu_count()} (usable by this process: {usable})")
    print(f"python: {platform.python_version()}  platform: {platform.platform()}")
    print(f"faster-whisper: {_version('faster-whisper')}  ctranslate2: {_version('ctranslate2')}")
    print(f"git: {_git_revision()}")
    sys.stdout.flush()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


# --------------------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    work_dir: Path,
    *,
    model: str,
    model_dir: Path,
    compute_type: str,
    threads: int,
    concurrency: int | None,
    extra: Sequence[tuple[str, str]],
) -> dict[str, str]:
    """Environment of one server run, isolated in ``work_dir``; ``extra`` (``--env``) wins."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work_dir / 'bench.db'}",
        "STORAGE__TEMP_DIR": str(work_dir / "media"),
        "LOGGING__DIR": str(work_dir / "logs"),
        "LOGGING__LEVEL": "WARNING",
        # The raw side runs on the CPU; hide any GPU so the service does too (whatever its device setting).
        "CUDA_VISIBLE_DEVICES": "",
        "WHISPER__DEFAULT_MODEL": model,
        "WHISPER__ALLOWED_MODELS": model,
        "WHISPER__MODEL_DIR": str(model_dir),
        "WHISPER__COMPUTE_TYPE": compute_type,
        "WHISPER__CPU_THREADS": str(threads),
    }
    if concurrency is not None:
        env["PROCESSOR__MAX_CONCURRENT_TASKS"] = str(concurrency)
    env.update(dict(extra))
    return env


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def model_loaded(health: Mapping[str, Any], model: str) -> bool:
    """Whether the health document lists ``model`` as loaded.

    Accepts both shapes the service has had: ``models: [{name}]`` (loaded models only) and
    ``pool: {models: [{name, loaded}]}`` (configured models with a count of ready instances).
    """
    entries = list(health.get("models") or [])
    pool = health.get("pool")
    if isinstance(pool, Mapping):
        entries.extend(pool.get("models") or [])
    return any(
        isinstance(entry, Mapping) and entry.get("name") == model and entry.get("loaded", 1)
        for entry in entries
    )


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, model: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                response = client.get("/api/v1/health")
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                state = response.json()
                for key, message in (state.get("model_errors") or {}).items():
                    if key == model or key.endswith(f"/{model}"):
                        raise RuntimeError(f"the server could not load {model}: {message}")
                if model_loaded(state, model):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server was not ready in {SERVER_READY_TIMEOUT:.0f} s:\n{_tail(log_path)}"
                )
            time.sleep(0.3)


@contextlib.contextmanager
def running_server(env: Mapping[str, str], work_dir: Path, model: str) -> Iterator[str]:
    """Start ``start.py`` on a free port, wait until ``model`` is loaded, yield the base URL.

    On exit: SIGTERM, then kill after 30 s. Server output goes to ``work_dir/server.log``.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = work_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "start.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, base_url, model, log_path)
            yield base_url
        finally:
            _stop(process)


def check_completed(task: Mapping[str, Any], name: str) -> None:
    if task.get("status") != "completed":
        raise RuntimeError(f"task for {name} ended {task.get('status')}: {task.get('error')}")
