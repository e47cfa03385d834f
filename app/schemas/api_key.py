"""Request and response schemas for API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ApiKeyCreate(BaseModel):
    """A key to create. / 要创建的 API 密钥。"""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=128,
        description="Who or what uses the key, for listings and logs. / 密钥使用者的名称，用于列表与日志。",
    )
    is_admin: bool = Field(
        default=False,
        description="Admin keys manage keys and see every task. / 管理员密钥可管理密钥并查看所有任务。",
    )


class ApiKeyOut(BaseModel):
    """An API key, without the secret. / API 密钥（不含密钥本身）。"""

    id: str = Field(description="Key id. / 密钥 ID。")
    name: str = Field(description="Name. / 名称。")
    prefix: str = Field(description="First characters of the key, to recognise it. / 密钥前缀，便于识别。")
    is_admin: bool = Field(description="Admin key. / 是否为管理员密钥。")
    created_at: datetime = Field(description="Created (UTC). / 创建时间（UTC）。")
    revoked_at: datetime | None = Field(description="Revoked (UTC), if revoked. / 吊销时间。")
    last_used_at: datetime | None = Field(
        description="Last use (UTC, to the minute). / 最近使用时间（UTC，精确到分钟）。"
    )


class ApiKeyCreated(ApiKeyOut):
    """A new key with its secret, shown only this once. / 新密钥及其明文（仅显示这一次）。"""

    key: str = Field(
        description="The key: send it as `Authorization: Bearer <key>` or `X-API-Key`. Shown only once. / 密钥明文，仅显示一次。"
    )
