"""Render a finished transcription in the response formats of OpenAI's audio API."""

from __future__ import annotations

from typing import assert_never

from app.schemas.openai import (
    OpenAIDiarizedSegment,
    OpenAIDiarizedTranscription,
    OpenAIDurationUsage,
    OpenAIResponseFormat,
    OpenAISegment,
    OpenAITranscription,
    OpenAIVerboseTranscription,
    OpenAIWord,
    TimestampGranularity,
)
from app.schemas.result import TranscriptionResult
from app.schemas.task import TaskType
from app.services.languages import LANGUAGE_NAMES
from app.services.subtitles import SubtitleFormat, render_subtitles


def language_name(code: str | None) -> str:
    """OpenAI names languages in full (``english``); unknown codes are returned as they are."""
    if not code:
        return "unknown"
    return LANGUAGE_NAMES.get(code, code)


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
                speaker=segment.speaker,
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


def diarized_json(result: TranscriptionResult) -> OpenAIDiarizedTranscription:
    """OpenAI's ``diarized_json``: the text, and segments with their speakers."""
    return OpenAIDiarizedTranscription(
        duration=result.duration,
        text=result.text.strip(),
        segments=[
            OpenAIDiarizedSegment(
                id=f"seg_{index}",
                start=segment.start,
                end=segment.end,
                text=segment.text.strip(),
                speaker=segment.speaker or "A",
            )
            for index, segment in enumerate(result.segments)
        ],
        usage=OpenAIDurationUsage(seconds=result.duration),
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
    if fmt is OpenAIResponseFormat.diarized_json:
        return diarized_json(result).model_dump_json(), "application/json"
    if fmt is OpenAIResponseFormat.text:
        return result.text.strip() + "\n", "text/plain; charset=utf-8"
    if fmt is OpenAIResponseFormat.srt:
        return render_subtitles(result, SubtitleFormat.SRT), "text/plain; charset=utf-8"
    if fmt is OpenAIResponseFormat.vtt:
        return render_subtitles(result, SubtitleFormat.VTT), "text/plain; charset=utf-8"
    assert_never(fmt)
