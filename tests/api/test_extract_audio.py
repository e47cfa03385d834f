"""POST /api/v1/media/extract-audio: a video's audio back as WAV/MP3/FLAC/Opus, transcribed to check it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import av
import httpx
import pytest
import pytest_asyncio
from starlette.requests import ClientDisconnect
from starlette.types import Message

from app.api.extract_audio import TempFileStreamingResponse
from app.media.storage import CHUNK_SIZE
from tests.conftest import Clip, RunningApp, normalize_en, running_app, upload, wait_done
from tests.live_server import module_settings
from tests.media_samples import encode_mp4

pytestmark = pytest.mark.asyncio(loop_scope="module")

REFERENCE = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Clip]) -> Path:
    """jfk.flac as AAC beside a 16x16 H.264 video stream in an MP4."""
    return encode_mp4(clips["jfk.flac"].path, tmp_path_factory.mktemp("video") / "speech.mp4")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AsyncIterator[RunningApp]:
    settings = module_settings(
        tmp_path_factory.mktemp("extract"),
        model_dir,
        whisper={"warmup": False},
        storage={"max_upload_mb": 1.0},
    )
    async with running_app(settings) as running:
        yield running


async def _extract(client: httpx.AsyncClient, path: Path, **fields: object) -> httpx.Response:
    with path.open("rb") as handle:
        return await client.post(
            "/api/v1/media/extract-audio",
            files={"file": (path.name, handle, "video/mp4")},
            data={key: str(value) for key, value in fields.items()},
        )


def _describe(data: bytes) -> tuple[str, str, int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        assert not container.streams.video
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        rate = stream.codec_context.sample_rate
        return (
            container.format.name,
            stream.codec_context.name,
            rate,
            stream.codec_context.channels,
            samples / rate,
        )


@pytest.mark.slow
async def test_video_audio_comes_back_as_wav_and_mp3_with_the_speech(
    api: RunningApp, video: Path, tmp_path: Path
) -> None:
    wav = await _extract(api.client, video)  # defaults: wav, 16 kHz, mono, 16 bit
    assert wav.status_code == 200, wav.text
    assert wav.headers["content-type"] == "audio/wav"
    assert "speech.wav" in wav.headers["content-disposition"]
    assert wav.headers["x-audio-sample-rate"] == "16000" and wav.headers["x-audio-bit-depth"] == "16"
    fmt, codec, rate, channels, seconds = _describe(wav.content)
    assert (fmt, codec, rate, channels) == ("wav", "pcm_s16le", 16000, 1)
    assert 10.9 < seconds < 11.2
    assert len(wav.content) == int(wav.headers["content-length"])

    mp3 = await _extract(api.client, video, format="mp3", sample_rate=22050, channels=2)
    assert mp3.status_code == 200, mp3.text
    assert mp3.headers["content-type"] == "audio/mpeg"
    fmt, codec, rate, channels, seconds = _describe(mp3.content)
    assert (fmt, codec, rate, channels) == ("mp3", "mp3float", 22050, 2)
    assert 10.9 < seconds < 11.3

    flac = await _extract(api.client, video, format="flac", sample_rate=44100, bit_depth=24)
    assert flac.status_code == 200, flac.text
    fmt, codec, rate, channels, _ = _describe(flac.content)
    assert (fmt, codec, rate, channels) == ("flac", "flac", 44100, 1)
    opus = await _extract(api.client, video, format="opus", sample_rate=48000)
    assert opus.status_code == 200 and opus.headers["content-type"] == "audio/ogg"
    assert _describe(opus.content)[:2] == ("ogg", "opus")

    created = []  # both queued at once: the second is probed and queued while the first runs
    for name, body in (("speech.wav", wav.content), ("speech.mp3", mp3.content)):
        (tmp_path / name).write_bytes(body)
        response = await upload(api.client, tmp_path / name)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    for task_id in created:
        task = await wait_done(api.client, task_id)
        assert REFERENCE in normalize_en(task["result"]["text"]), (task["file_name"], task["result"]["text"])
        await api.client.delete(f"/api/v1/tasks/{task_id}")
    assert list(api.container.storage.root.iterdir()) == [], "extraction left temp files"


async def test_non_media_bad_options_and_big_files_are_problems(
    api: RunningApp, video: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n" * 200)
    not_media = await _extract(api.client, notes)
    assert not_media.status_code == 415
    assert not_media.headers["content-type"].startswith("application/problem+json")

    for fields, expected in (
        ({"format": "mp3", "bit_depth": 24}, "bit_depth applies to wav and flac only"),
        ({"format": "flac", "bit_depth": 32}, "flac supports the bit depths 16, 24, not 32"),
        ({"format": "wav", "bit_depth": 12}, "wav supports the bit depths 16, 24, 32, not 12"),
        ({"format": "opus", "sample_rate": 44100}, "opus supports the sample rates"),
        ({"format": "mp3", "sample_rate": 96000}, "mp3 supports the sample rates"),
        ({"channels": 3}, "channels"),
        ({"format": "aiff"}, "format"),
    ):
        response = await _extract(api.client, video, **fields)
        assert response.status_code == 422, (fields, response.text)
        assert expected in response.json()["detail"], (fields, response.json()["detail"])

    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (1024 * 1024 + 10))
    too_big = await _extract(api.client, big)
    assert too_big.status_code == 413
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert (await _extract(api.client, empty)).status_code == 400
    assert list(api.container.storage.root.iterdir()) == [], "failed extractions left temp files"


async def test_streamed_file_is_removed_when_the_client_disconnects(tmp_path: Path) -> None:
    produced = tmp_path / "produced.media"
    produced.write_bytes(b"\1" * (3 * CHUNK_SIZE))
    response = TempFileStreamingResponse(produced, media_type="audio/wav")
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            raise OSError("connection reset by peer")  # what the server raises once the client left

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "POST", "headers": []}
    with pytest.raises(ClientDisconnect):
        await response(scope, receive, send)
    assert len(sent) == 2 and not produced.exists()
