"""Duration and decode limits: a small FLAC of silence can hold hours of audio.

Each file is built at test time with PyAV (digital silence compresses to almost nothing), and the
limit is lowered in the settings so the tests stay fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from app.media.probe import MediaTooLongError, probe_media
from app.media.samples import decode_samples
from config.settings import Settings
from tests.conftest import running_app, upload, wait_done
from tests.media_samples import silent_flac
from tests.ops_support import app_for


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API alone (no processor, no models) over ASGI."""
    app = app_for(settings, role="api")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tingxie.test") as client:
            yield client


def assert_problem(response: httpx.Response, status: int, limit: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    if limit is not None:
        assert body["limit"] == limit, body
    return body


async def extract(client: httpx.AsyncClient, path: Path, **fields: object) -> httpx.Response:
    with path.open("rb") as handle:
        return await client.post(
            "/api/v1/media/extract-audio",
            files={"file": (path.name, handle, "audio/flac")},
            data={key: str(value) for key, value in fields.items()},
        )


async def test_a_file_longer_than_the_default_four_hours_is_refused_at_submission(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A few KiB of FLAC holding 4.5 h: the default limit refuses it before it is queued."""
    long_file = silent_flac(tmp_path / "hours.flac", 4.5 * 3600, rate=2000)
    assert long_file.stat().st_size < 64 * 1024
    settings = make_settings()
    async with api_client(settings) as client:
        body = assert_problem(await upload(client, long_file), 413, "duration")
        assert "14400" in str(body["detail"])
        assert (await client.get("/api/v1/tasks")).json()["total"] == 0
    assert list(settings.storage.media_dir.iterdir()) == []


async def test_a_lowered_limit_applies_to_batches_too(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    short = silent_flac(tmp_path / "short.flac", 20)
    long = silent_flac(tmp_path / "long.flac", 600)
    settings = make_settings(limits={"max_media_seconds": 60})
    async with api_client(settings) as client:
        with short.open("rb") as first, long.open("rb") as second:
            response = await client.post(
                "/api/v1/tasks/batch",
                files=[("files", ("short.flac", first)), ("files", ("long.flac", second))],
            )
        body = assert_problem(response, 413, "duration")
        assert body["file_index"] == 1
        assert (await client.get("/api/v1/tasks")).json()["total"] == 0
    assert list(settings.storage.media_dir.iterdir()) == []


def test_decoding_stops_at_the_limit_whatever_the_header_says(tmp_path: Path) -> None:
    lying = silent_flac(tmp_path / "lying.flac", 600, declared_seconds=10)
    assert probe_media(lying, 60).duration == 10.0  # the header is believed at probe time...
    with pytest.raises(MediaTooLongError):
        decode_samples(str(lying), max_seconds=60)  # ...but decoding stops past the limit
    assert len(decode_samples(str(lying), max_seconds=700)) >= 600 * 16000  # whole FLAC blocks


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2], ids=["sequential", "batched"])
async def test_a_task_whose_header_lies_fails_cleanly_while_decoding(
    make_settings: Callable[..., Settings], tmp_path: Path, batch_size: int
) -> None:
    lying = silent_flac(tmp_path / "lying.flac", 600, declared_seconds=10)
    settings = make_settings(
        limits={"max_media_seconds": 60}, whisper={"warmup": False, "batch_size": batch_size}
    )
    async with running_app(settings) as running:
        created = await upload(running.client, lying)
        assert created.status_code == 201, created.text
        assert created.json()["duration"] == 10.0
        task = await wait_done(running.client, created.json()["id"])
        assert task["status"] == "failed"
        assert "longer than the limit of 60 s" in task["error"]
        # The worker survives: a good file after it completes.
        good = await upload(running.client, silent_flac(tmp_path / "good.flac", 5))
        assert (await wait_done(running.client, good.json()["id"]))["status"] == "completed"


@pytest.mark.parametrize("declared", [None, 10.0], ids=["honest-header", "lying-header"])
async def test_extract_audio_refuses_audio_past_the_duration_limit(
    make_settings: Callable[..., Settings], tmp_path: Path, declared: float | None
) -> None:
    source = silent_flac(tmp_path / "long.flac", 600, declared_seconds=declared)
    settings = make_settings(limits={"max_media_seconds": 60})
    async with api_client(settings) as client:
        assert_problem(await extract(client, source), 413, "duration")
    assert list(settings.storage.media_dir.iterdir()) == []


async def test_extract_audio_output_is_capped(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """Two minutes of silence (a few KiB) as 48 kHz stereo 32-bit WAV would be 44 MiB."""
    source = silent_flac(tmp_path / "two-minutes.flac", 120)
    settings = make_settings(limits={"max_extract_mb": 1})
    async with api_client(settings) as client:
        response = await extract(client, source, sample_rate=48000, channels=2, bit_depth=32)
        body = assert_problem(response, 413, "output_size")
        assert body["max_bytes"] == 1024 * 1024
        small = await extract(client, source, format="mp3", sample_rate=8000)
        assert small.status_code == 200, small.text
    assert list(settings.storage.media_dir.iterdir()) == []


async def test_extract_audio_is_behind_admission(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source = silent_flac(tmp_path / "short.flac", 5)
    settings = make_settings(limits={"min_free_disk_mb": 1e12})
    async with api_client(settings) as client:
        response = await extract(client, source)
        assert_problem(response, 503, "free_disk")
        assert response.headers["retry-after"] == "30"
    assert list(settings.storage.media_dir.iterdir()) == []
