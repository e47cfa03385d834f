"""The model pool with real models: lazy loading, unload, failed loads, idle TTL, OOM rebuild, devices."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from app.engines.devices import Device, cpu_threads_per_instance, parse_devices
from app.engines.factory import ModelFactory
from app.engines.model_pool import AsyncModelPool, ModelUnavailableError
from app.engines.model_resolver import ModelResolver
from app.schemas.model import InstanceState
from app.schemas.task import DecodeOptions, TaskType
from config.settings import Settings
from tests.conftest import Clip, normalize_en, running_app, upload, wait_done


def _pool(settings: Settings, **overrides: Any) -> AsyncModelPool:
    whisper = settings.whisper.model_copy(update=overrides)
    return AsyncModelPool(whisper, ModelFactory(whisper, ModelResolver(whisper.model_dir)))


def test_device_parsing() -> None:
    assert parse_devices("auto", cuda_count=0) == [Device("cpu")]
    assert parse_devices("auto", cuda_count=2) == [Device("cuda", 0), Device("cuda", 1)]
    assert parse_devices("cuda:0,cuda:1", cuda_count=2) == [Device("cuda", 0), Device("cuda", 1)]
    assert parse_devices("cpu,cuda:1", cuda_count=2) == [Device("cpu"), Device("cuda", 1)]
    with pytest.raises(ValueError, match="does not exist"):
        parse_devices("cuda:3", cuda_count=2)
    with pytest.raises(ValueError, match="no CUDA device"):
        parse_devices("cuda", cuda_count=0)
    with pytest.raises(ValueError, match="unknown device"):
        parse_devices("tpu:0", cuda_count=0)


def test_cpu_threads_never_oversubscribe() -> None:
    assert cpu_threads_per_instance(0, 1, cores=2) == 2
    assert cpu_threads_per_instance(0, 2, cores=2) == 1
    assert cpu_threads_per_instance(4, 2, cores=2) == 1
    assert cpu_threads_per_instance(1, 1, cores=16) == 1
    assert cpu_threads_per_instance(0, 4, cores=16) == 4
    for configured in range(0, 9):
        for instances in range(1, 5):
            threads = cpu_threads_per_instance(configured, instances, cores=8)
            assert threads >= 1 and (threads * instances <= 8 or threads == 1)


@pytest.mark.slow
async def test_lazy_load_lease_and_unload_frees_instance(make_settings: Callable[..., Settings]) -> None:
    pool = _pool(make_settings(), load_mode="lazy", min_size=0, devices="cpu")
    await pool.start()
    try:
        assert pool.instances() == [], "lazy mode loads nothing up front"
        async with pool.lease("tiny.en") as lease:
            instance = lease.instance
            assert instance.state is InstanceState.ready and instance.leases == 1
            assert instance.threads * pool._settings.instances_per_device <= 2
            model_ref = weakref.ref(lease.model)
        assert len(pool.instances()) == 1
        assert await pool.unload("tiny.en") == 1
        gc.collect()
        assert pool.instances() == []
        assert model_ref() is None, "unload must drop the last reference to the weights"
    finally:
        await pool.stop()


@pytest.mark.slow
async def test_eager_mode_loads_min_size_with_warm_up(make_settings: Callable[..., Settings]) -> None:
    pool = _pool(make_settings(), load_mode="eager", min_size=1, default_model="tiny.en", devices="cpu")
    await pool.start()
    try:
        [instance] = pool.instances()
        assert instance.state is InstanceState.ready and instance.memory_bytes is not None
        assert instance.loaded_at is not None
    finally:
        await pool.stop()


async def test_idle_ttl_unloads_above_the_floor(make_settings: Callable[..., Settings]) -> None:
    pool = _pool(make_settings(), load_mode="lazy", min_size=0, idle_ttl_seconds=0.2, devices="cpu")
    await pool.start()
    try:
        async with pool.lease("tiny.en"):
            pass
        assert len(pool.instances()) == 1
        await asyncio.sleep(0.3)
        await pool.maintain_once()
        assert pool.instances() == []
    finally:
        await pool.stop()


@pytest.mark.slow
async def test_failed_load_is_reported_and_retried(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"these are not weights")
    settings = make_settings(whisper={"allowed_models": ["tiny.en", str(broken)], "load_retry_seconds": 0.3})
    async with running_app(settings) as running:
        client = running.client
        response = await client.post(f"/api/v1/models/{broken}/load")
        assert response.status_code == 503, response.text
        health = (await client.get("/api/v1/health")).json()
        assert health["status"] == "degraded"
        assert f"faster_whisper/{broken}" in health["model_errors"]
        listed = {m["name"]: m for m in (await client.get("/api/v1/models")).json()["models"]}
        assert listed[str(broken)]["last_error"] and listed[str(broken)]["desired"] == 1

        # A task for the broken model fails with the reason; other models keep working.
        task_id = (await upload(client, clips["goforward.wav"].path, model=str(broken))).json()["id"]
        failed = await wait_done(client, task_id)
        assert failed["status"] == "failed" and "could not be loaded" in failed["error"]
        ok_id = (await upload(client, clips["goforward.wav"].path)).json()["id"]
        assert (await wait_done(client, ok_id))["status"] == "completed"

        # The pool keeps its desired size and retries; once the weights are fixed it recovers.
        for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
            source = Path(running.container.pool._factory._resolver.resolve("tiny.en").location) / name
            (broken / name).write_bytes(source.read_bytes())
        for _ in range(100):
            await asyncio.sleep(0.1)
            listed = {m["name"]: m for m in (await client.get("/api/v1/models")).json()["models"]}
            if listed[str(broken)]["loaded"] == 1:
                break
        assert listed[str(broken)]["loaded"] == 1 and listed[str(broken)]["last_error"] is None
        assert (await client.get("/api/v1/health")).json()["status"] == "ok"


@pytest.mark.slow
async def test_models_endpoints(make_settings: Callable[..., Settings]) -> None:
    async with running_app(make_settings()) as running:
        client = running.client
        pool = (await client.get("/api/v1/models")).json()
        assert pool["devices"] == ["cpu"] and pool["cpu_threads"] >= 1
        names = {m["name"]: m for m in pool["models"]}
        assert {"base", "tiny.en"} <= set(names) and names["tiny.en"]["loaded"] == 0

        loaded = await client.post("/api/v1/models/tiny.en/load")
        assert loaded.status_code == 200, loaded.text
        body = loaded.json()
        assert body["loaded"] == 1 and body["idle"] == 1 and body["busy"] == 0
        [instance] = body["instances"]
        assert instance["device"] == "cpu" and instance["memory_bytes"] is not None
        assert instance["state"] == "ready" and instance["busy"] is False

        unloaded = (await client.post("/api/v1/models/tiny.en/unload")).json()
        assert unloaded["loaded"] == 0 and unloaded["instances"] == []
        assert (await client.post("/api/v1/models/large-v3/load")).status_code == 422
        assert (await client.post("/api/v1/models/nope/unload")).status_code == 404
        health = (await client.get("/api/v1/health")).json()
        assert "pool" in health and health["pool"]["max_size"] == 1


@pytest.mark.slow
async def test_out_of_memory_fails_one_task_and_rebuilds_instance(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(make_settings(whisper={"batch_size": 1})) as running:  # the sequential path
        client = running.client
        first = (await upload(client, clips["goforward.wav"].path)).json()["id"]
        assert (await wait_done(client, first))["status"] == "completed"
        [instance] = running.container.pool.instances()
        model = instance.model
        assert model is not None
        real = model.start
        calls = {"n": 0}

        def out_of_memory_once(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("CUDA failed with error out of memory")
            return real(*args, **kwargs)

        monkeypatch.setattr(model, "start", out_of_memory_once)
        doomed = (await upload(client, clips["goforward.wav"].path)).json()["id"]
        failed = await wait_done(client, doomed)
        assert failed["status"] == "failed" and "out of memory" in failed["error"]
        for _ in range(100):
            instances = running.container.pool.instances()
            if instances and instances[0] is not instance and instances[0].state is InstanceState.ready:
                break
            await asyncio.sleep(0.1)
        [rebuilt] = running.container.pool.instances()
        assert rebuilt is not instance and instance.model is None, "the instance was rebuilt"
        after = (await upload(client, clips["goforward.wav"].path)).json()["id"]
        assert (await wait_done(client, after))["status"] == "completed"


@pytest.mark.slow
async def test_lease_waits_while_instances_are_busy(make_settings: Callable[..., Settings]) -> None:
    pool = _pool(make_settings(), load_mode="lazy", min_size=0, devices="cpu", instances_per_device=1)
    await pool.start()
    try:
        order: list[str] = []

        async def step(name: str) -> None:
            async with pool.lease("tiny.en") as lease:
                await lease.run(lambda: order.append(f"{name}-start") or __import__("time").sleep(0.2))
                order.append(f"{name}-end")

        await asyncio.gather(step("a"), step("b"), step("c"))
        assert len(order) == 6 and pool.peak_running[Device("cpu")] == 1
        assert len(pool.instances()) == 1, "max_size 1: everyone shares the single instance"
    finally:
        await pool.stop()


@pytest.mark.slow
async def test_a_short_task_does_not_wait_for_a_long_tasks_step(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    """The express lane of the sequential path: a short task's steps skip the device gate (so it
    is decoded beside the window a long file is decoding, not after it), and the long file's
    next step waits until the short task's step is done."""
    pool = _pool(make_settings(), load_mode="lazy", min_size=0, devices="cpu", instances_per_device=1)
    await pool.start()
    cpu = Device("cpu")
    release = threading.Event()
    try:
        async with pool.lease("tiny.en") as long_task, pool.lease("tiny.en") as short_task:
            assert long_task.instance is short_task.instance
            # A long file's step holds the device gate until released.
            holding = threading.Event()

            def hold() -> None:
                holding.set()
                release.wait(30.0)

            held = asyncio.create_task(long_task.run(hold))
            assert await asyncio.to_thread(holding.wait, 10.0)
            clip = clips["jfk.flac"]
            decoding = await short_task.transcribe(
                clip.path,
                TaskType.transcribe,
                DecodeOptions(),
                task_id="short",
                priority=1,
                cancelled=lambda: False,
                media_seconds=clip.duration,
            )
            async with aclosing(decoding.segments) as segments:
                text = "".join([segment.text async for segment in segments])
            assert not held.done(), "the short task finished while the long task's step still ran"
            assert pool.peak_running[cpu] == 2
            assert "ask not what your country" in normalize_en(text)
            release.set()
            await held

            # While a short task's step runs, the long task's next step waits for it.
            order: list[str] = []
            short_started, express_release = threading.Event(), threading.Event()

            def short_step() -> None:
                order.append("short-start")
                short_started.set()
                express_release.wait(30.0)
                order.append("short-end")

            short = asyncio.create_task(short_task.run(short_step, express=True))
            assert await asyncio.to_thread(short_started.wait, 10.0)
            long = asyncio.create_task(long_task.run(order.append, "long"))
            await asyncio.sleep(0.5)
            assert order == ["short-start"], "the long task's step waited for the short one"
            express_release.set()
            await asyncio.gather(short, long)
            assert order == ["short-start", "short-end", "long"]
    finally:
        release.set()
        await pool.stop()


