"""OpenAI's diarized transcriptions and streamed transcriptions, through the official SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.audio import TranscriptionDiarized

from tests.live_server import LiveServer, live_server, module_settings
from tests.speaker_samples import CONVERSATIONS, Conversation, conversation, enrolment_wav


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LiveServer]:
    settings = module_settings(tmp_path_factory.mktemp("openai-diarized"), model_dir)
    with live_server(settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Conversation, Path]:
    talk = conversation(CONVERSATIONS[3])  # jfk, librispeech_1089, ljspeech
    return talk, talk.write_wav(tmp_path_factory.mktemp("three") / "three.wav")


def data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def truth_at(talk: Conversation, start: float, end: float) -> str:
    middle = (start + end) / 2
    return min(talk.turns, key=lambda turn: max(turn.start - middle, middle - turn.end, 0.0)).speaker


@pytest.mark.slow
def test_diarized_json_with_known_speaker_references(
    client: openai.OpenAI, three: tuple[Conversation, Path], tmp_path: Path
) -> None:
    talk, path = three
    with path.open("rb") as audio:
        diarized = client.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="diarized_json",
            chunking_strategy="auto",
            known_speaker_names=["Kennedy"],
            known_speaker_references=[data_url(enrolment_wav("jfk", tmp_path / "jfk.wav"))],
        )
    assert isinstance(diarized, TranscriptionDiarized)
    assert diarized.task == "transcribe"
    assert diarized.duration == pytest.approx(len(talk.samples) / 16000, abs=0.05)
    assert diarized.usage is not None and diarized.usage.type == "duration"
    assert "what you can do for your country" in diarized.text.lower()
    expected = {"jfk": "Kennedy", "librispeech_1089": "A", "ljspeech": "B"}
    assert {segment.speaker for segment in diarized.segments} == set(expected.values())
    for segment in diarized.segments:
        assert segment.type == "transcript.text.segment" and segment.id.startswith("seg_")
        assert segment.speaker == expected[truth_at(talk, segment.start, segment.end)], segment


def test_diarized_json_refuses_unpaired_references(
    client: openai.OpenAI, three: tuple[Conversation, Path]
) -> None:
    _, path = three
    with path.open("rb") as audio, pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="diarized_json", known_speaker_names=["Ann", "Bo"]
        )
    assert "pair up" in str(raised.value)


@pytest.mark.slow
def test_stream_sends_deltas_while_decoding_then_segments_and_done(
    client: openai.OpenAI, server: LiveServer, tmp_path: Path
) -> None:
    # A longer recording (the 4-speaker one, twice) so decoding takes many segments.
    talk = conversation(CONVERSATIONS[4] * 2)
    path = talk.write_wav(tmp_path / "long.wav")
    with path.open("rb") as audio:
        stream = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="diarized_json", stream=True
        )
        task_id = stream.response.headers["x-tingxie-task-id"]
        events = []
        status_at_first_delta = None
        for event in stream:
            if event.type == "transcript.text.delta" and status_at_first_delta is None:
                status_at_first_delta = httpx.get(f"{server.base_url}/api/v1/tasks/{task_id}").json()[
                    "status"
                ]
            events.append(event)
    kinds = [event.type for event in events]
    assert status_at_first_delta == "processing", "the first text arrives while the task still runs"
    assert kinds.count("transcript.text.delta") >= 2
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.done") == 1
    segments = [event for event in events if event.type == "transcript.text.segment"]
    assert len({segment.speaker for segment in segments}) == 4
    assert [segment.id for segment in segments] == [f"seg_{i}" for i in range(len(segments))]
    deltas = "".join(event.delta for event in events if event.type == "transcript.text.delta")
    done = events[-1]
    assert done.type == "transcript.text.done" and done.text == deltas.strip()

    final = httpx.get(f"{server.base_url}/api/v1/tasks/{task_id}").json()["result"]
    assert [s["speaker"] for s in final["segments"]] == [segment.speaker for segment in segments]


def test_plain_stream_without_diarization(client: openai.OpenAI, server: LiveServer) -> None:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "audio" / "jfk.flac"
    with path.open("rb") as audio:
        stream = client.audio.transcriptions.create(model="whisper-1", file=audio, stream=True)
        events = list(stream)
    assert events[-1].type == "transcript.text.done"
    assert "ask not what your country" in events[-1].text.lower()
    assert not [event for event in events if event.type == "transcript.text.segment"]
