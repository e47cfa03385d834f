"""Batched decoding (``WHISPER__BATCH_SIZE`` > 1): speech chunks decoded in batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.engines.batched import Chunk, chunk_regions
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done
from tests.engines.test_long_audio_and_parity import assert_clip_starts, build_long_file, long_file_clips


def test_chunking_merges_and_splits() -> None:
    assert chunk_regions([(0.0, 5.0), (6.0, 20.0), (25.0, 40.0)]) == [Chunk(0.0, 20.0), Chunk(25.0, 40.0)]
    assert chunk_regions([(0.0, 70.0)]) == [Chunk(0.0, 30.0), Chunk(30.0, 60.0), Chunk(60.0, 70.0)]
    assert chunk_regions([(0.0, 2.0), (3.0, 65.0)]) == [
        Chunk(0.0, 2.0),
        Chunk(3.0, 33.0),
        Chunk(33.0, 63.0),
        Chunk(63.0, 65.0),
    ]
    assert chunk_regions([]) == []


async def test_batched_long_file_and_word_timestamp_fallback(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    chosen = long_file_clips(clips)
    long_file = tmp_path / "long.wav"
    offsets = build_long_file(chosen, long_file, total_seconds=300.0)
    async with running_app(make_settings(whisper={"batch_size": 8})) as running:
        task_id = (await upload(running.client, long_file, temperature="0")).json()["id"]
        task = await wait_done(running.client, task_id, timeout=300)
        assert task["status"] == "completed", task["error"]
        segments = task["result"]["segments"]
        assert [s["id"] for s in segments] == list(range(len(segments)))
        starts = [s["start"] for s in segments]
        assert starts == sorted(starts)
        assert_clip_starts(segments, offsets)
        text = normalize_en(task["result"]["text"])
        assert "ask not what your country can do for you" in text
        assert "horizon seems extremely distant" in text

        # Word timestamps cannot be batched: that task takes the sequential path and gets words.
        words_id = (await upload(running.client, clips["jfk.flac"].path, word_timestamps="true")).json()["id"]
        words_task = await wait_done(running.client, words_id)
        assert all(segment["words"] for segment in words_task["result"]["segments"])
