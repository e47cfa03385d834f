"""Cross-task dynamic batching (``WHISPER__BATCH_SIZE`` > 1, ``WHISPER__BATCHING=tasks``)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

from app.engines.batch_scheduler import SKIPPED, BatchScheduler, ChunkDroppedError, _Item, _Job, _unpack
from app.engines.batched import Chunk, chunk_regions
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.engines.model_resolver import ModelResolver
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done
from tests.engines.test_long_audio_and_parity import assert_clip_starts, build_long_file, long_file_clips

TEN_CLIPS = [
    "jfk.flac",
    "stereo_diarization_left.wav",
    "stereo_diarization_right.wav",
    "1089-134686-0001.wav",
    "1221-135766-0002.wav",
    "sense_and_sensibility_01_austen_64kb-0880.wav",
    "sense_and_sensibility_01_austen_64kb-0930.wav",
    "goforward.wav",
    "new-home-in-the-stars-16k.wav",
    "pocketsphinx_cards_003.wav",
]
NUMBERS = dict(
    enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])
)


def _words(text: str) -> str:
    """``normalize_en``, with the small numbers Whisper writes as digits spelled out as in the references."""
    return " ".join(
        NUMBERS.get(int(word), word) if word.isdigit() else word for word in normalize_en(text).split()
    )


def _wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(_words(reference), _words(hypothesis) or "-"))


def _batching(make_settings: Callable[..., Settings], **whisper: Any) -> Settings:
    return make_settings(whisper={"batch_size": 8, "batching": "tasks", **whisper})


async def test_ten_clips_at_once_each_transcript_is_its_own(
    make_settings: Callable[..., Settings], model_dir: Path, clips: dict[str, Clip]
) -> None:
    chosen = [clips[name] for name in TEN_CLIPS]
    async with running_app(_batching(make_settings)) as running:
        ids = [(await upload(running.client, clip.path, temperature="0")).json()["id"] for clip in chosen]
        tasks = await asyncio.gather(*(wait_done(running.client, task_id) for task_id in ids))
        (instance,) = running.services.pool.instances()
        assert instance.batcher is not None
        history = list(instance.batcher.history)
    assert all(task["status"] == "completed" for task in tasks), [task["error"] for task in tasks]
    # Chunks of different tasks really shared batches.
    assert max(len({task_id for task_id, _ in record.rows}) for record in history) >= 4, history
    assert {task_id for record in history for task_id, _ in record.rows} == set(ids)

    served = {clip.file: task["result"]["text"] for clip, task in zip(chosen, tasks, strict=True)}
    for clip, task in zip(chosen, tasks, strict=True):
        own = _wer(clip.reference, served[clip.file])
        others = [_wer(other.reference, served[clip.file]) for other in chosen if other is not clip]
        assert own <= 0.5, (clip.file, served[clip.file])
        assert own < min(others), (clip.file, served[clip.file])  # attributed to the right task
        starts = [segment["start"] for segment in task["result"]["segments"]]
        assert starts == sorted(starts) and all(0 <= s <= clip.duration for s in starts)

    # Corpus WER within +0.5 points of the sequential path (the library's own loop) on the same clips.
    location = ModelResolver(model_dir).resolve("tiny.en").location
    library = WhisperModel(location, device="cpu", compute_type="int8", cpu_threads=2)
    sequential = {
        clip.file: "".join(s.text for s in library.transcribe(str(clip.path), temperature=0.0)[0])
        for clip in chosen
    }
    references = [_words(clip.reference) for clip in chosen]
    batched_wer = jiwer.wer(references, [_words(served[clip.file]) for clip in chosen])
    sequential_wer = jiwer.wer(references, [_words(sequential[clip.file]) for clip in chosen])
    assert batched_wer <= sequential_wer + 0.005, (batched_wer, sequential_wer)


async def test_short_clip_beside_a_long_file(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    """Fairness, long-audio timestamps and progress with a long file and a short clip in one batcher."""
    chosen = long_file_clips(clips)
    long_file = tmp_path / "long.wav"
    offsets = build_long_file(chosen, long_file, total_seconds=300.0)
    short = clips["jfk.flac"]
    # The defaults: one instance, two lanes and the express lane, which the short clip takes
    # while the long file's batches hold both lanes. Batches of two: the ten chunks take five
    # batches, two at a time, so progress shows in between.
    settings = _batching(make_settings, batch_size=2)
    settings.processor.progress_interval_seconds = 0.2
    async with running_app(settings) as running:
        client = running.client
        solo_started = time.perf_counter()
        solo_id = (await upload(client, short.path, temperature="0")).json()["id"]
        assert (await wait_done(client, solo_id))["status"] == "completed"
        solo = time.perf_counter() - solo_started

        long_id = (await upload(client, long_file, temperature="0")).json()["id"]
        progress: list[float] = []

        async def watch() -> dict[str, Any]:
            while (task := (await client.get(f"/api/v1/tasks/{long_id}")).json())["status"] in (
                "queued",
                "processing",
            ):
                progress.append(task["progress"])
                await asyncio.sleep(0.1)
            return task

        watcher = asyncio.create_task(watch())
        batchers = [i.batcher for i in running.services.pool.instances() if i.batcher is not None]
        assert len(batchers) == 1
        while not any(batcher.tasks for batcher in batchers):  # noqa: ASYNC110 (its chunks are being decoded)
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        short_id = (await upload(client, short.path, temperature="0")).json()["id"]
        short_task = await wait_done(client, short_id)
        beside = time.perf_counter() - started
        long_task = await watcher

    assert short_task["status"] == "completed" and long_task["status"] == "completed", long_task["error"]
    assert "ask not what your country can do for you" in normalize_en(short_task["result"]["text"])
    assert beside <= 2 * solo, (beside, solo)
    records = [record for batcher in batchers for record in batcher.history]
    assert any(record.express and short_id in {t for t, _ in record.rows} for record in records), records
    assert all(not record.express for record in records if long_id in {t for t, _ in record.rows})
    assert any(0 < p < 100 for p in progress) and progress == sorted(progress), (
        progress,
        [(r.rows, round(r.started, 2), r.seconds, r.express) for b in batchers for r in b.history],
    )

    segments = long_task["result"]["segments"]
    assert [s["id"] for s in segments] == list(range(len(segments)))
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    assert_clip_starts(segments, offsets)
    assert "ask not what your country can do for you" in normalize_en(long_task["result"]["text"])


@pytest.fixture(scope="module")
def tiny_en(model_dir: Path) -> FasterWhisperModel:
    location = ModelResolver(model_dir).resolve("tiny.en").location
    return FasterWhisperModel(
        "tiny.en",
        location,
        device="cpu",
        device_index=0,
        compute_type="int8",
        cpu_threads=2,
        num_workers=1,
        batch_size=2,
    )


async def test_priority_round_robin_and_cancellation(
    tiny_en: FasterWhisperModel, clips: dict[str, Clip]
) -> None:
    """Real model, scheduler only: batches of two while the first batch holds the device."""
    samples = decode_audio(str(clips["jfk.flac"].path), sampling_rate=16000)
    decoder = tiny_en.batch_decoder
    assert decoder is not None
    hold = asyncio.Event()

    async def run_step(fn: Callable[..., Any], *args: Any) -> Any:
        await hold.wait()
        return await asyncio.to_thread(fn, *args)

    scheduler = BatchScheduler(decoder, run_step, batch_size=3, max_batch_wait=0.0, pack=False)
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)
    cuts = [0.0, 2.4, 3.3, 5.4, 8.1, 11.0]
    long = [Chunk(a, b) for a, b in itertools.pairwise(cuts)]
    cancelled = False

    def submit(task_id: str, priority: int, chunks: list[Chunk], **extra: Any) -> asyncio.Task[Any]:
        return asyncio.create_task(
            scheduler.transcribe(
                samples, chunks, TaskType.transcribe, options, task_id=task_id, priority=priority, **extra
            )
        )

    first = submit("low-a", 2, long)
    await asyncio.sleep(0.05)  # its first batch (chunks 0 to 2) now waits for the device
    low_b = submit("low-b", 2, [Chunk(0.0, 11.0)])
    gone = submit("gone", 1, long, cancelled=lambda: cancelled)
    high = submit("high", 0, [Chunk(0.0, 11.0)])
    await asyncio.sleep(0.05)
    cancelled = True  # cancelled before any of its chunks is batched
    hold.set()
    streams = await asyncio.gather(first, low_b, high)
    with pytest.raises(ChunkDroppedError):
        await gone
    texts = []
    for stream in streams:
        async with aclosing(stream.segments) as segments:
            texts.append("".join([segment.text async for segment in segments]))
    await scheduler.close()

    rows = [record.rows for record in scheduler.history]
    assert rows[0] == (("low-a", 0), ("low-a", 1), ("low-a", 2))
    # High priority jumps the queue, then one chunk per task per turn, oldest task first.
    assert rows[1] == (("high", 0), ("low-a", 3), ("low-b", 0))
    assert rows[2:] == [(("low-a", 4),)]
    assert all(task_id != "gone" for row in rows for task_id, _ in row)
    assert scheduler.pending_chunks == 0 and scheduler.tasks == 0
    for text in texts:
        assert "fellow americans" in normalize_en(text) and "your country" in normalize_en(text), text


def test_chunks_keep_long_silences_out() -> None:
    regions = [(0.0, 5.0), (6.5, 10.0), (20.0, 25.0), (26.0, 29.0)]
    assert chunk_regions(regions, max_gap=2.0) == [Chunk(0.0, 10.0), Chunk(20.0, 29.0)]
    assert chunk_regions(regions) == [Chunk(0.0, 29.0)]


async def test_deleting_a_running_task_drops_its_chunks(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    long_file = tmp_path / "long.wav"
    build_long_file([clips[name] for name in TEN_CLIPS], long_file, total_seconds=300.0)
    settings = _batching(make_settings, batch_size=2, batch_packing=False, load_mode="eager", min_size=1)
    async with running_app(settings) as running:
        (instance,) = running.services.pool.instances()
        batcher = instance.batcher
        assert batcher is not None
        task_id = (await upload(running.client, long_file, temperature="0")).json()["id"]
        while not batcher.tasks:  # noqa: ASYNC110 (its chunks are queued, the first batch runs)
            await asyncio.sleep(0.02)
        queued = batcher.pending_chunks
        assert queued >= 6
        assert (await running.client.delete(f"/api/v1/tasks/{task_id}")).status_code == 204
        processor = running.services.processor
        assert processor is not None
        while batcher.tasks or processor.running_task_ids:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        decoded = [row for record in batcher.history for row in record.rows if row[0] == task_id]
        assert len(decoded) <= 4 < 2 + queued, (decoded, queued)  # at most the batches in flight
        assert batcher.pending_chunks == 0
        assert (await running.client.get(f"/api/v1/tasks/{task_id}")).status_code == 404


async def test_packed_clips_of_many_languages_each_keep_their_own(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    """Multilingual ``base``, no language given: clips packed into shared windows still get
    their own language (detected on their own frames) and their own text."""
    names = ["jfk.flac", "picovoice_test_de.wav", "picovoice_test_es.wav", "zh_long.wav", "goforward.wav"]
    settings = _batching(
        make_settings, default_model="base", load_mode="eager", min_size=1, batch_packing=True
    )
    async with running_app(settings) as running:
        ids = [
            (await upload(running.client, clips[name].path, model="base", temperature="0")).json()["id"]
            for name in names
        ]
        tasks = await asyncio.gather(*(wait_done(running.client, task_id) for task_id in ids))
        (instance,) = running.services.pool.instances()
        assert instance.batcher is not None
        history = list(instance.batcher.history)
    assert any(record.windows < len(record.rows) for record in history), history  # really packed
    for name, task in zip(names, tasks, strict=True):
        assert task["status"] == "completed", task["error"]
        assert task["result"]["language"] == clips[name].language, (name, task["result"])
    assert "ask not what your country can do for you" in normalize_en(tasks[0]["result"]["text"])
    assert "go forward" in normalize_en(tasks[4]["result"]["text"])


async def test_room_for_decoded_audio(tiny_en: FasterWhisperModel, clips: dict[str, Clip]) -> None:
    """Tasks wait before decoding while the queued ones hold too much audio; one always gets in."""
    samples = decode_audio(str(clips["jfk.flac"].path), sampling_rate=16000)
    decoder = tiny_en.batch_decoder
    assert decoder is not None
    never = asyncio.Event()

    async def run_step(fn: Callable[..., Any], *args: Any) -> Any:
        await never.wait()  # no batch runs: the job stays queued

    scheduler = BatchScheduler(decoder, run_step, batch_size=2, max_batch_wait=0.0, max_held_seconds=5.0)
    await asyncio.wait_for(scheduler.room(), 1)  # nothing held
    options = DecodeOptions(language="en", temperature=0.0)
    job = asyncio.create_task(scheduler.transcribe(samples, [Chunk(0.0, 11.0)], TaskType.transcribe, options))
    await asyncio.sleep(0.05)
    assert scheduler.held_seconds == pytest.approx(11.0, abs=0.01)
    waiting = asyncio.create_task(scheduler.room())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    job.cancel()  # the task stops: its audio is released
    with pytest.raises(asyncio.CancelledError):
        await job
    await asyncio.wait_for(waiting, 1)
    assert scheduler.held_seconds == 0
    await scheduler.close()


async def test_a_batch_waits_for_tasks_being_prepared(
    tiny_en: FasterWhisperModel, clips: dict[str, Clip]
) -> None:
    """A batch that is not full waits while another task is being prepared, not just
    ``max_batch_wait``; with nobody on the way, a lone chunk goes at once."""
    samples = decode_audio(str(clips["jfk.flac"].path), sampling_rate=16000)
    decoder = tiny_en.batch_decoder
    assert decoder is not None
    started: list[float] = []

    async def run_step(fn: Callable[..., Any], *args: Any) -> Any:
        started.append(time.monotonic())
        return await asyncio.to_thread(fn, *args)

    scheduler = BatchScheduler(decoder, run_step, batch_size=2, max_batch_wait=0.0, pack=False)
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)

    async def one(task_id: str) -> str:
        stream = await scheduler.transcribe(
            samples, [Chunk(0.0, 11.0)], TaskType.transcribe, options, task_id=task_id
        )
        async with aclosing(stream.segments) as segments:
            return "".join([segment.text async for segment in segments])

    async def prepared_late() -> str:
        async with scheduler.arriving():
            await asyncio.sleep(0.3)  # its audio is being decoded
        return await one("late")

    submitted = time.monotonic()
    texts = await asyncio.gather(one("early"), prepared_late())
    assert [record.rows for record in scheduler.history] == [(("early", 0), ("late", 0))]
    assert started[0] - submitted >= 0.3
    for text in texts:
        assert "your country" in normalize_en(text), text

    submitted = time.monotonic()
    assert "your country" in normalize_en(await one("alone"))
    assert started[1] - submitted < 0.2  # nobody on the way: no wait
    await scheduler.close()


async def test_lanes_and_the_express_lane(tiny_en: FasterWhisperModel, clips: dict[str, Clip]) -> None:
    """Two regular batches run at once; a short task is decoded on the express lane while both
    hold a long task's chunks, and never shares a batch with them."""
    samples = decode_audio(str(clips["jfk.flac"].path), sampling_rate=16000)
    decoder = tiny_en.batch_decoder
    assert decoder is not None
    release = asyncio.Event()
    active: list[int] = [0]
    most: list[int] = [0]

    async def run_step(fn: Callable[..., Any], rows: list[list[Any]], *args: Any) -> Any:
        active[0] += 1
        most[0] = max(most[0], active[0])
        try:
            if any(item.job.task_id == "long" for row in rows for item in row):
                await release.wait()  # the long task's batches hold their lanes
            return await asyncio.to_thread(fn, rows, *args)
        finally:
            active[0] -= 1

    scheduler = BatchScheduler(
        decoder, run_step, batch_size=2, max_batch_wait=0.0, pack=False, lanes=2, express_seconds=15.0
    )
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)

    async def text(task_id: str, chunks: list[Chunk]) -> str:
        stream = await scheduler.transcribe(samples, chunks, TaskType.transcribe, options, task_id=task_id)
        async with aclosing(stream.segments) as segments:
            return "".join([segment.text async for segment in segments])

    long = asyncio.create_task(text("long", [Chunk(0.0, 11.0)] * 6))  # 66 s of speech
    deadline = time.monotonic() + 30
    while len(scheduler.history) == 0 and active[0] < 2:
        assert time.monotonic() < deadline and not long.done(), "the long task's batches never started"
        await asyncio.sleep(0.01)
    short = await asyncio.wait_for(text("short", [Chunk(0.0, 11.0)]), 30)  # both lanes still held
    assert not long.done() and active[0] == 2
    release.set()
    assert "your country" in normalize_en(await long)
    assert "fellow americans" in normalize_en(short)
    await scheduler.close()

    records = list(scheduler.history)
    assert records[0].express and records[0].rows == (("short", 0),)
    assert all(not r.express and {t for t, _ in r.rows} == {"long"} for r in records[1:]), records
    assert sum(len(r.rows) for r in records[1:]) == 6
    assert most[0] == 3  # two lanes and the express lane


