"""Cross-task batching of streams (``WHISPER__BATCH_SIZE`` > 1, the default)."""

from __future__ import annotations

import asyncio
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

from app.engines.batch_scheduler import BatchScheduler, PreparedAudio, StreamDroppedError
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.engines.model_resolver import ModelResolver
from app.schemas.task import DecodeOptions, TaskType
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done
from tests.engine_support import cpu_engine
from tests.engines.test_long_audio_and_parity import build_long_file, long_file_clips
from tests.long_audio import assert_clips_heard

pytestmark = pytest.mark.slow

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
    return make_settings(whisper={"batch_size": 8, **whisper})


def _prepared(
    samples: np.ndarray, seconds: list[tuple[float, float]], cuts: tuple[float, ...] = ()
) -> PreparedAudio:
    return PreparedAudio(
        samples,
        len(samples) / 16000,
        [(round(a * 100), round(b * 100)) for a, b in seconds],
        [round(cut * 100) for cut in cuts],
    )


async def test_ten_clips_at_once_each_transcript_is_its_own(
    make_settings: Callable[..., Settings], model_dir: Path, clips: dict[str, Clip]
) -> None:
    chosen = [clips[name] for name in TEN_CLIPS]
    async with running_app(_batching(make_settings)) as running:
        ids = [(await upload(running.client, clip.path, temperature="0")).json()["id"] for clip in chosen]
        tasks = await asyncio.gather(*(wait_done(running.client, task_id) for task_id in ids))
        (instance,) = running.container.pool.instances()
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
        batchers = [i.batcher for i in running.container.pool.instances() if i.batcher is not None]
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
    assert_clips_heard(segments, offsets)
    assert "ask not what your country can do for you" in normalize_en(long_task["result"]["text"])


@pytest.fixture(scope="module")
def tiny_en(model_dir: Path) -> FasterWhisperModel:
    return cpu_engine("tiny.en", ModelResolver(model_dir).resolve("tiny.en").location, 2)


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

    scheduler = BatchScheduler(decoder, run_step, batch_size=2, max_batch_wait=0.0)
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)
    whole = _prepared(samples, [(0.0, 11.0)])
    cancelled = False

    def submit(task_id: str, priority: int, **extra: Any) -> asyncio.Task[Any]:
        return asyncio.create_task(
            scheduler.transcribe(
                whole, TaskType.transcribe, options, task_id=task_id, priority=priority, **extra
            )
        )

    first = submit("low-a", 2)
    await asyncio.sleep(0.05)  # its first batch now waits for the device
    low_b = submit("low-b", 2)
    low_c = submit("low-c", 2)
    gone = submit("gone", 1, cancelled=lambda: cancelled)
    high = submit("high", 0)
    await asyncio.sleep(0.05)
    cancelled = True  # cancelled before its stream is batched
    hold.set()
    streams = await asyncio.gather(first, low_b, low_c, high)
    with pytest.raises(StreamDroppedError):
        await gone
    texts = []
    for stream in streams:
        async with aclosing(stream.segments) as segments:
            texts.append("".join([segment.text async for segment in segments]))
    await scheduler.close()

    rows = [tuple(task for task, _ in record.rows) for record in scheduler.history]
    assert rows[0] == ("low-a",)
    # High priority jumps the queue, then the oldest tasks first.
    assert rows[1:] == [("high", "low-b"), ("low-c",)]
    assert scheduler.pending_streams == 0 and scheduler.tasks == 0
    for text in texts:
        assert "fellow americans" in normalize_en(text) and "your country" in normalize_en(text), text


async def test_a_long_task_alone_is_split_at_pauses(
    tiny_en: FasterWhisperModel, clips: dict[str, Clip]
) -> None:
    """A lone long task fills the batch with streams cut at its pauses; the text comes back in
    order, every repetition of the clip in it, and progress counts every stream."""
    jfk = decode_audio(str(clips["jfk.flac"].path), sampling_rate=16000)
    pause = np.zeros(16000 * 2, dtype=np.float32)
    samples = np.concatenate([jfk, pause] * 12)
    period = (len(jfk) + len(pause)) / 16000
    cuts = tuple(period * n - 0.5 for n in range(1, 12))
    decoder = tiny_en.batch_decoder
    assert decoder is not None

    async def run_step(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    scheduler = BatchScheduler(decoder, run_step, batch_size=3, max_batch_wait=0.0)
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)
    stream = await scheduler.transcribe(
        _prepared(samples, [(0.0, len(samples) / 16000)], cuts), TaskType.transcribe, options, task_id="long"
    )
    async with aclosing(stream.segments) as segments:
        found = [segment async for segment in segments]
    await scheduler.close()
    assert stream.decoded() == 1.0
    assert max(len(record.rows) for record in scheduler.history) == 3
    starts = {start for record in scheduler.history for _task, start in record.rows}
    assert len(starts) == 3 and all(any(abs(s - round(c * 100)) <= 1 for c in cuts) for s in starts if s)
    assert [s.start for s in found] == sorted(s.start for s in found)
    assert [s.id for s in found] == list(range(len(found)))
    text = normalize_en("".join(s.text for s in found))
    assert text.count("ask not what your country can do for you") == 12, text


