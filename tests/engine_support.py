"""Faster-whisper engines for the tests and benchmarks that drive the decoder directly (CPU,
int8, as the test machine runs them), and a lone task decoded through a ``BatchScheduler``."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engines.batch_scheduler import BatchScheduler
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType


def cpu_engine(
    name: str, location: str, batch_size: int, *, threads: int = 2, short_windows: bool = True
) -> FasterWhisperModel:
    return FasterWhisperModel(
        name,
        location,
        device="cpu",
        device_index=0,
        compute_type="int8",
        cpu_threads=threads,
        num_workers=1,
        batch_size=batch_size,
        short_windows=short_windows,
    )


def decode_in_scheduler(
    engine: FasterWhisperModel, samples: npt.NDArray[np.float32], options: DecodeOptions
) -> tuple[list[Segment], BatchScheduler]:
    """One task's segments through the engine's scheduler (``batch_size`` > 1), every batch run
    in a worker thread, and the scheduler, whose ``history`` holds the batches it ran."""
    decoder = engine.batch_decoder
    assert decoder is not None

    async def in_thread(fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def run() -> tuple[list[Segment], BatchScheduler]:
        scheduler = BatchScheduler(decoder, in_thread, batch_size=engine.batch_size, max_batch_wait=0.05)
        prepared = engine.prepare(samples, options)
        batched = await scheduler.transcribe(prepared, TaskType.transcribe, options, task_id="long")
        async with aclosing(batched.segments) as segments:
            found = [segment async for segment in segments]
        assert batched.decoded() == 1.0
        await scheduler.close()
        return found, scheduler

    return asyncio.run(run())
