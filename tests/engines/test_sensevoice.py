"""The SenseVoice engine: sherpa-onnx's real loader and decoder on a SenseVoice-shaped ONNX model
built by the test (``tests/sensevoice_model.py``), through the API, the pool and the queue."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.engines.sensevoice_engine import speech_pieces
from app.media.samples import decode_samples
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done
from tests.sensevoice_model import (
    EMOTION_TAG,
    EVENT_TAG,
    TEXT_WITH_ITN,
    TEXT_WITHOUT_ITN,
    build_sensevoice_model,
)


@pytest.fixture(scope="module")
def sensevoice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sensevoice_model(tmp_path_factory.mktemp("sensevoice"))


def sensevoice_settings(make_settings: Callable[..., Settings], directory: Path | None) -> Settings:
    return make_settings(sensevoice={"model_dir": directory, "batch_size": 2})


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_speech_pieces_are_at_most_the_limit() -> None:
    assert speech_pieces([(0.0, 5.0), (5.5, 9.0), (20.0, 21.0)], 30.0) == [(0.0, 9.0), (20.0, 21.0)]
    # A 70 s stretch becomes three equal pieces; joining stops at the limit.
    pieces = speech_pieces([(0.0, 70.0), (70.2, 75.0)], 30.0)
    assert all(end - start <= 30.0 + 1e-9 for start, end in pieces)
    assert pieces[0] == (0.0, pytest.approx(70 / 3)) and pieces[-1][1] == 75.0
    assert speech_pieces([], 30.0) == []


async def test_task_comes_back_with_the_models_text(
    make_settings: Callable[..., Settings], sensevoice_dir: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["funasr_asr_example.wav"]
    async with running_app(sensevoice_settings(make_settings, sensevoice_dir)) as running:
        client = running.client
        health = (await client.get("/api/v1/health")).json()
        assert health["engines"]["sensevoice"] == "ok"
        loaded = await client.post("/api/v1/models/sensevoice/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["engine"] == "sensevoice" and loaded.json()["instances"][0]["state"] == "ready"
        ids = {
            "itn": (await upload(client, clip.path, engine="sensevoice", word_timestamps="true")).json()[
                "id"
            ],
            "no itn": (await upload(client, clip.path, model="sensevoice", use_itn="false")).json()["id"],
            "taiwan": (await upload(client, clip.path, engine="sensevoice", language="zh-TW")).json()["id"],
        }
        with clip.path.open("rb") as handle:
            openai = await client.post(
                "/v1/audio/transcriptions",
                data={"model": "sensevoice", "language": "zh-Hant", "response_format": "json"},
                files={"file": (clip.file, handle, "audio/wav")},
            )
        assert openai.status_code == 200, openai.text
        assert openai.json()["text"] == "語音識別。"
        with clip.path.open("rb") as handle:
            legacy = await client.post(
                "/api/whisper/tasks/create",
                params={"engine": "sensevoice", "use_itn": "false"},
                files={"file_upload": (clip.file, handle, "audio/wav")},
            )
        assert legacy.status_code == 200, legacy.text
        ids["legacy"] = legacy.json()["data"]["id"]
        tasks = {name: await wait_done(client, task_id) for name, task_id in ids.items()}
        subtitles = await client.get(f"/api/v1/tasks/{ids['itn']}/subtitles", params={"format": "srt"})

    for task in tasks.values():
        assert task["status"] == "completed", task
        assert task["engine"] == "sensevoice" and task["model"] == "sensevoice"
    itn = tasks["itn"]["result"]
    assert itn["text"] == TEXT_WITH_ITN and tasks["itn"]["language"] == "zh"
    assert tasks["no itn"]["result"]["text"] == TEXT_WITHOUT_ITN == tasks["legacy"]["result"]["text"]
    assert tasks["taiwan"]["result"]["text"] == "語音識別。"
    (segment,) = itn["segments"]
    # Tags are fields, never text.
    assert segment["emotion"] == EMOTION_TAG.strip("<|>") and segment["event"] == EVENT_TAG.strip("<|>")
    assert "<|" not in itn["text"] and segment["text"] == TEXT_WITH_ITN
    # Token timestamps: the model puts token k at LFR frame 1 + 2k (60 ms frames) of the piece.
    words = segment["words"]
    assert "".join(word["word"] for word in words) == TEXT_WITH_ITN
    offsets = [round(word["start"] - segment["start"], 2) for word in words]
    assert offsets == [0.06, 0.18, 0.30, 0.42, 0.54]
    assert 0.0 <= segment["start"] < segment["end"] <= clip.duration + 0.01
    assert subtitles.status_code == 200 and TEXT_WITH_ITN in subtitles.text


async def test_long_audio_is_cut_into_pieces_of_at_most_30_seconds(
    make_settings: Callable[..., Settings], sensevoice_dir: Path, clips: dict[str, Clip], tmp_path: Path
) -> None:
    speech = decode_samples(str(clips["zh_long.wav"].path))
    pause = np.zeros(16000 // 4, dtype=np.float32)  # 0.25 s: too short for VAD to split the speech
    long = np.concatenate([part for _ in range(10) for part in (speech, pause)])  # ~82 s, one stretch
    path = write_wav(tmp_path / "long.wav", long)
    async with running_app(sensevoice_settings(make_settings, sensevoice_dir)) as running:
        task = await wait_done(
            running.client, (await upload(running.client, path, engine="sensevoice")).json()["id"]
        )
    assert task["status"] == "completed", task
    segments = task["result"]["segments"]
    assert len(segments) >= 3  # at least ceil(82 / 30) pieces
    assert all(segment["end"] - segment["start"] <= 30.0 + 1e-3 for segment in segments)
    assert all(segment["text"] == TEXT_WITH_ITN for segment in segments)
    assert [segment["id"] for segment in segments] == list(range(len(segments)))
    assert task["result"]["text"] == TEXT_WITH_ITN * len(segments)


async def test_missing_model_directory_is_reported(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["funasr_asr_example.wav"]
    for directory, message in (
        (None, "SENSEVOICE__MODEL_DIR is not set"),
        (tmp_path / "absent", "does not exist"),
    ):
        async with running_app(sensevoice_settings(make_settings, directory)) as running:
            health = (await running.client.get("/api/v1/health")).json()
            assert message in health["engines"]["sensevoice"]
            assert health["engines"]["faster_whisper"] == "ok" and health["status"] == "ok"
            response = await upload(running.client, clip.path, engine="sensevoice")
            assert response.status_code == 422, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "sensevoice" in response.json()["detail"] and message in response.json()["detail"]
            assert (await running.client.get("/api/v1/tasks")).json()["total"] == 0


async def test_requests_it_cannot_serve_are_refused(
    make_settings: Callable[..., Settings], sensevoice_dir: Path, clips: dict[str, Clip]
) -> None:
    clip = clips["funasr_asr_example.wav"]
    async with running_app(sensevoice_settings(make_settings, sensevoice_dir)) as running:
        client = running.client
        for fields, words in (
            ({"task_type": "translate"}, "cannot translate"),
            ({"language": "fr"}, "'fr'"),
            ({"model": "base"}, "only the model 'sensevoice'"),
        ):
            response = await upload(client, clip.path, engine="sensevoice", **fields)
            assert response.status_code == 422 and words in response.json()["detail"], response.text
        unknown = await upload(client, clip.path, engine="nemo")
        assert unknown.status_code == 422
