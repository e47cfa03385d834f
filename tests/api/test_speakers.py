"""Enrolled voices (``/api/v1/speakers``) and diarized tasks through the task API."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import srt
import webvtt
from sqlalchemy import text

from config.settings import Settings
from tests.conftest import running_app, upload, wait_done
from tests.speaker_samples import CONVERSATIONS, conversation, enrolment_wav

ADMIN_KEY = "bootstrap-admin-key-for-speaker-tests-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def enroll(client: httpx.AsyncClient, name: str, path: Path, **headers: str) -> httpx.Response:
    with path.open("rb") as handle:
        return await client.post(
            "/api/v1/speakers",
            data={"name": name},
            files={"sample": (path.name, handle, "audio/wav")},
            headers=headers,
        )


def tone_wav(seconds: float) -> bytes:
    samples = (0.2 * np.sin(2 * np.pi * 220 * np.arange(round(seconds * 16000)) / 16000) * 32767).astype(
        "<i2"
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())
    return out.getvalue()


async def test_enrolment_is_validated_listed_and_scoped_to_its_key(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(auth={"enabled": True, "admin_key": ADMIN_KEY}, processor={"enabled": False})
    async with running_app(settings) as running:
        client = running.client
        keys = {}
        for name in ("alice", "bob"):
            created = await client.post("/api/v1/keys", json={"name": name}, headers=ADMIN)
            assert created.status_code == 201, created.text
            keys[name] = {"Authorization": f"Bearer {created.json()['key']}"}

        sample = enrolment_wav("jfk", tmp_path / "jfk.wav")
        made = await enroll(client, "Kennedy", sample, **keys["alice"])
        assert made.status_code == 201, made.text
        speaker = made.json()
        assert speaker["name"] == "Kennedy" and speaker["sample_seconds"] == pytest.approx(11.0, abs=0.1)
        assert "embedding" not in speaker

        # Too short, too long, not audio, no name: clear 4xx problems, nothing stored.
        short = tmp_path / "short.wav"
        short.write_bytes(tone_wav(3.0))
        long = tmp_path / "long.wav"
        long.write_bytes(tone_wav(31.0))
        junk = tmp_path / "junk.wav"
        junk.write_bytes(b"not audio at all" * 100)
        for path, status in ((short, 422), (long, 422), (junk, 422)):
            refused = await enroll(client, "X", path, **keys["alice"])
            assert refused.status_code == status, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
        assert (await enroll(client, "", sample, **keys["alice"])).status_code == 422

        mine = (await client.get("/api/v1/speakers", headers=keys["alice"])).json()
        assert [item["id"] for item in mine["items"]] == [speaker["id"]] and mine["total"] == 1
        theirs = (await client.get("/api/v1/speakers", headers=keys["bob"])).json()
        assert theirs == {"items": [], "total": 0, "limit": 50, "offset": 0}
        assert (await client.get(f"/api/v1/speakers/{speaker['id']}", headers=keys["bob"])).status_code == 404
        assert (
            await client.delete(f"/api/v1/speakers/{speaker['id']}", headers=keys["bob"])
        ).status_code == 404
        assert (await client.get("/api/v1/speakers", headers=ADMIN)).json()["total"] == 1

        got = await client.get(f"/api/v1/speakers/{speaker['id']}", headers=keys["alice"])
        assert got.json() == speaker
        assert (
            await client.delete(f"/api/v1/speakers/{speaker['id']}", headers=keys["alice"])
        ).status_code == 204
        assert (
            await client.get(f"/api/v1/speakers/{speaker['id']}", headers=keys["alice"])
        ).status_code == 404
        async with running.container.engine.connect() as connection:
            assert (await connection.execute(text("SELECT COUNT(*) FROM speakers"))).scalar() == 0


@pytest.mark.slow
async def test_diarized_upload_names_enrolled_voices_in_every_format(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with running_app(make_settings()) as running:
        client = running.client
        for name, speaker in (("Kennedy", "jfk"), ("Reader", "librispeech_1089"), ("Dealer", "cards")):
            made = await enroll(client, name, enrolment_wav(speaker, tmp_path / f"{speaker}.wav"))
            assert made.status_code == 201, made.text

        talk = conversation(CONVERSATIONS[3])  # jfk, librispeech_1089, ljspeech
        path = talk.write_wav(tmp_path / "three.wav")
        created = await upload(client, path, diarize="true", word_timestamps="true")
        assert created.status_code == 201, created.text
        assert created.json()["options"]["diarize"] is True
        task = await wait_done(client, created.json()["id"], timeout=300)
        assert task["status"] == "completed", task["error"]
        result = task["result"]

        expected = {"jfk": "Kennedy", "librispeech_1089": "Reader", "ljspeech": "A"}
        assert sorted(result["speakers"]) == sorted(expected.values())
        for segment in result["segments"]:
            assert segment["speaker"] in expected.values()
            assert {word["speaker"] for word in segment["words"]} == {segment["speaker"]}
            middle = (segment["start"] + segment["end"]) / 2
            truth = min(talk.turns, key=lambda turn: max(turn.start - middle, middle - turn.end, 0.0))
            assert segment["speaker"] == expected[truth.speaker], segment

        subtitles = await client.get(f"/api/v1/tasks/{task['id']}/subtitles", params={"format": "srt"})
        cues = list(srt.parse(subtitles.text))
        assert cues and all(cue.content.split(":")[0] in expected.values() for cue in cues)
        assert any(cue.content.startswith("Kennedy: ") for cue in cues)
        vtt = await client.get(f"/api/v1/tasks/{task['id']}/subtitles", params={"format": "vtt"})
        assert {caption.voice for caption in webvtt.from_string(vtt.text)} == set(expected.values())
        txt = (await client.get(f"/api/v1/tasks/{task['id']}/subtitles", params={"format": "txt"})).text
        starts = [line.split(":")[0] for line in txt.splitlines() if ":" in line]
        assert starts[:3] == ["Kennedy", "Reader", "A"]

        async with running.container.engine.connect() as connection:
            flag = (await connection.execute(text("SELECT diarize FROM tasks"))).scalar()
        assert bool(flag) is True


async def test_bad_speaker_options_are_refused(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with running_app(make_settings(processor={"enabled": False})) as running:
        path = conversation(["jfk"]).write_wav(tmp_path / "one.wav")
        for fields in (
            {"diarize": "true", "min_speakers": "3", "max_speakers": "2"},
            {"diarize": "true", "num_speakers": "0"},
            {"diarize": "true", "known_speaker_names[]": "Ann"},
            {"known_speaker_names[]": "Ann", "known_speaker_references[]": "data:audio/wav;base64,AAAA"},
            {"diarize": "true", "known_speaker_names[]": "Ann", "known_speaker_references[]": "https://x"},
        ):
            refused = await upload(running.client, path, **fields)
            assert refused.status_code == 422, (fields, refused.text)
        tasks = (await running.client.get("/api/v1/tasks")).json()
        assert tasks["total"] == 0
        media = running.container.settings.storage.media_dir
        assert not [path for path in media.rglob("*") if path.is_file()], "no media kept"
