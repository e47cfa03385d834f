"""Chinese script control: OpenCC conversion of real ``base`` output on the shared zh clips,
through every way a task can ask for a script."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import srt

from app.processor.chinese_script import convert_result, convert_text, residue
from app.schemas.chinese import ChineseScript
from app.schemas.link import LinkTaskCreate
from app.schemas.result import Segment, TranscriptionResult, Word
from app.schemas.task import DecodeOptions
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done
from tests.workflows.support import create_workflow, start_run, steps_of, wait_run

SCRIPTS = [script for script in ChineseScript if script is not ChineseScript.original]
BASE = {"default_model": "base", "allowed_models": ["base"]}


def zh_clips(clips: dict[str, Clip]) -> list[Clip]:
    found = [clip for clip in clips.values() if clip.language == "zh"]
    assert found, "the shared audio has no zh clips"
    return found


def texts_of(result: dict[str, Any]) -> list[str]:
    """Every text a result carries: full text, segments and words."""
    texts = [result["text"]]
    for segment in result["segments"]:
        texts.append(segment["text"])
        texts.extend(word["word"] for word in segment.get("words") or [])
    return texts


def timings(result: dict[str, Any]) -> list[tuple[float, float]]:
    stamps = [(segment["start"], segment["end"]) for segment in result["segments"]]
    for segment in result["segments"]:
        stamps.extend((word["start"], word["end"]) for word in segment.get("words") or [])
    return stamps


def assert_in_script(result: dict[str, Any], script: ChineseScript, where: str) -> None:
    assert any("\u4e00" <= ch <= "\u9fff" for ch in result["text"]), (where, result["text"])
    for text in texts_of(result):
        assert residue(text, script) == "", (where, script, text)


def test_conversion_is_phrase_level_and_keeps_timings() -> None:
    mixed = "头发發展，鼠標軟件"
    assert convert_text(mixed, ChineseScript.simplified) == "头发发展，鼠标软件"
    assert convert_text(mixed, ChineseScript.traditional) == "頭髮發展，鼠標軟件"
    assert convert_text(mixed, ChineseScript.taiwan) == "頭髮發展，滑鼠軟體"
    assert convert_text(mixed, ChineseScript.original) == mixed
    words = [
        Word(start=0.5, end=0.9, word="头", probability=0.9),
        Word(start=0.9, end=1.2, word="发", probability=0.8),
    ]
    segment = Segment(
        id=0,
        start=0.5,
        end=1.2,
        text="头发",
        avg_logprob=-0.1,
        no_speech_prob=0.0,
        compression_ratio=1.0,
        temperature=0.0,
        words=words,
    )
    result = TranscriptionResult(text="头发", language="zh", duration=2.0, segments=[segment])
    converted = convert_result(result, ChineseScript.traditional)
    # Phrase-level across word boundaries: 头 + 发 → 頭 + 髮 (one character at a time: 發).
    assert [w.word for w in converted.segments[0].words or []] == ["頭", "髮"]
    assert converted.text == converted.segments[0].text == "頭髮"
    assert [(w.start, w.end) for w in converted.segments[0].words or []] == [(0.5, 0.9), (0.9, 1.2)]
    english = result.model_copy(update={"language": "en"})
    assert convert_result(english, ChineseScript.traditional) == english
    assert (
        convert_result(result.model_copy(update={"language": "yue"}), ChineseScript.hongkong).text == "頭髮"
    )


@pytest.mark.parametrize(
    ("tag", "script"),
    [
        ("zh-Hans", "simplified"),
        ("zh-CN", "simplified"),
        ("zh_cn", "simplified"),
        ("zh-Hant", "taiwan"),
        ("zh-TW", "taiwan"),
        ("zh-HK", "hongkong"),
    ],
)
def test_language_tags_mean_zh_plus_a_script(tag: str, script: str) -> None:
    options = DecodeOptions(language=tag)
    assert options.language == "zh" and options.chinese_script == script
    link = LinkTaskCreate(url="https://example.com/v", language=tag)
    assert link.language == "zh" and link.chinese_script == script
    # An explicit script wins over the tag's.
    assert DecodeOptions(language=tag, chinese_script="traditional").chinese_script == "traditional"
    assert DecodeOptions(language="zh").chinese_script is None


@pytest.mark.slow
async def test_every_script_on_the_shared_zh_clips(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    """Each zh clip with each setting: converted output has no character OpenCC would still
    convert to that script, and the timings are those of the unconverted output. (Short windows:
    a clip is encoded in 10 s, not 30 s; the conversion, not the decoder, is under test.)"""
    async with running_app(make_settings(whisper={**BASE, "short_windows": True})) as running:
        ids: dict[tuple[str, ChineseScript], str] = {}
        for clip in zh_clips(clips):
            for script in ChineseScript:
                response = await upload(
                    running.client,
                    clip.path,
                    language="zh",
                    chinese_script=script.value,
                    word_timestamps="true",
                )
                assert response.status_code == 201, response.text
                ids[clip.file, script] = response.json()["id"]
        tasks = {key: await wait_done(running.client, task_id, timeout=600) for key, task_id in ids.items()}
    unconverted_residue: set[ChineseScript] = set()
    for (file, script), task in tasks.items():
        assert task["status"] == "completed", task
        assert task["chinese_script"] == script.value == task["options"]["chinese_script"]
        original = tasks[file, ChineseScript.original]["result"]
        if script is ChineseScript.original:
            unconverted_residue.update(s for s in SCRIPTS if residue(original["text"], s))
            continue
        assert_in_script(task["result"], script, file)
        assert timings(task["result"]) == timings(original), file
    # base mixes scripts on these clips: without conversion every target would fail the check.
    assert unconverted_residue == set(SCRIPTS)


@pytest.mark.slow
async def test_tags_defaults_and_routes(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    """Language tags through the task, batch, OpenAI, legacy and workflow routes; the server's
    default script; subtitles."""
    clip = clips["BAC009S0724W0121.wav"]  # base writes it in Traditional characters
    settings = make_settings(whisper=BASE, chinese={"default_script": "simplified"})
    async with running_app(settings) as running:
        client = running.client
        created: dict[str, str] = {}
        created["zh-TW"] = (await upload(client, clip.path, language="zh-TW")).json()["id"]
        created["default"] = (await upload(client, clip.path, language="zh")).json()["id"]
        created["original"] = (
            await upload(client, clip.path, language="zh", chinese_script="original")
        ).json()["id"]
        with clip.path.open("rb") as handle:
            legacy = await client.post(
                "/api/whisper/tasks/create",
                params={"language": "zh-HK"},
                files={"file_upload": (clip.file, handle, "audio/wav")},
            )
        assert legacy.status_code == 200, legacy.text
        created["legacy zh-HK"] = legacy.json()["data"]["id"]
        with clip.path.open("rb") as handle:
            batch = await client.post(
                "/api/v1/tasks/batch",
                data={"language": "zh-Hant"},
                files=[("files", (clip.file, handle, "audio/wav"))],
            )
        assert batch.status_code == 201, batch.text
        created["batch zh-Hant"] = batch.json()["tasks"][0]["id"]
        with clip.path.open("rb") as handle:
            openai = await client.post(
                "/v1/audio/transcriptions",
                data={"model": "whisper-1", "language": "zh-Hant", "response_format": "verbose_json"},
                files={"file": (clip.file, handle, "audio/wav")},
            )
        assert openai.status_code == 200, openai.text
        assert openai.json()["language"] in ("zh", "chinese")
        assert_in_script(
            {"text": openai.json()["text"], "segments": openai.json()["segments"]},
            ChineseScript.taiwan,
            "openai",
        )

        workflow = await create_workflow(
            client,
            {
                "name": "zh-cn transcript",
                "steps": [
                    {"id": "transcribe", "uses": "transcribe", "with": {"language": "zh-CN"}},
                    {
                        "id": "hk",
                        "uses": "transcribe",
                        "with": {"language": "zh", "chinese_script": "hongkong"},
                    },
                ],
            },
        )
        run = await wait_run(client, (await start_run(client, workflow, clip.path))["id"])
        assert run["status"] == "completed", run
        workflow_task = steps_of(run)["transcribe"]["task_id"]
        workflow_hk_task = steps_of(run)["hk"]["task_id"]

        tasks = {name: await wait_done(client, task_id) for name, task_id in created.items()}
        tasks["workflow zh-CN"] = await wait_done(client, workflow_task)
        tasks["workflow hongkong"] = await wait_done(client, workflow_hk_task)
        expected = {
            "zh-TW": ChineseScript.taiwan,
            "default": ChineseScript.simplified,
            "legacy zh-HK": ChineseScript.hongkong,
            "batch zh-Hant": ChineseScript.taiwan,
            "workflow zh-CN": ChineseScript.simplified,
            "workflow hongkong": ChineseScript.hongkong,
        }
        for name, script in expected.items():
            task = tasks[name]
            assert task["status"] == "completed", (name, task)
            assert task["chinese_script"] == script.value and task["options"]["language"] == "zh", name
            assert_in_script(task["result"], script, name)
        assert residue(tasks["original"]["result"]["text"], ChineseScript.simplified) != ""
        assert tasks["original"]["chinese_script"] == "original"

        subtitles = await client.get(f"/api/v1/tasks/{created['zh-TW']}/subtitles", params={"format": "srt"})
        assert subtitles.status_code == 200
        cues = "".join(cue.content for cue in srt.parse(subtitles.text))
        assert cues and residue(cues, ChineseScript.taiwan) == ""
