"""The OpenAI-compatible API, driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import srt

from tests.conftest import Clip, normalize_en
from tests.live_server import LiveServer, live_server, module_settings

JFK = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LiveServer]:
    settings = module_settings(tmp_path_factory.mktemp("openai"), model_dir)
    with live_server(settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120) as sdk:
        yield sdk


@pytest.mark.slow
def test_transcription_json_text_and_srt(
    client: openai.OpenAI, server: LiveServer, clips: dict[str, Clip]
) -> None:
    path = clips["jfk.flac"].path
    with path.open("rb") as audio:
        plain = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert JFK in normalize_en(plain.text)

    with path.open("rb") as audio:
        text = client.audio.transcriptions.create(model="tiny.en", file=audio, response_format="text")
    assert isinstance(text, str) and JFK in normalize_en(text)

    with path.open("rb") as audio:
        subtitles = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="srt", language="en"
        )
    cues = list(srt.parse(subtitles))
    assert cues and cues[-1].end.total_seconds() <= 11.5
    assert JFK in normalize_en(" ".join(cue.content for cue in cues))

    tasks = httpx.get(f"{server.base_url}/api/v1/tasks", params={"platform": "openai"}).json()
    assert tasks["total"] == 3
    assert {item["priority"] for item in tasks["items"]} == {"high"}, "the highest priority"
    assert {item["model"] for item in tasks["items"]} == {"tiny.en"}, "whisper-1 maps to the default"


def test_transcription_verbose_json_with_words(client: openai.OpenAI, clips: dict[str, Clip]) -> None:
    with clips["jfk.flac"].path.open("rb") as audio:
        raw = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            temperature=0.0,
            prompt="A speech by President Kennedy.",
        )
    assert re.fullmatch(r"[0-9a-f]{32}", raw.headers["x-tingxie-task-id"])
    verbose = raw.parse()
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(11.0, abs=0.1)
    assert JFK in normalize_en(verbose.text)
    assert verbose.segments and verbose.words
    body = raw.http_response.json()
    assert body["task"] == "transcribe"
    for segment in body["segments"]:
        assert set(segment) == {
            "id", "seek", "start", "end", "text", "tokens", "temperature",
            "avg_logprob", "compression_ratio", "no_speech_prob",
        }  # fmt: skip
        assert segment["tokens"] and all(isinstance(token, int) for token in segment["tokens"])
        assert segment["start"] < segment["end"] <= 11.1
    words = [word.word for word in verbose.words]
    assert "country" in [re.sub(r"\W", "", word).lower() for word in words]
    assert all(not word.startswith(" ") for word in words)
    assert all(
        a.start <= a.end <= b.start + 0.01 for a, b in zip(verbose.words, verbose.words[1:], strict=False)
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation_with_base(client: openai.OpenAI, clips: dict[str, Clip]) -> None:
    with clips["picovoice_test_de.wav"].path.open("rb") as audio:
        raw = client.audio.translations.with_raw_response.create(
            model="base", file=audio, response_format="verbose_json"
        )
    body = raw.http_response.json()
    assert body["task"] == "translate" and body["language"] == "german"
    text = raw.parse().text
    words = set(re.findall(r"[a-z']+", text.lower()))
    assert text.isascii() and {"the", "was"} & words, text
    assert not {"der", "wurde", "als"} & words, f"not translated: {text}"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_models_and_errors(client: openai.OpenAI, server: LiveServer, clips: dict[str, Clip]) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["whisper-1", "base", "tiny.en"]
    assert client.models.retrieve("tiny.en").owned_by == "tingxie"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")

    media = server.settings.storage.media_dir
    before = sorted(media.iterdir())
    with clips["goforward.wav"].path.open("rb") as audio, pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="large-v9", file=audio)
    assert caught.value.status_code == 400
    assert "large-v9" in caught.value.message
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]

    with pytest.raises(openai.UnprocessableEntityError, match="English-only"):
        client.audio.translations.create(
            model="whisper-1", file=("a.wav", clips["goforward.wav"].path.read_bytes())
        )
    with pytest.raises(openai.APIStatusError) as not_media:
        client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"not audio at all " * 64))
    assert not_media.value.status_code == 415
    with pytest.raises(openai.UnprocessableEntityError):
        client.audio.transcriptions.create(
            model="whisper-1",
            file=("a.wav", b"x"),
            response_format="docx",  # type: ignore[arg-type]
        )
    assert sorted(media.iterdir()) == before, "rejected requests left files behind"


def test_client_disconnect_deletes_its_task(server: LiveServer, clips: dict[str, Clip]) -> None:
    processor = server.container.processor
    assert processor is not None
    server.call(processor.pause)  # the task stays queued while the client waits
    try:
        seen: list[str] = []

        def watch() -> None:  # the task exists while the request waits
            deadline = time.monotonic() + 5
            while not seen and time.monotonic() < deadline:
                params = {"platform": "openai", "status": "queued"}
                items = httpx.get(f"{server.base_url}/api/v1/tasks", params=params).json()["items"]
                seen.extend(item["id"] for item in items)
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        sdk = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=1.5)
        with clips["goforward.wav"].path.open("rb") as audio, pytest.raises(openai.APITimeoutError):
            sdk.audio.transcriptions.create(model="whisper-1", file=audio)
        watcher.join()
        assert len(seen) == 1, "the request queued a task"
        media = server.settings.storage.media_dir
        deadline = time.monotonic() + 10
        while True:
            response = httpx.get(f"{server.base_url}/api/v1/tasks/{seen[0]}")
            queued = httpx.get(f"{server.base_url}/api/v1/tasks", params={"status": "queued"}).json()
            if response.status_code == 404 and queued["total"] == 0:
                break
            assert time.monotonic() < deadline, f"abandoned task kept: {response.text}"
            time.sleep(0.2)
        done = httpx.get(f"{server.base_url}/api/v1/tasks", params={"limit": 500}).json()
        assert len(list(media.iterdir())) == done["total"], "the abandoned media was removed"
    finally:
        server.call(processor.resume)
