"""Request body limits: JSON routes take at most ``LIMITS__MAX_JSON_BODY_BYTES`` (1 MiB), refused
with 413 problem+json before the body is parsed; upload routes keep the upload limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from tests.api.test_media_limits import api_client, assert_problem
from tests.conftest import upload
from tests.media_samples import silent_flac

MIB = 1024 * 1024
LINK_ROUTE = "/api/v1/tasks/from-link"


def oversized_json(size: int) -> bytes:
    """A syntactically valid JSON object of about ``size`` bytes."""
    return json.dumps({"url": "https://example.com/v", "padding": "x" * size}).encode()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


async def test_a_declared_oversized_json_body_gets_413_problem(settings: Settings) -> None:
    assert settings.limits.max_json_body_bytes == MIB
    async with api_client(settings) as client:
        response = await client.post(
            LINK_ROUTE, content=oversized_json(2 * MIB), headers={"content-type": "application/json"}
        )
        body = assert_problem(response, 413)
        assert str(MIB) in str(body["detail"])
        # A multipart body sent to a JSON route gets the JSON limit too.
        response = await client.post(LINK_ROUTE, files={"file": ("big.bin", b"\0" * (2 * MIB))})
        assert_problem(response, 413)
        # Small bodies are still parsed and validated as before.
        response = await client.post(LINK_ROUTE, json={"url": 5})
        assert_problem(response, 422)


async def test_a_chunked_oversized_body_is_cut_off_without_being_read(settings: Settings) -> None:
    """No Content-Length: the bytes are counted as they stream in, and reading stops at the limit."""
    pulled = 0
    chunk = b" " * (64 * 1024)  # JSON whitespace: the body stays valid JSON however long it is

    async def endless_json() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"url": "https://example.com/v"'
        for _ in range(512):  # 32 MiB on offer
            pulled += len(chunk)
            yield chunk
        yield b"}"

    async with api_client(settings) as client:
        response = await client.post(
            LINK_ROUTE, content=endless_json(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413)
    assert pulled <= MIB + len(chunk), f"{pulled} bytes were read from a body over the limit"


async def test_upload_routes_keep_the_upload_limit(settings: Settings, tmp_path: Path) -> None:
    """A 2 MiB upload (over the JSON limit, under the upload limit) is accepted."""
    media = silent_flac(tmp_path / "speechless.flac", 10)
    padded = tmp_path / "padded.flac"
    # FLAC readers skip an unknown trailing block of zeros; the body is what matters here.
    padded.write_bytes(media.read_bytes() + b"\0" * (2 * MIB))
    async with api_client(settings) as client:
        response = await upload(client, padded)
        assert response.status_code == 201, response.text


async def test_the_json_limit_is_a_setting(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(limits={"max_json_body_bytes": 4096})
    async with api_client(settings) as client:
        response = await client.post(
            LINK_ROUTE, content=oversized_json(8192), headers={"content-type": "application/json"}
        )
        assert_problem(response, 413)
        assert isinstance(response, httpx.Response)
