"""Request and response schemas of enrolled voices (``/api/v1/speakers``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SpeakerOut(BaseModel):
    """An enrolled voice (its embedding is not returned). / 已登记的声纹（不返回向量）。"""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Speaker id. / 说话人 ID。")
    name: str = Field(description="Name diarized tasks use for this voice. / 说话人分离时使用的名字。")
    sample_seconds: float = Field(description="Length of the enrolled sample. / 登记样本时长（秒）。")
    created_at: datetime = Field(description="Enrolled (UTC). / 登记时间（UTC）。")


class SpeakerPage(BaseModel):
    """One page of enrolled voices, newest first. / 分页的已登记声纹（最新在前）。"""

    items: list[SpeakerOut] = Field(description="Speakers on this page. / 本页说话人。")
    total: int = Field(description="Speakers visible to the key. / 可见的说话人总数。")
    limit: int = Field(description="Page size. / 每页数量。")
    offset: int = Field(description="Offset of this page. / 偏移量。")
