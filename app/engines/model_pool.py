"""AsyncModelPool: model instances spread over devices, leased to tasks without blocking the loop.

* Each (engine, model) pair has up to ``max_size`` instances, at most ``instances_per_device``
  on each device; instances load eagerly (``min_size`` of the default model) or on first use.
* A task holds a *lease* on one instance for its whole run, and runs each inference step
  through the lease. Steps go through a per-device gate of ``instances_per_device`` slots, so
  the threads in use never exceed what the device was planned for, and steps of concurrent
  tasks interleave fairly (FIFO) instead of one long file holding a device to itself. A short
  task (``express_seconds``) skips the gate on the instance's second worker, so it never waits
  for a long file's window (``_run_step``).
* When the pool's last lease ends, the heap memory the workers freed goes back to the system
  (``heap.trim_heap``).
* Loads run one at a time in a worker thread, with a warm-up inference. A failed load is
  recorded (health shows it) and retried by the maintenance loop while the pool is below its
  desired size; it never silently shrinks the pool.
* Idle instances above the floor are unloaded after ``idle_ttl_seconds``.
* An out-of-memory error fails only the step's task; the instance is drained, closed and
  rebuilt on the same device.
* With ``batch_size`` > 1 every faster-whisper instance gets a ``BatchScheduler``
  (``app.engines.batch_scheduler``): the tasks leasing it hand over their audio as streams, and
  each batch (the next window of many streams, of many tasks) is one inference step. The scheduler
  bounds its own batches (``batch_lanes`` plus the express lane per instance) instead of the
  device gate; such an instance is loaded with that many CTranslate2 workers (shared weights).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.background import BackgroundLoop
from app.engines.base import SAMPLE_RATE, BatchCapableModel, SpeechModel, TranscriptionStream
from app.engines.batch_scheduler import BatchScheduler
from app.engines.devices import Device, cpu_threads_per_instance, parse_devices
from app.engines.factory import ModelFactory
from app.engines.heap import trim_heap
from app.engines.longform import streams_supported
from app.schemas.model import InstanceState
from app.schemas.result import Segment
from app.schemas.task import DecodeOptions, TaskType
from config.engines import ENGINES, engine_for_model
from config.settings import WhisperSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

EXPRESS_YIELD_SECONDS = 2.0
"""Longest a long task's step waits for a short task's express step (so that a stream of short
tasks cannot stall a long file)."""


class ModelNotAllowedError(ValueError):
    """The model or engine is not in the configured allowlist."""


class ModelUnavailableError(RuntimeError):
    """No instance could be loaded; the pool keeps retrying in the background."""


@dataclass(frozen=True)
class ModelKey:
    engine: str
    model: str


@dataclass(eq=False)
class ModelInstance:
    key: ModelKey
    device: Device
    number: int
    threads: int
    state: InstanceState = InstanceState.loading
    model: SpeechModel | None = None
    leases: int = 0
    running: int = 0
    rebuild: bool = False
    loaded_at: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    memory_bytes: int | None = None
    batcher: BatchScheduler | None = None
    """Cross-task batch scheduler of this instance, when batching applies to it."""

    @property
    def id(self) -> str:
        return f"{self.key.engine}/{self.key.model}@{self.device.name}#{self.number}"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return "out of memory" in text or "outofmemory" in text


def _process_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _device_memory_used(device: Device) -> int | None:
    try:
        if device.kind == "cpu":
            return _process_rss()
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info(device.index)
            return int(total - free)
    except Exception:
        return None
    return None


@dataclass
class Decoding:
    """A task's transcription under way on its lease: what is known up front, and the segments
    in order as they are decoded."""

    language: str | None
    language_probability: float | None
    duration: float
    segments: AsyncGenerator[Segment, None]
    """Read it inside ``contextlib.aclosing``, so that leaving early stops the decoding."""
    decoded: Callable[[], float] | None = None
    """The share (0 to 1) of the task's audio already decoded, when parts of it are decoded side
    by side (batched); ``None``: the end of the latest segment tells."""


class Lease:
    """A task's hold on one instance. ``run`` executes a blocking step in a worker thread."""

    def __init__(self, pool: AsyncModelPool, instance: ModelInstance) -> None:
        self._pool = pool
        self.instance = instance

    @property
    def model(self) -> SpeechModel:
        model = self.instance.model
        if model is None:
            raise ModelUnavailableError(f"{self.instance.id} is not loaded")
        return model

    async def run(self, fn: Callable[..., T], *args: Any, express: bool = False) -> T:
        return await self._pool._run_step(self.instance, fn, *args, express=express)

    async def transcribe(
        self,
        audio: Path,
        task_type: TaskType,
        options: DecodeOptions,
        *,
        task_id: str,
        priority: int,
        cancelled: Callable[[], bool],
        media_seconds: float | None = None,
    ) -> Decoding:
        """Start decoding a task's ``audio``: in the instance's batches with other tasks' audio
        when it batches, else one step (one window) at a time through the device gate, its audio
        prepared outside the gate first (faster-whisper).

        ``media_seconds``, the probed length, lets a short file take the express queue (see
        ``_prepare``); ``cancelled`` is asked before each batch, and drops the task's streams."""
        model = self.model
        if not isinstance(model, BatchCapableModel):
            return self._stepwise(await self.run(model.transcribe, audio, task_type, options), express=False)
        express = media_seconds is not None and media_seconds <= self._pool.express_seconds
        batcher = self.instance.batcher
        if batcher is None or not streams_supported(options):
            prepared = await self._prepare(None, model.prepare, audio, options, express=express)
            stream = await self.run(model.start, prepared, task_type, options, express=express)
            return self._stepwise(stream, express=express)
        prepared = await self._prepare(
            batcher,
            model.prepare,
            audio,
            options,
            None if express else batcher.yield_to_short,  # a short task would wait on itself
            express=express,
        )
        batched = await batcher.transcribe(
            prepared, task_type, options, task_id=task_id, priority=priority, cancelled=cancelled
        )
        return Decoding(
            batched.language,
            batched.language_probability,
            prepared.duration,
            batched.segments,
            batched.decoded,
        )

    async def _prepare(
        self, batcher: BatchScheduler | None, fn: Callable[..., T], *args: Any, express: bool
    ) -> T:
        """Run CPU-side preparation (decoding, VAD, the recording's level) in a worker thread
        outside the device gate, one at a time per device, so that the device decodes other
        tasks' windows meanwhile. With a scheduler it waits its turn for the scheduler's room for
        more audio first. ``express`` (a short file) takes a queue of its own, so a short clip is
        not prepared after the seconds a long file's preparation takes."""
        gates = self._pool._express_prep_gates if express else self._pool._prep_gates
        if batcher is None:
            async with gates[self.instance.device]:
                return await asyncio.to_thread(fn, *args)
        async with batcher.arriving(short=express), gates[self.instance.device]:
            await batcher.room()
            return await asyncio.to_thread(fn, *args)

    def _stepwise(self, stream: TranscriptionStream, *, express: bool) -> Decoding:
        """A sequential transcription whose segments are decoded one step at a time through the
        lease (``express``: on the express lane)."""
        return Decoding(
            stream.language,
            stream.language_probability,
            stream.duration,
            self._steps(stream.segments, express=express),
        )

    async def _steps(self, segments: Iterator[Segment], *, express: bool) -> AsyncGenerator[Segment, None]:
        """A lazy segment iterator, advanced one step (one segment) at a time through the lease."""
        while True:
            segment = await self.run(next, segments, None, express=express)
            if segment is None:
                return
            yield segment


