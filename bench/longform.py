"""Nothing lost on long files: the library, the sequential path and the batched path side by side.

Long files are built from the shared English clips with seeds the tests do not use (gaps of
0.25–1.5 s, a 3–6 s pause after every eighth clip). On each, in one process with the same
model: faster-whisper's ``WhisperModel.transcribe`` (the reference), the service's sequential
path (``batch_size=1``) and its batched path (the ``BatchScheduler`` with ``--batch-size``,
which splits a lone file into streams at pauses). For each side: WER, the clips whose words it
lost (recall under 80 % over the clip's span where the library found 80 % or more), the clips
below the tests' floor (``tests.long_audio.recall_floors``: under what the library hears of the
clip alone, or in this file) and the wall time. Temperature 0 only, so that each side is
deterministic.

    python bench/longform.py --model base --files 600:41,300:42,420:43
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This directory holds ``queue.py`` (the queue benchmark), which would shadow the standard
# library's ``queue``: keep it on the path, after the stdlib.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path.append(sys.path.pop(0))
sys.path.insert(0, str(ROOT))

from faster_whisper import WhisperModel  # noqa: E402
from workload import DEFAULT_MODEL_DIR, print_header, resolve_model  # noqa: E402

from app.schemas.task import DecodeOptions, TaskType  # noqa: E402
from tests.engine_support import cpu_engine, decode_in_scheduler  # noqa: E402
from tests.long_audio import build_long_audio, clip_recall, english_clips, recall_floors, wer  # noqa: E402

Spans = list[tuple[float, float, str]]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="base")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--files", default="600:41,300:42,420:43", help="seconds:seed of each long file")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print_header()
    location = resolve_model(args.model, args.model_dir)
    options = DecodeOptions(temperature=0.0)
    library = WhisperModel(location, device="cpu", compute_type="int8", cpu_threads=args.threads)
    sequential = cpu_engine(args.model, location, 1, threads=args.threads)
    stream_batched = cpu_engine(args.model, location, args.batch_size, threads=args.threads)
    clips = english_clips()
    floors = recall_floors(library, clips)
    totals = {"library": 0.0, "sequential": 0.0, "batched": 0.0}
    print(f"\nmodel {args.model}, beam 5, temperature 0, int8, {args.threads} threads")
    print("file | side | WER | clips lost | below the tests' floor | seconds")
    for spec in args.files.split(","):
        seconds, seed = spec.split(":")
        audio = build_long_audio(float(seconds), int(seed), clips=clips)
        sides: dict[str, tuple[Spans, float]] = {}
        start = time.perf_counter()
        found = list(library.transcribe(audio.samples, beam_size=5, temperature=0.0)[0])
        sides["library"] = ([(s.start, s.end, s.text) for s in found], time.perf_counter() - start)
        start = time.perf_counter()
        stream = sequential.transcribe(audio.samples, TaskType.transcribe, options)
        sides["sequential"] = (
            [(s.start, s.end, s.text) for s in stream.segments],
            time.perf_counter() - start,
        )
        start = time.perf_counter()
        found_batched, _scheduler = decode_in_scheduler(stream_batched, audio.samples, options)
        sides["batched"] = ([(s.start, s.end, s.text) for s in found_batched], time.perf_counter() - start)
        reference = [clip_recall(clip, sides["library"][0]) for clip in audio.clips]
        label = f"{audio.duration:.0f} s (seed {seed})"
        for side, (spans, elapsed) in sides.items():
            recalls = [clip_recall(clip, spans) for clip in audio.clips]
            lost = [
                f"{clip.file}@{clip.start:.0f}s"
                for clip, floor, recall in zip(audio.clips, reference, recalls, strict=True)
                if floor >= 0.8 and recall < 0.8
            ]
            # As tests/engines/test_longform.py counts: below what the library hears of the clip,
            # alone (recall_floors) and in this file.
            below = [
                f"{clip.file}@{clip.start:.0f}s"
                for clip, floor, recall in zip(audio.clips, reference, recalls, strict=True)
                if recall < min(floors[clip.file], floor)
            ]
            error = wer(audio.reference, "".join(text for _s, _e, text in spans))
            totals[side] += elapsed
            print(
                f"{label} | {side} | {error:.2%} | {len(lost)} {' '.join(lost)} "
                f"| {len(below)} {' '.join(below)} | {elapsed:.1f}"
            )
    for side in ("sequential", "batched"):
        print(f"ratio {side}/library speed = {totals['library'] / totals[side]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
