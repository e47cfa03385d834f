"""Shared fixtures: real SQLite files, real models, real audio from ../shared/audio."""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.container import Container
from app.main import create_app
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
AUDIO_DIR = ROOT.parent / "shared" / "audio"


@dataclass(frozen=True)
class Clip:
    file: str
    language: str
    duration: float
    reference: str

    @property
    def path(self) -> Path:
        return AUDIO_DIR / self.file


def load_manifest() -> list[Clip]:
    manifest = AUDIO_DIR / "MANIFEST.tsv"
    if not manifest.is_file():
        raise RuntimeError(f"shared audio is missing: {manifest} (clone the project beside shared/)")
    with manifest.open(encoding="utf-8") as handle:
        return [
            Clip(row["file"], row["language"], float(row["duration_seconds"]), row["reference_transcript"])
            for row in csv.DictReader(handle, delimiter="\t")
        ]


@pytest.fixture(scope="session")
def clips() -> dict[str, Clip]:
    return {clip.file: clip for clip in load_manifest()}


def normalize_en(text: str) -> str:
    from whisper.normalizers import EnglishTextNormalizer

    return str(EnglishTextNormalizer()(text))


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model directory per test session, so ``base`` is assembled and verified once."""
    return tmp_path_factory.mktemp("models")


def isolated_settings(root: Path, model_dir: Path, **overrides: Any) -> Settings:
    """Settings isolated in ``root`` (database, media, logs); keyword groups override single fields."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{root / 'tingxie.db'}",
        "storage": {"media_dir": root / "media"},
        "whisper": {
            "default_model": "tiny.en",
            "model_dir": model_dir,
            "load_mode": "lazy",
            "min_size": 0,
            "cpu_threads": 2,
        },
        "processor": {"node_id": "test-node", "poll_interval_seconds": 0.2},
        # Tests talk to real HTTP peers on loopback: open it explicitly (the guard stays on).
        "network": {"allowed_hosts": ["127.0.0.1"]},
        "logging": {"dir": root / "logs"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_settings(tmp_path: Path, model_dir: Path) -> Callable[..., Settings]:
    """Settings isolated in the test's ``tmp_path`` (see :func:`isolated_settings`)."""

    def factory(**overrides: Any) -> Settings:
        return isolated_settings(tmp_path, model_dir, **overrides)

    return factory


@dataclass
class RunningApp:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def container(self) -> Container:
        container: Container = self.app.state.container
        return container


@asynccontextmanager
async def running_app(settings: Settings, *, paused: bool = False) -> AsyncIterator[RunningApp]:
    """Run the app's lifespan (migrations, processor, models) and talk to it over ASGI."""
    app = create_app(settings, start_processor_paused=paused)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tingxie.test") as client:
            yield RunningApp(app=app, client=client)


@pytest.fixture
async def api(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningApp]:
    """A running app on a fresh SQLite file with ``tiny.en`` as the default model."""
    async with running_app(make_settings()) as running:
        yield running


async def upload(client: httpx.AsyncClient, path: Path, **fields: Any) -> httpx.Response:
    with path.open("rb") as handle:
        return await client.post(
            "/api/v1/tasks",
            files={"file": (path.name, handle, "application/octet-stream")},
            data={key: str(value) for key, value in fields.items()},
        )


async def wait_done(client: httpx.AsyncClient, task_id: str, timeout: float = 120) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tasks/{task_id}", params={"wait": timeout})
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] in ("completed", "failed"), task
    return task
