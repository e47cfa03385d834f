"""Response schemas for workflows, runs and their steps (the document itself: app.workflows.definition)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WorkflowOut(BaseModel):
    """A stored workflow. / 已保存的工作流。"""

    id: str = Field(description="Workflow id. / 工作流 ID。")
    name: str = Field(description="Name. / 名称。")
    enabled: bool = Field(description="Whether its triggers fire. / 触发器是否启用。")
    definition: dict[str, Any] = Field(description="The workflow document. / 工作流文档。")
    created_at: datetime = Field(description="Created at (UTC). / 创建时间。")
    updated_at: datetime = Field(description="Updated at (UTC). / 更新时间。")


class WorkflowPage(BaseModel):
    """A page of workflows. / 工作流分页。"""

    items: list[WorkflowOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class StepAttemptOut(BaseModel):
    """One attempt of a step. / 步骤的一次尝试。"""

    number: int = Field(description="Attempt number, from 1. / 尝试序号。")
    outcome: str = Field(description="running, completed or failed. / 结果。")
    started_at: datetime | None = Field(default=None, description="Start (UTC). / 开始时间。")
    finished_at: datetime | None = Field(default=None, description="End (UTC). / 结束时间。")
    seconds: float | None = Field(default=None, description="Duration in seconds. / 耗时（秒）。")
    error: str | None = Field(default=None, description="Why it failed. / 失败原因。")
    task_id: str | None = Field(default=None, description="The task of this attempt. / 该次尝试的任务。")
    resumed: int = Field(default=0, description="Times it was resumed after a restart. / 重启后恢复次数。")


class StepOut(BaseModel):
    """A step of a run. / 运行中的一个步骤。"""

    id: str = Field(description="Step id. / 步骤 ID。")
    uses: str = Field(description="Step type. / 步骤类型。")
    status: str = Field(description="pending, running, completed, skipped, failed or cancelled. / 状态。")
    attempts: int = Field(description="Attempts so far. / 已尝试次数。")
    task_id: str | None = Field(description="Task of the current attempt. / 当前任务 ID。")
    output: dict[str, Any] | None = Field(description="The step's outputs. / 步骤输出。")
    error: str | None = Field(description="Last error. / 最近的错误。")
    next_attempt_at: datetime | None = Field(description="Next try (UTC) after a failure. / 下次重试时间。")
    started_at: datetime | None = Field(description="First start (UTC). / 首次开始时间。")
    completed_at: datetime | None = Field(description="End (UTC). / 结束时间。")
    seconds: float | None = Field(description="From first start to end. / 总耗时（秒）。")
    history: list[StepAttemptOut] = Field(description="Every attempt. / 每次尝试。")


class RunOut(BaseModel):
    """A workflow run. / 工作流运行。"""

    id: str = Field(description="Run id. / 运行 ID。")
    workflow_id: str = Field(description="Workflow id. / 工作流 ID。")
    status: str = Field(description="pending, running, completed, failed or cancelled. / 状态。")
    trigger: str = Field(description="manual, cron, task.completed or link.submitted. / 触发方式。")
    input: dict[str, Any] = Field(description="The run's input. / 运行输入。")
    error: str | None = Field(description="Why it failed. / 失败原因。")
    created_at: datetime = Field(description="Created at (UTC). / 创建时间。")
    started_at: datetime | None = Field(description="Started at (UTC). / 开始时间。")
    completed_at: datetime | None = Field(description="Ended at (UTC). / 结束时间。")
    steps: list[StepOut] | None = Field(default=None, description="The steps (single run only). / 步骤。")


class RunPage(BaseModel):
    """A page of runs. / 运行分页。"""

    items: list[RunOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ComponentOut(BaseModel):
    """A registered custom step component. / 已注册的自定义组件。"""

    name: str = Field(description="Name used in `uses`. / 在 uses 中使用的名称。")
    path: str = Field(description="module:callable. / 模块路径。")
    outputs: list[str] = Field(description="Declared outputs. / 声明的输出。")
    description: str = Field(description="First paragraph of its docstring. / 说明。")


class RunCreateForm(BaseModel):
    """The input of a new run besides an uploaded `file`. / 新运行的输入（上传文件之外）。"""

    model_config = ConfigDict(extra="ignore")  # the `file` part arrives in the same form

    file_url: str | None = Field(
        default=None, max_length=4000, description="Media URL to download. / 要下载的媒体 URL。"
    )
    link: str | None = Field(
        default=None,
        max_length=4000,
        description="Media page link (YouTube, Bilibili, ...), resolved with yt-dlp. / 媒体页面链接，用 yt-dlp 解析。",
    )
    task_id: str | None = Field(
        default=None,
        max_length=64,
        description="An existing task: its transcript is reused. / 已有任务 ID，复用其转录结果。",
    )
    params: str | None = Field(
        default=None,
        max_length=20000,
        description="JSON object of the workflow's declared parameters. / 工作流参数（JSON 对象）。",
    )