async def test_a_segment_over_two_chunks_of_one_task_stays_whole() -> None:
    """Unpacking a window: a segment over neighbouring chunks of one task is kept (on that task's
    timeline, so nothing is decoded again); over chunks of two tasks both are decoded again."""
    loop = asyncio.get_running_loop()

    def job(task_id: str) -> _Job:
        return _Job(
            task_id=task_id,
            priority=1,
            sequence=0,
            samples=np.zeros(1, dtype=np.float32),
            task_type=TaskType.transcribe,
            options=DecodeOptions(),
            key=None,
            cancelled=lambda: False,
            language="en",
        )

    def item(owner: _Job, number: int, start: float) -> _Item:
        return _Item(owner, number, Chunk(start, start + 5.0), loop.create_future(), 0.0)

    def segment(start: float, end: float, text: str) -> Segment:
        return Segment(
            id=0,
            start=start,
            end=end,
            text=text,
            avg_logprob=-0.2,
            no_speech_prob=0.0,
            compression_ratio=1.0,
            temperature=0.0,
        )

    one = job("one")
    row = [item(one, 3, 10.0), item(one, 4, 20.0)]  # laid at 0 s and 7 s of the window
    spoken = [segment(0.2, 1.0, " a"), segment(1.0, 11.0, " b"), segment(11.0, 11.9, " c")]
    first, second = _unpack(row, [0.0, 7.0], spoken)
    assert first is not None and second is not None
    assert [(s.start, s.end, s.text) for s in first] == [(10.2, 11.0, " a"), (11.0, 24.0, " b")]
    assert [(s.start, s.end, s.text) for s in second] == [(24.0, 24.9, " c")]

    # Only the joined segment in the second chunk: not skipped, it is in the first one's text.
    first, second = _unpack(row, [0.0, 7.0], spoken[:2])
    assert second == [] and second is not SKIPPED and first is not None and len(first) == 2

    other = [item(one, 3, 10.0), item(job("two"), 0, 20.0)]
    assert _unpack(other, [0.0, 7.0], spoken) == [None, None]
