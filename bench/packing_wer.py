"""Packing accuracy: WER of the cross-task batch scheduler over many arrival orders, against the
sequential library loop, on the English clips, in one process.

Which clips share a packed 30 s window depends on the order tasks reach the scheduler, and clips
in one window condition each other, so one service run's WER is one sample. This script drives
``BatchScheduler`` directly (the service's code path from speech chunks to segments) with every
English clip submitted at once, in ``--orders`` shuffled orders (the first is manifest order), and
prints each order's corpus WER and windows, their mean, and the WER of plain
``WhisperModel.transcribe`` per clip (beam 5, temperature 0) on the same model.

    /work/venv/bin/python bench/packing_wer.py [--model tiny.en] [--orders 8] [--lanes 2]
        [--no-packing] [--no-short-windows]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path

# This directory holds ``queue.py`` (the queue benchmark), which would shadow the standard
# library's ``queue``: keep the directory on the path, after the stdlib.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faster_whisper import WhisperModel
from workload import (
    Clip,
    add_common_arguments,
    consume,
    english_clips,
    english_wer,
    print_header,
    resolve_model,
)

from app.engines.batch_scheduler import BatchScheduler
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.schemas.task import DecodeOptions, TaskType


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny.en", help="model (default tiny.en)")
    parser.add_argument("--orders", type=int, default=8, help="arrival orders (default 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--lanes", type=int, default=2, help="WHISPER__BATCH_LANES (default 2)")
    parser.add_argument(
        "--express-seconds", type=float, default=30.0, help="WHISPER__EXPRESS_SECONDS (default 30)"
    )
    parser.add_argument(
        "--packing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="WHISPER__BATCH_PACKING (default on)",
    )
    parser.add_argument(
        "--short-windows",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="WHISPER__SHORT_WINDOWS (default on)",
    )
    add_common_arguments(parser)
    return parser.parse_args(argv)


async def one_order(
    model: FasterWhisperModel, clips: Sequence[Clip], args: argparse.Namespace
) -> tuple[dict[str, str], int]:
    decoder = model.batch_decoder
    assert decoder is not None
    scheduler = BatchScheduler(
        decoder,
        lambda fn, *step: asyncio.to_thread(fn, *step),
        batch_size=args.batch_size,
        max_batch_wait=0.05,
        pack=args.packing,
        lanes=args.lanes,
        express_seconds=args.express_seconds,
    )
    options = DecodeOptions(beam_size=args.beam_size, temperature=0.0)

    async def transcribe(clip: Clip) -> tuple[str, str]:
        samples, _duration, chunks = model.speech_chunks(clip.path, options, scheduler.max_gap)
        stream = await scheduler.transcribe(samples, chunks, TaskType.transcribe, options, task_id=clip.file)
        async with aclosing(stream.segments) as segments:
            return clip.file, "".join([segment.text async for segment in segments])

    async with scheduler.arriving(short=True):  # all of them are on their way at once
        running = [asyncio.create_task(transcribe(clip)) for clip in clips]
        await asyncio.sleep(0.3)
    texts = dict(await asyncio.gather(*running))
    windows = sum(record.windows for record in scheduler.history)
    await scheduler.close()
    return texts, windows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_header()
    print(
        f"settings: model={args.model} compute_type={args.compute_type} threads={args.threads} "
        f"beam_size={args.beam_size} batch_size={args.batch_size} lanes={args.lanes} "
        f"express_seconds={args.express_seconds} packing={args.packing} "
        f"short_windows={args.short_windows} orders={args.orders}"
    )
    location = resolve_model(args.model, args.model_dir)
    clips = english_clips()
    library = WhisperModel(location, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)
    sequential = {
        clip.file: consume(library.transcribe(str(clip.path), beam_size=args.beam_size, temperature=0.0)[0])
        for clip in clips
    }
    del library
    model = FasterWhisperModel(
        args.model,
        location,
        device="cpu",
        device_index=0,
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=args.lanes + (1 if args.express_seconds > 0 else 0),
        batch_size=args.batch_size,
        short_windows=args.short_windows,
    )
    results = []
    for number in range(args.orders):
        order = list(clips)
        if number:
            random.Random(number).shuffle(order)
        texts, windows = asyncio.run(one_order(model, order, args))
        results.append(english_wer(texts))
        print(f"order {number}: WER {results[-1]:.2%}, {windows} windows", flush=True)
    mean = sum(results) / len(results)
    print(f"sequential library loop: WER {english_wer(sequential):.2%}")
    label = "packed" if args.packing else "batched"
    print(
        f"{label}, {len(results)} orders: mean WER {mean:.2%} (min {min(results):.2%}, max {max(results):.2%})"
    )
    print(f"WER difference {label}-sequential (points) = {100 * (mean - english_wer(sequential)):+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
