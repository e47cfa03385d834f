"""What batching can gain on this machine: encoder and decoder cost per window against batch size.

Eight 30 s windows of real English speech (a long file built from the shared clips) are encoded
one at a time and in one batched call, then decoded with ``generate`` (beam 5, no prompt) in
batches of 1, 2, 4 and 8 rows of the same windows. Each figure is the median of ``--rounds``,
all measured side by side in one process with the same model. The ratios printed are per-window
costs of batch N against batch 1: the most any batching can save for full windows, whatever
the scheduler does. (The raw library pays one encoder pass and one ``generate`` call per window.)

    python bench/batch_scaling.py --model tiny.en [--device cuda --compute-type float16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This directory holds ``queue.py`` (the queue benchmark), which would shadow the standard
# library's ``queue``: keep it on the path, after the stdlib.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path.append(sys.path.pop(0))
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402
import numpy as np  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402
from faster_whisper.tokenizer import Tokenizer  # noqa: E402
from workload import DEFAULT_MODEL_DIR, print_header, resolve_model  # noqa: E402

from tests.long_audio import build_long_audio  # noqa: E402

WINDOW_SAMPLES = 30 * 16000
SIZES = (1, 2, 4, 8)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_header()
    location = resolve_model(args.model, args.model_dir)
    model = WhisperModel(
        location, device=args.device, compute_type=args.compute_type, cpu_threads=args.threads
    )
    audio = build_long_audio(8 * 30 + 5, 31).samples
    features = [
        np.ascontiguousarray(
            model.feature_extractor(
                audio[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES + 400], padding=False
            )[:, :3000]
        )
        for i in range(8)
    ]
    prompt = list(
        Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        ).sot_sequence
    )

    def encode(windows: list[np.ndarray]) -> ctranslate2.StorageView:
        return model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(windows))), to_cpu=False
        )

    def timed(fn: object) -> float:
        runs = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    encoded = [encode([window]) for window in features]
    one_by_one = timed(lambda: [encode([window]) for window in features]) / 8
    batched = timed(lambda: encode(features)) / 8
    print(f"\nencoder, seconds per window: one at a time {one_by_one:.3f}, 8 in one call {batched:.3f}")
    print(f"ratio encoder batch8/batch1 = {batched / one_by_one:.2f}")
    host = [
        np.asarray(view) if args.device == "cpu" else np.asarray(view.to_device(ctranslate2.Device.cpu))
        for view in encoded
    ]
    print("\ndecoder (generate, beam 5), seconds per window:")
    per_window: dict[int, float] = {}
    for size in SIZES:

        def run(size: int = size) -> None:
            for first in range(0, 8, size):
                view = ctranslate2.StorageView.from_array(
                    np.ascontiguousarray(np.concatenate(host[first : first + size]))
                )
                if args.device != "cpu":
                    view = view.to_device(ctranslate2.Device.cuda)
                model.model.generate(view, [prompt] * size, beam_size=5, max_length=448, return_scores=True)

        per_window[size] = timed(run) / 8
        print(f"  batch {size}: {per_window[size]:.3f}")
    for size in SIZES[1:]:
        print(f"ratio decoder batch{size}/batch1 = {per_window[size] / per_window[1]:.2f}")
    best = min(one_by_one, batched) + per_window[8]
    print(
        f"\nfull window, batch 8 against one at a time: speed-up at most {(one_by_one + per_window[1]) / best:.2f} x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
