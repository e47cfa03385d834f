"""Render a finished transcription in the response formats of OpenAI's audio API."""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import assert_never

from app.schemas.openai import (
    OpenAIResponseFormat,
    OpenAISegment,
    OpenAITranscription,
    OpenAIVerboseTranscription,
    OpenAIWord,
    TimestampGranularity,
)
from app.schemas.result import TranscriptionResult
from app.schemas.task import TaskType
from app.services.subtitles import SubtitleFormat, render_subtitles


@cache
def _language_names() -> dict[str, str]:
    """openai-whisper's ``LANGUAGES`` table, read from its ``tokenizer`` module alone: importing
    ``whisper.tokenizer`` runs the package's ``__init__``, which imports torch (seconds and
    hundreds of MB that the default engine never needs)."""
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        return {}
    location = f"{next(iter(spec.submodule_search_locations))}/tokenizer.py"
    tokenizer_spec = importlib.util.spec_from_file_location("_whisper_tokenizer_alone", location)
    if tokenizer_spec is None or tokenizer_spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(tokenizer_spec)
    tokenizer_spec.loader.exec_module(module)
    return dict(module.LANGUAGES)


def language_name(code: str | None) -> str:
    """OpenAI names languages in full (``english``); unknown codes are returned as they are."""
    if not code:
        return "unknown"
    return _language_names().get(code, code)


def verbose_json(
    result: TranscriptionResult,
    task_type: TaskType,
    granularities: frozenset[TimestampGranularity],
) -> OpenAIVerboseTranscription:
    """``segments`` unless only words were asked for; ``words`` when they were."""
    want_segments = not granularities or TimestampGranularity.segment in granularities
    segments = None
    if want_segments:
        segments = [
            OpenAISegment(
                id=segment.id,
                seek=segment.seek if segment.seek is not None else round(segment.start * 100),
                start=segment.start,
                end=segment.end,
                text=segment.text,
                tokens=segment.tokens or [],
                temperature=segment.temperature,
                avg_logprob=segment.avg_logprob,
                compression_ratio=segment.compression_ratio,
                no_speech_prob=segment.no_speech_prob,
            )
            for segment in result.segments
        ]
    words = None
    if TimestampGranularity.word in granularities:
        words = [
            OpenAIWord(word=word.word.strip(), start=word.start, end=word.end)
            for segment in result.segments
            for word in segment.words or []
        ]
    return OpenAIVerboseTranscription(
        task="translate" if task_type is TaskType.translate else "transcribe",
        language=language_name(result.language),
        duration=result.duration,
        text=result.text.strip(),
        segments=segments,
        words=words,
    )


def render_openai(
    result: TranscriptionResult,
    fmt: OpenAIResponseFormat,
    task_type: TaskType,
    granularities: frozenset[TimestampGranularity] = frozenset(),
) -> tuple[str, str]:
    """(body, media type) of ``result`` in ``fmt``."""
    if fmt is OpenAIResponseFormat.json:
        return OpenAITranscription(text=result.text.strip()).model_dump_json(), "application/json"
    if fmt is OpenAIResponseFormat.verbose_json:
        body = verbose_json(result, task_type, granularities).model_dump_json(exclude_none=True)
        return body, "application/json"
    if fmt is OpenAIResponseFormat.text:
        return result.text.strip() + "\n", "text/plain; charset=utf-8"
    if fmt is OpenAIResponseFormat.srt:
        return render_subtitles(result, SubtitleFormat.SRT), "text/plain; charset=utf-8"
    if fmt is OpenAIResponseFormat.vtt:
        return render_subtitles(result, SubtitleFormat.VTT), "text/plain; charset=utf-8"
    assert_never(fmt)
