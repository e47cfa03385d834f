"""Schemas of the legacy ``/api/whisper/...`` routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.task import MAX_OFFSET, TaskPriority, TaskStatus, TaskType


class Envelope(BaseModel):
    """The legacy response envelope. / 旧版响应信封。"""

    code: int = Field(description="HTTP status of the answer (200 on success). / 状态码（成功为 200）。")
    router: str = Field(description="Path of the route that answered. / 响应的路由路径。")
    params: dict[str, Any] = Field(description="The request parameters as understood. / 解析后的请求参数。")
    data: Any = Field(
        description="The payload, or the problem details on errors. / 返回数据；出错时为 problem 详情。"
    )


class LegacyTaskQuery(BaseModel):
    """Body of ``POST /api/whisper/tasks/query``; every filter is optional. / 任务查询条件（均可选）。"""

    model_config = ConfigDict(extra="ignore")

    status: TaskStatus | None = Field(default=None, description="Status filter. / 按状态筛选。")
    priority: TaskPriority | None = Field(default=None, description="Priority filter. / 按优先级筛选。")
    task_type: TaskType | None = Field(default=None, description="Task type filter. / 按任务类型筛选。")
    language: str | None = Field(default=None, max_length=16, description="Language filter. / 按语言筛选。")
    platform: str | None = Field(default=None, max_length=64, description="Platform filter. / 按平台筛选。")
    engine: str | None = Field(default=None, max_length=32, description="Engine filter. / 按引擎筛选。")
    model: str | None = Field(default=None, max_length=128, description="Model filter. / 按模型筛选。")
    created_after: datetime | None = Field(
        default=None, description="Created at or after (ISO 8601). / 创建时间不早于。"
    )
    created_before: datetime | None = Field(
        default=None, description="Created before (ISO 8601). / 创建时间早于。"
    )
    has_error: bool | None = Field(
        default=None, description="Only tasks with (true) or without (false) an error. / 是否有错误。"
    )
    limit: int = Field(default=20, ge=1, le=500, description="Page size. / 每页数量。")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Offset. / 偏移量。")
