"""Chinese script control: OpenCC conversion of real ``base`` output on the shared zh clips,
through every way a task can ask for a script."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.schemas.chinese import ChineseScript
from app.services.chinese_script import convert_result, convert_text, residue
from app.schemas.result import Segment, TranscriptionResult, Word
from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done

SCRIPTS = [script for script in ChineseScript if script is not ChineseScript.original]


def zh_clips(clips: dict[str, Clip]) -> list[Clip]:
    found = [clip for clip in clips.values() if clip.language == "zh"]
    assert found, "the shared audio has no zh clips"
    return found


def texts_of(task: dict[str, Any]) -> list[str]:
    """Every text the result carries: full text, segments and words."""
    result = task["result"]
    texts = [result["text"]]
    for segment in result["segments"]:
        texts.append(segment["text"])
        texts.extend(word["word"] for word in segment.get("words") or [])
    return texts


def timings(task: dict[str, Any]) -> list[tuple[float, float]]:
    result = task["result"]
    stamps = [(segment["start"], segment["end"]) for segment in result["segments"]]
    for segment in result["segments"]:
        stamps.extend((word["start"], word["end"]) for word in segment.get("words") or [])
    return stamps


def test_conversion_is_phrase_level_and_keeps_timings() -> None:
    mixed = "头发發展，鼠標軟件"
    assert convert_text(mixed, ChineseScript.simplified) == "头发发展，鼠标软件"
    assert convert_text(mixed, ChineseScript.traditional) == "頭髮發展，鼠標軟件"
    assert convert_text(mixed, ChineseScript.taiwan) == "頭髮發展，滑鼠軟體"
    assert convert_text(mixed, ChineseScript.original) == mixed
    words = [Word(start=0.5, end=0.9, word="头", probability=0.9), Word(start=0.9, end=1.2, word="发", probability=0.8)]
    segment = Segment(
        id=0, start=0.5, end=1.2, text="头发", avg_logprob=-0.1, no_speech_prob=0.0,
        compression_ratio=1.0, temperature=0.0, words=words,
    )
    result = TranscriptionResult(text="头发", language="zh", duration=2.0, segments=[segment])
    converted = convert_result(result, ChineseScript.traditional)
    # Phrase-level even across word boundaries: 头 + 发 → 頭 + 髮 (character by character 发 → 發).
    assert [w.word for w in converted.segments[0].words or []] == ["頭", "髮"]
    assert converted.text == converted.segments[0].text == "頭髮"
    assert [(w.start, w.end) for w in converted.segments[0].words or []] == [(0.5, 0.9), (0.9, 1.2)]
    english = result.model_copy(update={"language": "en"})
    assert convert_result(english, ChineseScript.traditional) == english


@pytest.mark.parametrize("script", SCRIPTS)
async def test_each_script_on_the_shared_zh_clips(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], script: ChineseScript
) -> None:
    settings = make_settings(whisper={"default_model": "base", "allowed_models": ["base"]})
    async with running_app(settings) as running:
        ids = {}
        for clip in zh_clips(clips):
            response = await upload(
                running.client, clip.path, language="zh", chinese_script=script.value, word_timestamps="true"
            )
            assert response.status_code == 201, response.text
            ids[clip.file] = response.json()["id"]
        for file, task_id in ids.items():
            task = await wait_done(running.client, task_id, timeout=300)
            assert task["status"] == "completed", task
            assert task["chinese_script"] == script.value
            assert task["options"]["chinese_script"] == script.value
            han = "".join(texts_of(task))
            assert any("\u4e00" <= ch <= "\u9fff" for ch in han), (file, task["result"]["text"])
            for text in texts_of(task):
                assert residue(text, script) == "", (file, script, text)
