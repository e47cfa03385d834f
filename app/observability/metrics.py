"""Prometheus metrics of one app instance, in a registry of its own (no global registry).

Counters and histograms are updated where things happen (the processor, callbacks); the queue
depth is read from the database and the model pool's state at scrape time by custom collectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.db.stats_repository import StatsRepository
from app.engines.model_pool import AsyncModelPool
from app.schemas.model import InstanceState
from app.schemas.task import TaskPriority

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class QueueDepthCollector(Collector):
    """``tingxie_queue_depth{priority}``: queued tasks, as of the last :meth:`refresh`."""

    def __init__(self, stats: StatsRepository) -> None:
        self._stats = stats
        self._depth: dict[int, int] | None = None

    async def refresh(self) -> None:
        """Read the depth now; when the database fails, the gauge is left out rather than stale."""
        try:
            self._depth = await self._stats.queue_depth()
        except Exception as exc:
            logger.warning("queue depth unavailable for /metrics: %s: %s", type(exc).__name__, exc)
            self._depth = None

    def collect(self) -> Iterator[Metric]:
        if self._depth is None:
            return
        gauge = GaugeMetricFamily(
            "tingxie_queue_depth", "Queued tasks by priority (whole shared database).", labels=["priority"]
        )
        for priority in TaskPriority:
            gauge.add_metric([priority.value], self._depth.get(priority.rank, 0))
        yield gauge


class PoolCollector(Collector):
    """Busy, idle and loading model instances of this process's pool."""

    def __init__(self, pool: AsyncModelPool) -> None:
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        labels = ["engine", "model", "device"]
        busy = GaugeMetricFamily(
            "tingxie_pool_instances_busy", "Ready instances running an inference step.", labels=labels
        )
        idle = GaugeMetricFamily(
            "tingxie_pool_instances_idle", "Ready instances not running a step.", labels=labels
        )
        loading = GaugeMetricFamily(
            "tingxie_pool_instances_loading", "Instances being loaded.", labels=labels
        )
        counts: dict[tuple[str, str, str], list[int]] = {}
        for key in self._pool.keys():  # noqa: SIM118 (a method of the pool, not a dict)
            for device in self._pool.devices:
                counts[(key.engine, key.model, device.name)] = [0, 0, 0]
        for instance in self._pool.instances():
            slot = counts.setdefault(
                (instance.key.engine, instance.key.model, instance.device.name), [0, 0, 0]
            )
            if instance.state is InstanceState.loading:
                slot[2] += 1
            elif instance.state is InstanceState.ready:
                slot[0 if instance.running > 0 else 1] += 1
        for label_values, (busy_count, idle_count, loading_count) in counts.items():
            busy.add_metric(list(label_values), busy_count)
            idle.add_metric(list(label_values), idle_count)
            loading.add_metric(list(label_values), loading_count)
        return [busy, idle, loading]


class Metrics:
    """The metrics of one app; ``render()`` produces the ``/metrics`` page."""

    def __init__(self, *, stats: StatsRepository, pool: AsyncModelPool) -> None:
        self.registry = CollectorRegistry()
        self.task_duration = Histogram(
            "tingxie_task_duration_seconds",
            "Wall time of a task on this node, from claim to result.",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "tingxie_task_real_time_factor",
            "Processing time / audio duration of completed tasks (below 1 is faster than real time).",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.tasks_completed = Counter(
            "tingxie_tasks_completed", "Tasks completed on this node.", registry=self.registry
        )
        self.tasks_failed = Counter(
            "tingxie_tasks_failed",
            "Tasks failed on this node (errors, and expired leases this node reaped).",
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "tingxie_audio_seconds_processed",
            "Seconds of audio in the tasks completed on this node.",
            registry=self.registry,
        )
        self.callback_failures = Counter(
            "tingxie_callback_failures",
            "Callback attempts that failed (network error or non-2xx reply).",
            registry=self.registry,
        )
        self._queue = QueueDepthCollector(stats)
        self.registry.register(self._queue)
        self.registry.register(PoolCollector(pool))

    def task_completed(self, processing_seconds: float, audio_seconds: float) -> None:
        self.tasks_completed.inc()
        self.task_duration.labels(status="completed").observe(processing_seconds)
        if audio_seconds > 0:
            self.audio_seconds.inc(audio_seconds)
            self.real_time_factor.observe(processing_seconds / audio_seconds)

    def task_failed(self, processing_seconds: float | None = None, count: int = 1) -> None:
        self.tasks_failed.inc(count)
        if processing_seconds is not None:
            self.task_duration.labels(status="failed").observe(processing_seconds)

    async def render(self) -> bytes:
        """Read the queue depth from the database, then serialise every metric."""
        await self._queue.refresh()
        return generate_latest(self.registry)
