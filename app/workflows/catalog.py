"""The step types a workflow may use: their inputs and outputs, for validation and the docs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StepKind(StrEnum):
    """How the runner executes a step type."""

    task = "task"
    """Creates a task in the queue (priorities, distribution, the model pool) and waits for it."""
    inline = "inline"
    """Runs inside the runner on the node that holds the run."""


@dataclass(frozen=True)
class StepType:
    name: str
    kind: StepKind
    inputs: frozenset[str]
    outputs: frozenset[str]
    required: frozenset[str] = field(default_factory=frozenset)
    description: str = ""


UNIVERSAL_OUTPUTS = frozenset({"status"})
"""Every step exposes ``status`` (``completed``, ``skipped``, ...) to later expressions."""

_TRANSCRIPT_OUTPUTS = frozenset({"text", "language", "language_probability", "duration", "result", "task_id"})
_TASK_INPUTS = frozenset(
    {
        "media",
        "task",
        "model",
        "language",
        "chinese_script",
        "priority",
        "word_timestamps",
        "initial_prompt",
        "diarize",
        "num_speakers",
        "min_speakers",
        "max_speakers",
    }
)

BUILTINS: dict[str, StepType] = {
    "transcribe": StepType(
        "transcribe",
        StepKind.task,
        _TASK_INPUTS,
        _TRANSCRIPT_OUTPUTS,
        description="Transcribe media through the task queue (or reuse the input task's result).",
    ),
    "translate": StepType(
        "translate",
        StepKind.task,
        _TASK_INPUTS - {"task"},
        _TRANSCRIPT_OUTPUTS,
        description="Translate speech to English through the task queue (needs a multilingual model).",
    ),
    "summarize": StepType(
        "summarize",
        StepKind.inline,
        frozenset({"text", "prompt", "language", "model"}),
        frozenset({"summary", "model", "chunk_count"}),
        required=frozenset({"text"}),
        description="Summarise text with the configured OpenAI-compatible LLM.",
    ),
    "subtitles": StepType(
        "subtitles",
        StepKind.inline,
        frozenset({"transcript", "max_line_chars", "max_lines", "max_duration"}),
        frozenset({"srt", "vtt", "text", "language"}),
        required=frozenset({"transcript"}),
        description="Render SRT, WebVTT and plain text from a transcription result.",
    ),
    "extract_audio": StepType(
        "extract_audio",
        StepKind.inline,
        frozenset({"media", "format", "sample_rate", "channels"}),
        frozenset({"audio", "format", "duration", "size", "url"}),
        description="Extract the audio track as an artifact (wav, mp3, flac or opus).",
    ),
    "webhook": StepType(
        "webhook",
        StepKind.inline,
        frozenset({"url", "body"}),
        frozenset({"status_code", "response", "idempotency_key"}),
        required=frozenset({"url"}),
        description="POST a signed JSON body with an Idempotency-Key (at least once).",
    ),
}
