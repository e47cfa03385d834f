"""Uploads are refused before their body is spooled: a full queue, low disk (the spool directory
included) or an unknown model named before the file part is answered having read almost nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from app.api.upload_precheck import UPLOAD_CHECKS
from app.main import create_app
from config.settings import Settings
from tests.api.test_media_limits import api_client, assert_problem
from tests.conftest import upload
from tests.media_samples import silent_flac

MIB = 1024 * 1024
BOUNDARY = "tingxie-precheck-boundary"


class StreamedUpload:
    """A multipart body built as it is sent: text fields, then a file part of ``file_bytes`` zeros.
    ``pulled`` counts the file bytes the server has read."""

    def __init__(self, fields: dict[str, str], file_bytes: int = 64 * MIB) -> None:
        self.fields = fields
        self.file_bytes = file_bytes
        self.pulled = 0

    async def body(self) -> AsyncIterator[bytes]:
        head = b"".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in self.fields.items()
        )
        yield (
            head
            + (
                f"--{BOUNDARY}\r\n"
                'Content-Disposition: form-data; name="file"; filename="big.flac"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
        )
        chunk = b"\0" * (256 * 1024)
        while self.pulled < self.file_bytes:
            self.pulled += len(chunk)
            yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    async def post(self, client: httpx.AsyncClient, path: str) -> httpx.Response:
        return await client.post(
            path,
            content=self.body(),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )

    def assert_not_read(self) -> None:
        assert self.pulled <= MIB, f"{self.pulled} bytes of the file were read before refusing it"


async def test_an_unknown_model_is_refused_before_the_file_is_read(
    make_settings: Callable[..., Settings],
) -> None:
    async with api_client(make_settings()) as client:
        streamed = StreamedUpload({"model": "large-v9", "priority": "high"})
        body = assert_problem(await streamed.post(client, "/api/v1/tasks"), 422)
        assert "large-v9" in str(body["detail"])
        streamed.assert_not_read()

        streamed = StreamedUpload({"engine": "whisper.cpp"})
        assert_problem(await streamed.post(client, "/api/v1/tasks/batch"), 422)
        streamed.assert_not_read()

        # The OpenAI-compatible route answers in its own error shape, before reading the file.
        streamed = StreamedUpload({"model": "gpt-4o-transcribe"})
        response = await streamed.post(client, "/v1/audio/transcriptions")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "model_not_found"
        streamed.assert_not_read()
        assert (await client.get("/api/v1/tasks")).json()["total"] == 0


async def test_a_model_named_after_the_file_is_still_checked(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    media = silent_flac(tmp_path / "quiet.flac", 5)
    async with api_client(make_settings()) as client:
        with media.open("rb") as handle:
            response = await client.post(
                "/api/v1/tasks",
                content=(
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="q.flac"\r\n\r\n'
                ).encode()
                + handle.read()
                + (
                    f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nlarge-v9\r\n'
                    f"--{BOUNDARY}--\r\n"
                ).encode(),
                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
        assert_problem(response, 422)
        # An allowed model, named before the file, is accepted.
        assert (await upload(client, media, model="tiny.en")).status_code == 201


async def test_a_full_queue_refuses_uploads_before_reading_them(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    media = silent_flac(tmp_path / "quiet.flac", 5)
    settings = make_settings(limits={"max_queue_depth": 1})
    async with api_client(settings) as client:  # no processor: the first task stays queued
        assert (await upload(client, media)).status_code == 201
        for path in (
            "/api/v1/tasks",
            "/api/v1/media/extract-audio",
            "/v1/audio/transcriptions",
            "/api/v1/workflows/some-workflow/runs",
        ):
            streamed = StreamedUpload({"model": "whisper-1"} if path.startswith("/v1/") else {})
            response = await streamed.post(client, path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "30"
            streamed.assert_not_read()
    assert len(list(settings.storage.media_dir.iterdir())) == 1


def _smaller_file_system() -> tuple[Path, int, int] | None:
    """A writable directory on a file system with much less free space than the test's temporary
    directory (tmpfs /dev/shm on most Linux hosts): (directory, its free MiB, the other's free MiB)."""
    candidate = Path("/dev/shm")
    if not candidate.is_dir() or not os.access(candidate, os.W_OK):
        return None
    small = shutil.disk_usage(candidate).free // MIB
    large = shutil.disk_usage(tempfile.gettempdir()).free // MIB
    if large - small < 2048:
        return None
    return candidate, small, large


async def test_low_disk_in_the_spool_directory_refuses_uploads(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _smaller_file_system()
    if layout is None:
        pytest.skip("needs a second, smaller writable file system (/dev/shm)")
    small_fs, small_free, large_free = layout
    spool = Path(tempfile.mkdtemp(dir=small_fs, prefix="tingxie-spool-"))
    try:
        # Python's temporary directory, where uploads are spooled, is now on the smaller one.
        monkeypatch.setattr(tempfile, "tempdir", str(spool))
        threshold = (small_free + large_free) // 2  # the media directory has more, the spool less
        settings = make_settings(limits={"min_free_disk_mb": threshold})
        media = silent_flac(tmp_path / "quiet.flac", 5)
        async with api_client(settings) as client:
            body = assert_problem(await upload(client, media), 503, "free_disk")
            assert "spool" in str(body["detail"])
        assert os.listdir(spool) == []
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def test_every_upload_route_is_prechecked(make_settings: Callable[..., Settings]) -> None:
    """The precheck table names exactly the multipart routes of the app (a renamed or new upload
    route must be added to it)."""
    schema = create_app(make_settings()).openapi()
    multipart_routes = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
    }
    assert multipart_routes == set(UPLOAD_CHECKS)
