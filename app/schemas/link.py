"""Request schemas for tasks created from media links."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from app.schemas.task import TaskRequest, _http_url

_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'，。！、【】（）]+", re.IGNORECASE)


def extract_link(text: str) -> str | None:
    """The first http(s) URL in ``text``: apps share links as "title ... https://v.douyin.com/xyz/ copy".

    Trailing punctuation is dropped.
    """
    match = _URL_IN_TEXT.search(text)
    if match is None:
        return None
    return match.group(0).rstrip(".,;:!?)]}")


class LinkTaskCreate(TaskRequest):
    """JSON body of ``POST /api/v1/tasks/from-link``. / 由媒体链接创建任务的请求体。"""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=4096,
        description=(
            "Link to a TikTok, Douyin, YouTube or Bilibili video, a short link (`v.douyin.com`, `b23.tv`, "
            "...) or any page yt-dlp supports; share text that contains a link also works. / 抖音、TikTok、YouTube、B站等视频链接、短链或 yt-dlp 支持的任意页面；也可粘贴包含链接的分享文本。"
        ),
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
