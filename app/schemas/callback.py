"""Webhook delivery state as the API shows it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class CallbackState(StrEnum):
    """pending (being sent or retried), delivered or failed (out of attempts). / 回调状态。"""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class CallbackStatus(BaseModel):
    """The latest callback delivery of a task. / 任务最近一次回调投递的状态。"""

    delivery_id: str = Field(
        description="Delivery id, sent as the `Idempotency-Key` header on every retry. / 投递 ID，每次重试都作为 Idempotency-Key 发送。"
    )
    event: str = Field(description="`task.completed` or `task.failed`. / 事件类型。")
    url: str = Field(description="Where it is sent. / 回调地址。")
    status: CallbackState = Field(description="pending, delivered or failed. / 投递状态。")
    attempts: int = Field(description="Attempts made so far. / 已尝试次数。")
    next_attempt_at: datetime | None = Field(
        description="When a pending delivery is tried next (UTC). / 下次尝试时间（UTC）。"
    )
    last_status_code: int | None = Field(
        description="HTTP status of the last reply, if any. / 最近一次响应的 HTTP 状态码。"
    )
    last_error: str | None = Field(
        description="Network error or refusal of the last attempt. / 最近一次尝试的错误。"
    )
    last_attempt_at: datetime | None = Field(description="Last attempt (UTC). / 最近一次尝试时间。")
    delivered_at: datetime | None = Field(description="Accepted by the receiver (UTC). / 送达时间。")
    created_at: datetime = Field(description="Queued (UTC). / 入队时间。")


class CallbackAttemptOut(BaseModel):
    """One HTTP attempt. / 一次投递尝试。"""

    number: int = Field(description="1 for the first attempt. / 第几次尝试。")
    status_code: int | None = Field(description="Reply status; null on a network error. / 响应状态码。")
    response_snippet: str | None = Field(description="Start of the reply body. / 响应正文开头。")
    error: str | None = Field(description="Network error, if any. / 网络错误。")
    duration_ms: float = Field(description="Duration in milliseconds. / 耗时（毫秒）。")
    attempted_at: datetime = Field(description="Start of the attempt (UTC). / 尝试时间（UTC）。")


class CallbackDeliveryOut(CallbackStatus):
    """A delivery with its attempts. / 一次投递及其全部尝试。"""

    history: list[CallbackAttemptOut] = Field(description="Attempts, oldest first. / 各次尝试（按时间）。")


class CallbackHistory(BaseModel):
    """Every callback delivery of a task, oldest first. / 任务的全部回调投递记录。"""

    task_id: str = Field(description="Task id. / 任务 ID。")
    deliveries: list[CallbackDeliveryOut] = Field(description="Deliveries, oldest first. / 投递记录。")
