"""Liveness, readiness, /api/v1/stats and /metrics against a real app, model and audio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from app.db.session import create_engine, create_session_factory
from app.db.stats_repository import StatsRepository
from app.observability.metrics import Metrics
from config.settings import Settings
from tests.conftest import Clip, RunningApp, running_app, upload, wait_done

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _settings(root: Path, model_dir: Path, **whisper: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{root / 'tingxie.db'}",
        storage={"media_dir": root / "media"},
        whisper={
            "default_model": "tiny.en",
            "model_dir": model_dir,
            "load_mode": "lazy",
            "min_size": 0,
            "cpu_threads": 2,
            **whisper,
        },
        processor={"node_id": "observed-node", "poll_interval_seconds": 0.2},
        logging={"dir": root / "logs"},
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def observed(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AsyncIterator[RunningApp]:
    """One app for the module: a lazy tiny.en pool and a processor."""
    async with running_app(_settings(tmp_path_factory.mktemp("observed"), model_dir)) as running:
        yield running


async def _metrics(running: RunningApp) -> dict[str, float]:
    response = await running.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_liveness_and_readiness_of_a_lazy_pool(observed: RunningApp) -> None:
    live = await observed.client.get("/api/v1/health")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    assert "database" not in live.json()  # liveness does not touch the database
    ready = await observed.client.get("/api/v1/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "models": "faster_whisper/tiny.en: loaded on first use"},
    }


async def test_readiness_fails_when_the_database_is_unreachable(observed: RunningApp) -> None:
    container = observed.container
    working = container.engine
    container.engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/nothing")  # nothing listens
    try:
        response = await observed.client.get("/api/v1/health/ready")
        live = await observed.client.get("/api/v1/health")
    finally:
        await container.engine.dispose()
        container.engine = working
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 503 and problem["detail"] == "not ready: database"
    assert problem["checks"]["database"] != "ok" and problem["checks"]["models"].endswith("first use")
    assert live.status_code == 200  # liveness stays up


async def test_metrics_leave_out_the_queue_depth_when_the_database_fails(observed: RunningApp) -> None:
    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/nothing")  # nothing listens
    try:
        metrics = Metrics(stats=StatsRepository(create_session_factory(dead)), pool=observed.container.pool)
        page = (await metrics.render()).decode()
    finally:
        await dead.dispose()
    assert "tingxie_tasks_completed_total" in page and "tingxie_pool_instances_idle" in page
    assert "tingxie_queue_depth" not in page  # left out rather than stale


@pytest.mark.slow
async def test_completed_and_failed_tasks_in_stats_and_metrics(
    observed: RunningApp, clips: dict[str, Clip]
) -> None:
    client = observed.client
    before = await _metrics(observed)
    assert before["tingxie_tasks_completed_total"] == 0
    assert before["tingxie_queue_depth{priority=normal}"] == 0

    done = await wait_done(client, (await upload(client, clips["jfk.flac"].path)).json()["id"])
    assert done["status"] == "completed", done

    # Queue depth per priority, from the database: pause the processor and queue two tasks.
    processor = observed.container.processor
    assert processor is not None
    processor.pause()
    high = (await upload(client, clips["jfk.flac"].path, priority="high")).json()["id"]
    low = (await upload(client, clips["jfk.flac"].path, priority="low")).json()["id"]
    stats = (await client.get("/api/v1/stats")).json()
    assert stats["queue_depth"] == {"high": 1, "normal": 0, "low": 1}
    assert stats["counts"] == {"queued": 2, "processing": 0, "completed": 1, "failed": 0, "cancelled": 0}
    queued = await _metrics(observed)
    assert queued["tingxie_queue_depth{priority=high}"] == 1
    assert queued["tingxie_queue_depth{priority=low}"] == 1
    assert queued["tingxie_queue_depth{priority=normal}"] == 0
    assert (await client.delete(f"/api/v1/tasks/{high}")).status_code == 204

    # A task whose media vanished fails on the processor: counted as failed.
    task = await observed.container.repositories.tasks.get(low)
    assert task is not None and task.media_path
    observed.container.storage.remove(task.media_path)
    processor.resume()
    failed = await wait_done(client, low)
    assert failed["status"] == "failed" and "no longer available" in failed["error"]

    stats = (await client.get("/api/v1/stats")).json()
    assert stats["counts"] == {"queued": 0, "processing": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert stats["queue_depth"] == {"high": 0, "normal": 0, "low": 0}
    hour = stats["last_hour"]
    assert hour["window_seconds"] == 3600 and hour["completed"] == 1 and hour["failed"] == 1
    assert hour["audio_seconds"] == pytest.approx(done["duration"], abs=0.01)
    assert 10.5 < hour["audio_seconds"] < 11.5  # jfk.flac is 11 s
    assert hour["processing_seconds"] == pytest.approx(done["processing_time"], abs=0.01)
    assert hour["mean_real_time_factor"] == pytest.approx(
        done["processing_time"] / done["duration"], rel=1e-3
    )

    after = await _metrics(observed)
    assert after["tingxie_tasks_completed_total"] == 1
    assert after["tingxie_tasks_failed_total"] == 1
    assert after["tingxie_task_real_time_factor_count"] == 1
    assert after["tingxie_task_real_time_factor_sum"] == pytest.approx(
        hour["mean_real_time_factor"], rel=0.05
    )
    assert after["tingxie_task_duration_seconds_count{status=completed}"] == 1
    assert after["tingxie_task_duration_seconds_count{status=failed}"] == 1
    assert after["tingxie_audio_seconds_processed_total"] == pytest.approx(done["duration"], abs=0.01)
    assert after["tingxie_callback_failures_total"] == 0
    # The lazily loaded tiny.en instance is now ready and idle on the CPU.
    pool = "device=cpu,engine=faster_whisper,model=tiny.en"
    assert after[f"tingxie_pool_instances_idle{{{pool}}}"] == 1
    assert after[f"tingxie_pool_instances_busy{{{pool}}}"] == 0


async def test_callback_failures_counter_is_exposed(observed: RunningApp) -> None:
    observed.container.metrics.callback_failures.inc()
    assert (await _metrics(observed))["tingxie_callback_failures_total"] == 1


async def test_metrics_registries_are_per_app(tmp_path: Path, model_dir: Path, observed: RunningApp) -> None:
    """A second app in the same process has its own registry: no duplicate-metric errors, no shared counts."""
    async with running_app(_settings(tmp_path, model_dir), paused=True) as other:
        assert other.container.metrics.registry is not observed.container.metrics.registry
        assert (await _metrics(other))["tingxie_callback_failures_total"] == 0


async def test_readiness_fails_when_the_default_model_cannot_load(tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"these are not weights")
    settings = _settings(
        tmp_path,
        model_dir,
        default_model=str(broken),
        allowed_models=[str(broken)],
        load_mode="eager",
        min_size=1,
        load_retry_seconds=600,
    )
    async with running_app(settings) as running:
        response = await running.client.get("/api/v1/health/ready")
        assert response.status_code == 503, response.text
        problem = response.json()
        assert problem["detail"] == "not ready: models"
        assert problem["checks"]["database"] == "ok"
        assert problem["checks"]["models"].startswith(f"faster_whisper/{broken} failed to load")
        assert (await running.client.get("/api/v1/health")).json()["status"] == "degraded"