async def test_deleting_a_running_task_drops_its_streams(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    long_file = tmp_path / "long.wav"
    build_long_file([clips[name] for name in TEN_CLIPS], long_file, total_seconds=300.0)
    settings = _batching(make_settings, batch_size=2, load_mode="eager", min_size=1)
    async with running_app(settings) as running:
        (instance,) = running.container.pool.instances()
        batcher = instance.batcher
        assert batcher is not None
        task_id = (await upload(running.client, long_file, temperature="0")).json()["id"]
        while not batcher.history:  # noqa: ASYNC110 (its first batches run)
            await asyncio.sleep(0.02)
        assert (await running.client.delete(f"/api/v1/tasks/{task_id}")).status_code == 204
        batches = len(batcher.history)
        processor = running.container.processor
        assert processor is not None
        while batcher.tasks or processor.running_task_ids:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        # At most the batches in flight (two lanes) ran after the deletion, of the 300 s file's
        # ten-odd windows.
        assert len(batcher.history) <= batches + 2, list(batcher.history)
        assert batcher.pending_streams == 0
        assert (await running.client.get(f"/api/v1/tasks/{task_id}")).status_code == 404


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
    job = asyncio.create_task(
        scheduler.transcribe(_prepared(samples, [(0.0, 11.0)]), TaskType.transcribe, options)
    )
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

    scheduler = BatchScheduler(decoder, run_step, batch_size=2, max_batch_wait=0.0)
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)

    async def one(task_id: str) -> str:
        stream = await scheduler.transcribe(
            _prepared(samples, [(0.0, 11.0)]), TaskType.transcribe, options, task_id=task_id
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

    long_samples = np.concatenate([samples, np.zeros(32000, dtype=np.float32)] * 12)

    async def run_step(fn: Callable[..., Any], rows: list[Any], *args: Any) -> Any:
        active[0] += 1
        most[0] = max(most[0], active[0])
        try:
            if any(row.samples is long_samples for row in rows):
                await release.wait()  # the long task's batches hold their lanes
            return await asyncio.to_thread(fn, rows, *args)
        finally:
            active[0] -= 1

    scheduler = BatchScheduler(
        decoder, run_step, batch_size=2, max_batch_wait=0.0, lanes=2, express_seconds=15.0
    )
    options = DecodeOptions(language="en", temperature=0.0, beam_size=1)

    async def text(task_id: str, audio: PreparedAudio) -> str:
        stream = await scheduler.transcribe(audio, TaskType.transcribe, options, task_id=task_id)
        async with aclosing(stream.segments) as segments:
            return "".join([segment.text async for segment in segments])

    period = len(long_samples) / 12 / 16000
    cuts = tuple(period * n - 0.5 for n in range(1, 12))
    long_audio = _prepared(long_samples, [(0.0, len(long_samples) / 16000)], cuts)
    long = asyncio.create_task(text("long", long_audio))  # 156 s: four streams, two per lane
    deadline = time.monotonic() + 30
    while len(scheduler.history) == 0 and active[0] < 2:
        assert time.monotonic() < deadline and not long.done(), "the long task's batches never started"
        await asyncio.sleep(0.01)
    short = await asyncio.wait_for(
        text("short", _prepared(samples, [(0.0, 11.0)])), 30
    )  # both lanes still held
    assert not long.done() and active[0] == 2
    release.set()
    assert "your country" in normalize_en(await long)
    assert "fellow americans" in normalize_en(short)
    await scheduler.close()

    records = list(scheduler.history)
    assert records[0].express and records[0].rows == (("short", 0),)
    assert all(not r.express and {t for t, _ in r.rows} == {"long"} for r in records[1:]), records
    assert max(len(r.rows) for r in records[1:]) == 2
    assert most[0] == 3  # two lanes and the express lane