class AsyncModelPool:
    def __init__(
        self,
        settings: WhisperSettings,
        factory: ModelFactory,
        *,
        devices: list[Device] | None = None,
        cores: int | None = None,
    ) -> None:
        self._settings = settings
        self._factory = factory
        self.devices = devices if devices is not None else parse_devices(settings.devices)
        self.cpu_threads = cpu_threads_per_instance(
            settings.cpu_threads, settings.instances_per_device, cores
        )
        self._gates = {device: asyncio.Semaphore(settings.instances_per_device) for device in self.devices}
        self._prep_gates = {device: asyncio.Semaphore(1) for device in self.devices}
        self._express_prep_gates = {device: asyncio.Semaphore(1) for device in self.devices}
        self._express_gates = {device: asyncio.Semaphore(1) for device in self.devices}
        self._express_idle = {device: asyncio.Event() for device in self.devices}
        for idle in self._express_idle.values():
            idle.set()
        self._running_on: dict[Device, int] = dict.fromkeys(self.devices, 0)
        self.peak_running: dict[Device, int] = dict.fromkeys(self.devices, 0)
        self._instances: dict[ModelKey, list[ModelInstance]] = {}
        self._desired: dict[ModelKey, int] = {}
        self.failures: dict[ModelKey, str] = {}
        self._failed_at: dict[ModelKey, float] = {}
        self._cond = asyncio.Condition()
        self._load_lock = asyncio.Lock()
        self._numbers = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()
        interval = min(5.0, max(0.2, (settings.idle_ttl_seconds or 60.0) / 4))
        self._maintenance = BackgroundLoop(
            "model-pool-maintenance",
            self.maintain_once,
            interval=min(interval, settings.load_retry_seconds),
            wait_first=True,
            failure="model pool maintenance failed",
            log=logger,
        )
        if settings.cpu_threads and settings.cpu_threads != self.cpu_threads:
            logger.warning(
                "cpu_threads=%d × %d instance(s) would oversubscribe the cores; using %d",
                settings.cpu_threads,
                settings.instances_per_device,
                self.cpu_threads,
            )

    # ------------------------------------------------------------------ configuration
    @property
    def default_key(self) -> ModelKey:
        return ModelKey(self._settings.engine, self._settings.default_model)

    @property
    def max_size(self) -> int:
        capacity = len(self.devices) * self._settings.instances_per_device
        return min(self._settings.max_size, capacity) if self._settings.max_size else capacity

    @property
    def batches_across_tasks(self) -> bool:
        return self._settings.batch_size > 1

    @property
    def task_capacity(self) -> int:
        """Tasks worth running at once so batches can fill: ``batch_size`` rows per lane of
        each possible instance."""
        if not self.batches_across_tasks:
            return 1
        instances = len(self.devices) * self._settings.instances_per_device
        return self._settings.batch_size * instances * self._settings.batch_lanes

    def check_allowed(self, model: str, engine: str) -> ModelKey:
        """The key of ``model`` on ``engine`` when a task may use it; ``ModelNotAllowedError`` says
        why not (not in the allowlists, not the engine's own model, or the engine cannot run here)."""
        if engine not in self._settings.allowed_engines:
            raise ModelNotAllowedError(
                f"engine {engine!r} is not allowed; choose one of {self._settings.allowed_engines}"
            )
        own_model = ENGINES[engine].own_model
        if own_model is not None and model != own_model:
            raise ModelNotAllowedError(f"the {engine} engine runs only the model {own_model!r}")
        if own_model is None and model not in self._settings.allowed_models:
            raise ModelNotAllowedError(
                f"model {model!r} is not allowed; choose one of {self._settings.allowed_models}"
            )
        problem = self._factory.unavailable(engine)
        if problem is not None:
            raise ModelNotAllowedError(f"the {engine} engine is unavailable: {problem}")
        return ModelKey(engine, model)

    def unsupported(self, engine: str, task_type: TaskType, options: DecodeOptions) -> str | None:
        """Why ``engine`` cannot serve this request, or ``None``."""
        return self._factory.unsupported(engine, task_type, options)

    def engine_problems(self) -> dict[str, str | None]:
        """Each allowed engine and why it cannot run here (``None`` when it can)."""
        return {engine: self._factory.unavailable(engine) for engine in self._settings.allowed_engines}

    def keys(self) -> list[ModelKey]:
        keys = [ModelKey(self._settings.engine, model) for model in self._settings.allowed_models]
        keys.extend(key for key in self._instances if key not in keys)
        return keys

    def instances(self, key: ModelKey | None = None) -> list[ModelInstance]:
        if key is not None:
            return list(self._instances.get(key, []))
        return [instance for group in self._instances.values() for instance in group]

    def desired(self, key: ModelKey) -> int:
        return self._desired.get(key, 0)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._desired[self.default_key] = min(self._settings.min_size, self.max_size)
        if self._settings.load_mode == "eager":
            await self._fill(self.default_key)
        self._maintenance.start()

    async def stop(self) -> None:
        await self._maintenance.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        async with self._cond:
            instances = self.instances()
            self._instances.clear()
        for instance in instances:
            await self._close(instance)

    # ------------------------------------------------------------------ leasing
    @asynccontextmanager
    async def lease(self, model: str, engine: str | None = None) -> AsyncIterator[Lease]:
        """Hold an instance of ``model`` for a task; waits (never fails) while all are busy."""
        key = self.check_allowed(model, engine or self._settings.engine)
        instance = await self._acquire(key)
        try:
            yield Lease(self, instance)
        finally:
            await self._release(instance)

    async def _acquire(self, key: ModelKey) -> ModelInstance:
        while True:
            to_load: ModelInstance | None = None
            async with self._cond:
                group = self._instances.setdefault(key, [])
                ready = [i for i in group if i.state is InstanceState.ready]
                loading = [i for i in group if i.state is InstanceState.loading]
                idle = [i for i in ready if i.leases == 0]
                if idle:
                    return self._take(min(idle, key=lambda i: i.last_used))
                can_grow = len(ready) + len(loading) < self.max_size and not loading
                if can_grow and not self._failed_recently(key):
                    to_load = self._placeholder(key)
                elif ready:
                    return self._take(min(ready, key=lambda i: (i.leases, i.running)))
                elif not loading and key in self.failures:
                    raise ModelUnavailableError(
                        f"{key.engine}/{key.model} could not be loaded: {self.failures[key]}"
                    )
                else:
                    await self._cond.wait()
                    continue
            await self._load(to_load)

    def _take(self, instance: ModelInstance) -> ModelInstance:
        instance.leases += 1
        instance.last_used = time.monotonic()
        return instance

    async def _release(self, instance: ModelInstance) -> None:
        close = False
        async with self._cond:
            instance.leases -= 1
            instance.last_used = time.monotonic()
            if instance.state is InstanceState.draining and instance.leases == 0:
                self._forget(instance)
                close = True
            idle = all(other.leases == 0 for other in self.instances())
            self._cond.notify_all()
        if close:
            await self._close(instance)
            if instance.rebuild:
                self._spawn(self._load(self._placeholder(instance.key, instance.device)))
        if idle:  # the activations the workers' threads freed go back to the system
            await asyncio.to_thread(trim_heap)

    @property
    def express_seconds(self) -> float:
        """Tasks with at most this many seconds of audio take the express lane (0: none do)."""
        return self._settings.express_seconds

    async def _run_step(
        self,
        instance: ModelInstance,
        fn: Callable[..., T],
        *args: Any,
        gated: bool = True,
        express: bool = False,
    ) -> T:
        """Run ``fn`` in a worker thread as one inference step on ``instance``: through the
        device gate, unless the caller bounds its own steps (``gated=False``: batch schedulers).

        ``express`` (a short task's step on the sequential path) skips the device gate, one at a
        time per device, on the instance's second CTranslate2 worker: it runs at once, beside
        the one step of a long file that may be under way, instead of after it. A gated step
        waits (at most ``EXPRESS_YIELD_SECONDS``) while an express step runs, so the short task
        then has the cores to itself."""
        device = instance.device
        if express:
            async with self._express_gates[device]:
                self._express_idle[device].clear()
                try:
                    return await self._in_thread(instance, fn, *args)
                finally:
                    self._express_idle[device].set()
        if gated:
            with suppress(TimeoutError):
                async with asyncio.timeout(EXPRESS_YIELD_SECONDS):
                    await self._express_idle[device].wait()
        async with self._gates[device] if gated else nullcontext():
            return await self._in_thread(instance, fn, *args)

    async def _in_thread(self, instance: ModelInstance, fn: Callable[..., T], *args: Any) -> T:
        device = instance.device
        instance.running += 1
        self._running_on[device] += 1
        self.peak_running[device] = max(self.peak_running[device], self._running_on[device])
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            if is_out_of_memory(exc):
                logger.error("%s ran out of memory; it will be rebuilt", instance.id)
                await self._retire(instance, rebuild=True)
            raise
        finally:
            instance.running -= 1
            self._running_on[device] -= 1
            instance.last_used = time.monotonic()

    # ------------------------------------------------------------------ loading and unloading
    def _placeholder(self, key: ModelKey, device: Device | None = None) -> ModelInstance:
        if device is None:
            device = self._pick_device(key)
        instance = ModelInstance(
            key=key,
            device=device,
            number=next(self._numbers),
            threads=self.cpu_threads if device.kind == "cpu" else 1,
        )
        self._instances.setdefault(key, []).append(instance)
        return instance

    def _pick_device(self, key: ModelKey) -> Device:
        group = self._instances.get(key, [])
        per_device = self._settings.instances_per_device

        def load(device: Device) -> tuple[int, int]:
            mine = sum(1 for i in group if i.device == device)
            everyone = sum(1 for i in self.instances() if i.device == device)
            return mine, everyone

        candidates = [d for d in self.devices if load(d)[0] < per_device] or self.devices
        return min(candidates, key=load)

    def _failed_recently(self, key: ModelKey) -> bool:
        failed_at = self._failed_at.get(key)
        return failed_at is not None and time.monotonic() - failed_at < self._settings.load_retry_seconds

    async def _load(self, instance: ModelInstance) -> None:
        key = instance.key
        async with self._load_lock:
            before = _device_memory_used(instance.device)
            try:
                model = await asyncio.to_thread(
                    self._factory.create, key.engine, key.model, instance.device, instance.threads
                )
                if self._settings.warmup:
                    await asyncio.to_thread(_warm_up, model)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                logger.error("loading %s failed: %s", instance.id, message)
                async with self._cond:
                    self._forget(instance)
                    self.failures[key] = message
                    self._failed_at[key] = time.monotonic()
                    self._cond.notify_all()
                return
            after = _device_memory_used(instance.device)
        async with self._cond:
            instance.model = model
            instance.batcher = self._batcher(instance, model)
            instance.memory_bytes = after - before if after is not None and before is not None else None
            instance.loaded_at = time.time()
            instance.last_used = time.monotonic()
            if instance.state is InstanceState.loading:
                instance.state = InstanceState.ready
            self.failures.pop(key, None)
            self._failed_at.pop(key, None)
            self._cond.notify_all()
        logger.info("%s is ready", instance.id)

    def _batcher(self, instance: ModelInstance, model: SpeechModel) -> BatchScheduler | None:
        if not self.batches_across_tasks or not isinstance(model, BatchCapableModel):
            return None
        decoder = model.batch_decoder
        if decoder is None:
            return None
        # The scheduler bounds its own batches (lanes + express), so they skip the device gate.
        return BatchScheduler(
            decoder,
            partial(self._run_step, instance, gated=False),
            batch_size=self._settings.batch_size,
            max_batch_wait=self._settings.max_batch_wait_ms / 1000,
            lanes=self._settings.batch_lanes,
            express_seconds=self._settings.express_seconds,
        )

    def _forget(self, instance: ModelInstance) -> None:
        group = self._instances.get(instance.key, [])
        if instance in group:
            group.remove(instance)

    async def _close(self, instance: ModelInstance) -> None:
        batcher, instance.batcher = instance.batcher, None
        if batcher is not None:
            await batcher.close()
        model, instance.model = instance.model, None
        if model is not None:
            await asyncio.to_thread(model.close)
            del model
            gc.collect()
            logger.info("%s unloaded", instance.id)

    async def _retire(self, instance: ModelInstance, *, rebuild: bool) -> None:
        async with self._cond:
            if instance.state is InstanceState.draining:
                return
            instance.state = InstanceState.draining
            instance.rebuild = rebuild
            self._cond.notify_all()

    async def _fill(self, key: ModelKey) -> None:
        """Load instances until ``key`` has its desired count (or a load fails)."""
        while True:
            async with self._cond:
                group = self._instances.get(key, [])
                active = [i for i in group if i.state in (InstanceState.ready, InstanceState.loading)]
                if len(active) >= min(self.desired(key), self.max_size):
                    return
                instance = self._placeholder(key)
            await self._load(instance)
            if key in self.failures:
                return

    async def load(self, model: str, engine: str | None = None) -> ModelKey:
        """Make sure at least one instance of ``model`` is loaded and kept (API: load); without an
        engine, the engine whose own model it is (``sensevoice``), else the default engine."""
        key = self.check_allowed(model, engine or engine_for_model(model) or self._settings.engine)
        self._desired[key] = max(self.desired(key), 1)
        await self._fill(key)
        if not any(i.state is InstanceState.ready for i in self.instances(key)) and key in self.failures:
            raise ModelUnavailableError(f"{key.engine}/{key.model} could not be loaded: {self.failures[key]}")
        return key

    async def unload(self, model: str, engine: str | None = None) -> int:
        """Unload every instance of ``model``; leased ones close when their task ends. Returns the count."""
        engines = [engine] if engine else self._settings.allowed_engines
        closing: list[ModelInstance] = []
        count = 0
        async with self._cond:
            for name in engines:
                key = ModelKey(name, model)
                self._desired[key] = 0
                self.failures.pop(key, None)
                self._failed_at.pop(key, None)
                for instance in list(self._instances.get(key, [])):
                    if instance.state is InstanceState.loading:
                        continue
                    count += 1
                    if instance.leases == 0:
                        self._forget(instance)
                        closing.append(instance)
                    else:
                        instance.state = InstanceState.draining
            self._cond.notify_all()
        for instance in closing:
            await self._close(instance)
        return count

    # ------------------------------------------------------------------ maintenance
    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def maintain_once(self) -> None:
        """Unload idle instances past the TTL and retry loads the pool is short of."""
        ttl = self._settings.idle_ttl_seconds
        now = time.monotonic()
        idle_out: list[ModelInstance] = []
        async with self._cond:
            for key, group in self._instances.items():
                ready = [i for i in group if i.state is InstanceState.ready]
                spare = len(ready) - self.desired(key)
                for instance in sorted(ready, key=lambda i: i.last_used):
                    if spare <= 0 or not ttl:
                        break
                    if instance.leases == 0 and now - instance.last_used >= ttl:
                        self._forget(instance)
                        idle_out.append(instance)
                        spare -= 1
        for instance in idle_out:
            logger.info("%s idle for %.0fs; unloading", instance.id, ttl)
            await self._close(instance)
        for key in list(self._desired):
            if self.desired(key) and key in self.failures and not self._failed_recently(key):
                logger.info("retrying the load of %s/%s", key.engine, key.model)
                self._failed_at[key] = time.monotonic()  # one retry per interval
                await self._fill(key)


def _warm_up(model: SpeechModel) -> None:
    """One short inference so the first real task doesn't pay for lazy initialisation."""
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    language = "en" if model.name.endswith(".en") else None
    stream = model.transcribe(
        silence, TaskType.transcribe, DecodeOptions(beam_size=1, temperature=0.0, language=language)
    )
    for _segment in stream.segments:
        pass
    trim_heap()
