"""Request and response schemas for LLM summaries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

PROMPT_MAX_CHARS = 8000
LEGACY_TEXT_MAX_CHARS = 2_000_000


class SummaryStatus(StrEnum):
    """Outcome of a summary. / 摘要状态。"""

    completed = "completed"
    failed = "failed"


class SummaryOptions(BaseModel):
    """What to ask the LLM. / 摘要参数。"""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=PROMPT_MAX_CHARS,
        description=(
            "Instruction for the summary; empty uses `LLM__DEFAULT_PROMPT`. / "
            "摘要指令，留空使用 LLM__DEFAULT_PROMPT。"
        ),
    )
    language: str | None = Field(
        default=None,
        min_length=2,
        max_length=32,
        description=(
            "Language of the summary, a code or a name (`zh`, `English`); empty keeps the "
            "transcript's language. / 摘要语言，代码或名称（如 zh、English），留空则与转录语言相同。"
        ),
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description=(
            "Chat model; empty uses `LLM__MODEL`. Only `LLM__MODEL` and `LLM__ALLOWED_MODELS` are "
            "accepted (422 otherwise). / 对话模型，留空使用 LLM__MODEL；只接受 LLM__MODEL 与 "
            "LLM__ALLOWED_MODELS 中的模型（否则返回 422）。"
        ),
    )


class SummaryCreate(SummaryOptions):
    """Create a summary of a task's transcript. / 为任务的转录文本生成摘要。"""


class SummaryOut(BaseModel):
    """A stored summary. / 已保存的摘要。"""

    id: str = Field(description="Summary id. / 摘要 ID。")
    task_id: str = Field(description="Task whose transcript was summarised. / 对应任务 ID。")
    status: SummaryStatus = Field(description="completed or failed. / 完成或失败。")
    model: str = Field(description="Chat model used. / 使用的对话模型。")
    prompt: str = Field(description="Instruction used. / 使用的摘要指令。")
    language: str | None = Field(description="Requested summary language. / 请求的摘要语言。")
    content: str | None = Field(description="The summary (Markdown). / 摘要内容（Markdown）。")
    chunk_count: int = Field(
        description="Transcript chunks summarised separately (1: no chunking). / 分块数（1 表示未分块）。"
    )
    error: str | None = Field(description="Why it failed. / 失败原因。")
    prompt_tokens: int | None = Field(description="Prompt tokens reported by the API. / 输入 token 数。")
    completion_tokens: int | None = Field(
        description="Completion tokens reported by the API. / 输出 token 数。"
    )
    total_tokens: int | None = Field(description="Total tokens reported by the API. / 总 token 数。")
    processing_time: float | None = Field(description="Seconds spent. / 耗时（秒）。")
    created_at: datetime = Field(description="Creation time (UTC). / 创建时间（UTC）。")


class SummaryList(BaseModel):
    """Summaries of one task, newest first. / 某任务的摘要列表，按时间倒序。"""

    items: list[SummaryOut] = Field(description="Summaries. / 摘要列表。")


class LegacySummaryRequest(SummaryOptions):
    """Legacy summary request: a task id or raw text. / 旧版摘要请求：任务 ID 或原始文本。"""

    task_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Summarise this completed task's transcript (the summary is stored). / "
            "对该已完成任务的转录文本生成摘要（会保存）。"
        ),
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=LEGACY_TEXT_MAX_CHARS,
        description="Or summarise this text (not stored). / 或对这段文本生成摘要（不保存）。",
    )

    @model_validator(mode="after")
    def _one_source(self) -> LegacySummaryRequest:
        if (self.task_id is None) == (self.text is None):
            raise ValueError("give exactly one of `task_id` or `text`")
        return self


class LegacySummaryResponse(BaseModel):
    """Legacy summary response. / 旧版摘要响应。"""

    summary: str = Field(description="The summary. / 摘要内容。")
    model: str = Field(description="Chat model used. / 使用的对话模型。")
    chunk_count: int = Field(description="Chunks summarised separately. / 分块数。")
    summary_id: str | None = Field(
        description="Stored summary id (task summaries only). / 已保存的摘要 ID（仅任务摘要）。"
    )
    total_tokens: int | None = Field(description="Total tokens reported by the API. / 总 token 数。")
