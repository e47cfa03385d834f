"""Request schemas for tasks created from media links."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from app.media.platforms import extract_link
from app.schemas.task import DecodeOptions, TaskPriority, TaskType, _http_url


class LinkTaskCreate(DecodeOptions):
    """JSON body of ``POST /api/v1/tasks/from-link``. / 由媒体链接创建任务的请求体。"""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=4096,
        description=(
            "Link to a TikTok, Douyin, YouTube or Bilibili video, a short link (`v.douyin.com`, `b23.tv`, "
            "...) or any page yt-dlp supports; share text that contains a link also works. / 抖音、TikTok、YouTube、B站等视频链接、短链或 yt-dlp 支持的任意页面；也可粘贴包含链接的分享文本。"
        ),
    )
    task_type: TaskType = Field(
        default=TaskType.transcribe,
        description="`transcribe` keeps the language; `translate` outputs English. / transcribe 保留原语言，translate 译为英文。",
    )
    priority: TaskPriority = Field(
        default=TaskPriority.normal,
        description="`high` tasks run before `normal`, `normal` before `low`. / 高优先级先于普通，普通先于低。",
    )
    model: str | None = Field(
        default=None,
        max_length=128,
        description="Model from the configured allowlist (e.g. `base`, `tiny.en`); empty uses the default. / 模型名（需在允许列表中），留空使用默认模型。",
    )
    engine: Literal["faster_whisper", "openai_whisper"] | None = Field(
        default=None,
        description="Engine from the configured allowlist; empty uses the default. / 推理引擎（需在允许列表中），留空使用默认引擎。",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=4096,
        description="URL that receives the task when it ends. / 任务结束时接收回调的地址。",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip()
        if any(char.isspace() for char in text) or not text.lower().startswith(("http://", "https://")):
            text = extract_link(text) or text  # share text: "title ... https://v.douyin.com/xyz/ copy"
        checked = _http_url(text)
        if checked is None:
            raise ValueError("must be an absolute http:// or https:// URL")
        return checked

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("model", "engine", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions.model_validate(self.model_dump(include=set(DecodeOptions.model_fields)))
