"""The openai-whisper engine through its real load path, on a tiny random-weight checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from whisper.model import ModelDimensions, Whisper

from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multilingual-vocabulary Whisper with one small layer per stack and random weights."""
    torch.manual_seed(0)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51865,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=1,
    )
    model = Whisper(dims)
    path = tmp_path_factory.mktemp("openai") / "tiny-random.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


@pytest.mark.slow
async def test_openai_whisper_task_end_to_end(
    make_settings: Callable[..., Settings], random_checkpoint: Path, clips: dict[str, Clip]
) -> None:
    settings = make_settings(whisper={"allowed_models": ["tiny.en", str(random_checkpoint)]})
    async with running_app(settings) as running:
        response = await upload(
            running.client,
            clips["jfk.flac"].path,
            engine="openai_whisper",
            model=str(random_checkpoint),
            temperature="0",
            beam_size=1,
            language="en",
            word_timestamps="true",
        )
        assert response.status_code == 201, response.text
        assert response.json()["engine"] == "openai_whisper"
        task = await wait_done(running.client, response.json()["id"], timeout=300)
        assert task["status"] == "completed", task["error"]
        result = task["result"]
        # Random weights give nonsense text, but the shape is the engine-independent one.
        assert result["language"] == "en" and result["duration"] == pytest.approx(11.0, abs=0.05)
        assert isinstance(result["text"], str)
        for segment in result["segments"]:
            assert {
                "id",
                "start",
                "end",
                "text",
                "avg_logprob",
                "no_speech_prob",
                "compression_ratio",
                "temperature",
            } <= set(segment)
            assert segment["start"] <= segment["end"]
        models = {
            (m["engine"], m["name"]): m for m in (await running.client.get("/api/v1/models")).json()["models"]
        }
        assert models[("openai_whisper", str(random_checkpoint))]["loaded"] == 1

        refused = await upload(running.client, clips["jfk.flac"].path, engine="whisperx")
        assert refused.status_code == 422


async def test_engine_allowlist(make_settings: Callable[..., Settings], clips: dict[str, Clip]) -> None:
    settings = make_settings(whisper={"allowed_engines": ["faster_whisper"]})
    async with running_app(settings, paused=True) as running:
        response = await upload(running.client, clips["jfk.flac"].path, engine="openai_whisper")
        assert response.status_code == 422 and "engine" in response.json()["detail"]
