"""SenseVoice against Whisper ``base`` on the shared Chinese clips: CER and throughput, in one process.

Needs real SenseVoiceSmall weights in sherpa-onnx's format (``model.int8.onnx`` or
``model.onnx`` plus ``tokens.txt``; see docs/engines.md). Without them it prints why it is skipped
and exits 0: the test model of the test suite emits a fixed text and says nothing about accuracy.

Both engines are driven through the service's engine interface (``SpeechModel.transcribe``, as the
task processor calls it), one model instance each, on the same CPU threads:

* CER: every clip of ``MANIFEST.tsv`` with ``language == zh``, decoded once with ``language=zh``.
  Reference and hypothesis are both brought to Simplified (OpenCC ``t2s``, the service's
  ``simplified`` script) and stripped of punctuation and spaces, then scored as one corpus
  (``jiwer.cer``). Whisper's script mixing therefore costs it nothing here.
* Throughput: the clips concatenated, with 0.5 s of silence between them, into a file of about
  ``--long-seconds`` seconds (VAD pieces, batched by SenseVoice), decoded ``--repeat`` times; the
  best wall time is reported as audio seconds per wall second, and the per-clip total as well.

    python bench/sensevoice.py [--model-dir DIR] [--whisper-model base] [--threads N]
        [--repeat 3] [--long-seconds 120]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# This directory holds ``queue.py`` (the queue benchmark), which would shadow the standard
# library's ``queue``: keep the directory on the path, after the stdlib.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engines.base import SpeechModel
from app.engines.devices import Device
from app.engines.factory import ModelFactory
from app.engines.model_resolver import ModelResolver
from app.engines.sensevoice_engine import model_files
from app.media.samples import decode_samples
from app.processor.chinese_script import convert_text
from app.schemas.chinese import ChineseScript
from app.schemas.task import DecodeOptions, TaskType
from config.settings import SenseVoiceSettings, WhisperSettings

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
SAMPLE_RATE = 16000
MIN_WEIGHT_BYTES = 50_000_000
"""SenseVoiceSmall is about 230 MB in int8 (900 MB in float32); anything far smaller is a test model."""
_NOT_TEXT = re.compile(r"[\W_]+", re.UNICODE)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=os.environ.get("SENSEVOICE__MODEL_DIR") or None,
        help="SenseVoice model directory (default: $SENSEVOICE__MODEL_DIR)",
    )
    parser.add_argument("--whisper-model", default="base", help="Whisper model to compare (default base)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads per engine")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the long file (default 3)")
    parser.add_argument(
        "--long-seconds", type=float, default=120.0, help="length of the long file (default 120)"
    )
    parser.add_argument("--model-cache", type=Path, default=Path.home() / ".cache" / "tingxie" / "models")
    return parser.parse_args(argv)


def zh_clips() -> list[tuple[Path, str]]:
    with (AUDIO_DIR / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(AUDIO_DIR / row["file"], row["reference_transcript"]) for row in rows if row["language"] == "zh"]


def normalise(text: str) -> str:
    return _NOT_TEXT.sub("", convert_text(text, ChineseScript.simplified))


def transcribe(model: SpeechModel, samples: np.ndarray) -> str:
    options = DecodeOptions(language="zh", beam_size=5, temperature=0.0)
    stream = model.transcribe(samples, TaskType.transcribe, options)
    return "".join(segment.text for segment in stream.segments)


def long_file(clips: list[np.ndarray], seconds: float) -> np.ndarray:
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        for clip in clips:
            parts.extend((clip, pause))
            total += len(clip) + len(pause)
    return np.concatenate(parts)


def measure(
    name: str, model: SpeechModel, clips: list[tuple[Path, str]], args: argparse.Namespace
) -> dict[str, float]:
    import jiwer

    audio = [decode_samples(str(path)) for path, _ in clips]
    transcribe(model, audio[0])  # warm-up
    started = time.perf_counter()
    hypotheses = [transcribe(model, samples) for samples in audio]
    clip_seconds = time.perf_counter() - started
    references = [normalise(reference) for _, reference in clips]
    normalised = [normalise(hypothesis) for hypothesis in hypotheses]
    for (path, _), reference, hypothesis in zip(clips, references, normalised, strict=True):
        print(f"  {name:<12} {path.name:<45} ref {reference}  hyp {hypothesis}")
    long = long_file(audio, args.long_seconds)
    best = min(_timed(model, long) for _ in range(args.repeat))
    return {
        "cer": float(jiwer.cer(references, normalised)),
        "clip_audio": sum(len(samples) for samples in audio) / SAMPLE_RATE,
        "clip_wall": clip_seconds,
        "long_audio": len(long) / SAMPLE_RATE,
        "long_wall": best,
    }


def _timed(model: SpeechModel, samples: np.ndarray) -> float:
    started = time.perf_counter()
    transcribe(model, samples)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sensevoice = SenseVoiceSettings(model_dir=args.model_dir)
    whisper = WhisperSettings(model_dir=args.model_cache)
    factory = ModelFactory(whisper, ModelResolver(whisper.model_dir), sensevoice)
    problem = factory.unavailable("sensevoice")
    if problem is not None:
        print(f"skipped: no SenseVoice weights ({problem})")
        return 0
    assert args.model_dir is not None
    weights, _tokens = model_files(args.model_dir)
    if weights.stat().st_size < MIN_WEIGHT_BYTES:
        print(f"skipped: {weights} has {weights.stat().st_size} bytes: a test model, not SenseVoiceSmall")
        return 0
    clips = zh_clips()
    device = Device("cpu")
    print(f"# SenseVoice vs Whisper {args.whisper_model}: {len(clips)} zh clips, {args.threads} thread(s)")
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)")
    results: dict[str, dict[str, float]] = {}
    for name, engine, model_name in (
        ("sensevoice", "sensevoice", "sensevoice"),
        (f"whisper {args.whisper_model}", "faster_whisper", args.whisper_model),
    ):
        model = factory.create(engine, model_name, device, args.threads)
        try:
            results[name] = measure(name, model, clips, args)
        finally:
            model.close()
    print()
    print(
        "| engine | CER | clips: audio s / wall s | long file: audio s / wall s (best of", args.repeat, ") |"
    )
    print("|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| {name} | {100 * result['cer']:.2f} % | {result['clip_audio'] / result['clip_wall']:.1f}"
            f" | {result['long_audio'] / result['long_wall']:.1f} ({result['long_audio']:.0f} s) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