async def test_unknown_model_is_unavailable_not_hanging(make_settings: Callable[..., Settings]) -> None:
    pool = _pool(make_settings(), load_mode="lazy", min_size=0, allowed_models=["/nonexistent/model-dir"])
    await pool.start()
    try:
        with pytest.raises(ModelUnavailableError):
            async with asyncio.timeout(60), pool.lease("/nonexistent/model-dir"):
                pass
    finally:
        await pool.stop()


def test_cuda_compute_types_and_device_placement(make_settings: Callable[..., Settings]) -> None:
    whisper = make_settings().whisper
    assert whisper.resolved_compute_type("cuda") == "float16"
    assert whisper.resolved_compute_type("cpu") == "int8"
    mixed = whisper.model_copy(update={"compute_type": "int8_float16"})
    assert mixed.resolved_compute_type("cuda") == "int8_float16"
    # Two GPUs, two instances each: a model spreads over both devices before doubling up.
    pool = AsyncModelPool(
        whisper.model_copy(update={"instances_per_device": 2}),
        ModelFactory(whisper, ModelResolver(whisper.model_dir)),
        devices=parse_devices("cuda:0,cuda:1", cuda_count=2),
    )
    assert pool.max_size == 4
    key = pool.check_allowed("tiny.en", "faster_whisper")
    placed = [pool._placeholder(key).device.name for _ in range(4)]
    assert placed == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert all(instance.threads == 1 for instance in pool.instances())
