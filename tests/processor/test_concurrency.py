"""The processor runs several tasks at once, and a slow task never blocks new claims."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done
from tests.long_audio import concat_wav

pytestmark = pytest.mark.slow


async def test_short_task_completes_while_long_one_runs(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    long_audio = tmp_path / "long.wav"
    concat_wav([clips["jfk.wav"].path] * 8, long_audio)
    settings = make_settings(processor={"max_concurrent_tasks": 2, "progress_interval_seconds": 0})
    async with running_app(settings) as running:
        # Temperature 0: the same clip eight times over sends the fallback through every
        # temperature (30 s instead of 5 s here); the queue, not the decoder, is under test.
        long_id = (await upload(running.client, long_audio, temperature="0")).json()["id"]
        for _ in range(100):
            if (await running.client.get(f"/api/v1/tasks/{long_id}")).json()["status"] == "processing":
                break
            await asyncio.sleep(0.05)
        short_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        short = await wait_done(running.client, short_id)
        long_now = (await running.client.get(f"/api/v1/tasks/{long_id}")).json()
        assert short["status"] == "completed"
        assert long_now["status"] == "processing", "the short task waited for the long one"
        assert (await wait_done(running.client, long_id))["status"] == "completed"


async def test_concurrency_bound_holds(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    # The sequential path (batching runs ``batch_size`` × lanes tasks at once so batches fill).
    settings = make_settings(processor={"max_concurrent_tasks": 2}, whisper={"batch_size": 1})
    async with running_app(settings, paused=True) as running:
        ids = [(await upload(running.client, clips["jfk.wav"].path)).json()["id"] for _ in range(5)]
        processor = running.container.processor
        assert processor is not None
        processor.resume()
        peak = 0
        while True:
            running_now = len(processor.running_task_ids)
            assert running_now <= 2
            peak = max(peak, running_now)
            statuses = [
                (await running.client.get(f"/api/v1/tasks/{task_id}")).json()["status"] for task_id in ids
            ]
            if all(status == "completed" for status in statuses):
                break
            await asyncio.sleep(0.02)
        assert peak == 2
        # One instance per device: the two tasks share it, one inference step at a time.
        assert list(running.container.pool.peak_running.values()) == [1]


async def test_failed_task_records_error_and_processor_continues(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    async with running_app(make_settings()) as running:
        task_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        await wait_done(running.client, task_id)
        # Make the next task's media vanish before it runs: the task fails cleanly.
        running.container.processor.pause()  # type: ignore[union-attr]
        doomed = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        task_row = await running.container.repositories.tasks.get(doomed)
        assert task_row is not None and task_row.media_path
        running.container.storage.path_of(task_row.media_path).unlink()
        running.container.processor.resume()  # type: ignore[union-attr]
        failed = await wait_done(running.client, doomed)
        assert failed["status"] == "failed"
        assert "no longer available" in failed["error"]
        assert failed["completed_at"] is not None
        listing = (await running.client.get("/api/v1/tasks", params={"has_error": "true"})).json()
        assert [item["id"] for item in listing["items"]] == [doomed]
        after = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        assert (await wait_done(running.client, after))["status"] == "completed"
