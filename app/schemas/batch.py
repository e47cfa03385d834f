"""Request and response schemas for batches."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from app.schemas.task import TaskCreateForm, TaskStatus


class BatchCreateForm(TaskCreateForm):
    """Form fields of ``POST /api/v1/tasks/batch``: the task options, applied to every file."""

    file_url: SkipJsonSchema[None] = None  # batches take uploads only


class BatchTaskOut(BaseModel):
    """One task of a batch. / 批次中的一个任务。"""

    id: str = Field(description="Task id. / 任务 ID。")
    file_name: str | None = Field(description="Uploaded file name. / 上传的文件名。")
    status: TaskStatus = Field(description="Status. / 状态。")
    progress: float = Field(description="Progress 0-100. / 进度（0-100）。")
    duration: float | None = Field(description="Audio seconds. / 音频时长（秒）。")
    language: str | None = Field(description="Detected language. / 检测到的语言。")
    error: str | None = Field(description="Error of a failed task. / 失败原因。")
    text: str | None = Field(description="Transcript once completed. / 完成后的文本。")


class BatchOut(BaseModel):
    """A batch: progress and per-task results. / 批次：进度与各任务结果。"""

    id: str = Field(description="Batch id. / 批次 ID。")
    created_at: datetime = Field(description="Created (UTC). / 创建时间（UTC）。")
    total: int = Field(description="Tasks created in the batch. / 批次创建的任务数。")
    counts: dict[TaskStatus, int] = Field(
        description="Remaining tasks by status (deleted tasks are not counted). / 各状态的任务数（不含已删除）。"
    )
    progress: float = Field(
        description="Overall progress 0-100 (finished tasks count 100). / 总体进度（已结束的任务计 100）。"
    )
    finished: bool = Field(description="Every remaining task has finished. / 剩余任务是否都已结束。")
    tasks: list[BatchTaskOut] = Field(description="Tasks in upload order. / 按上传顺序的任务。")
