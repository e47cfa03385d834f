"""The workflow document: a JSON description of steps (a DAG), their inputs, conditions, retries and triggers.

This module only describes the shape; :mod:`app.workflows.validation` checks the meaning
(references, cycles, step types, conditions, cron expressions).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.workflows.url_patterns import MAX_URL_PATTERN_CHARS

STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""Step ids are identifiers, so that ``steps.<id>`` reads naturally in expressions."""


class InputKind(StrEnum):
    """What a run starts from. / 运行的输入类型。"""

    upload = "upload"
    url = "url"
    link = "link"
    task = "task"
    none = "none"


ALL_MEDIA_KINDS = [InputKind.upload, InputKind.url, InputKind.link, InputKind.task]

INPUT_FIELDS = frozenset(
    {"kind", "media", "file_name", "url", "task_id", "platform", "link", "params", "duration"}
)
"""Fields of ``input`` that expressions may read."""


class InputSpec(BaseModel):
    """What a run of the workflow accepts. / 工作流运行接受的输入。"""

    model_config = ConfigDict(extra="forbid")

    kinds: list[InputKind] = Field(
        default_factory=lambda: list(ALL_MEDIA_KINDS),
        min_length=1,
        max_length=5,
        description="Accepted input kinds (`none`: runs need no media). / 接受的输入类型（none 表示无需媒体）。",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        max_length=50,
        description=(
            "Named parameters with their default values, read as `input.params.<name>`. / "
            "命名参数及其默认值，通过 input.params.<name> 读取。"
        ),
    )


class RetryPolicy(BaseModel):
    """How often a failed step is tried again, and how long to wait between tries. / 步骤重试策略。"""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Tries in all, the first included. / 总尝试次数。"
    )
    backoff_seconds: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="Wait before the 2nd try; doubles each time. / 首次重试前的等待秒数，之后翻倍。",
    )
    max_backoff_seconds: float = Field(
        default=300.0, ge=0, le=86400, description="Longest wait between tries. / 两次尝试之间的最长等待。"
    )

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after failed try number ``failed_attempt`` (1-based)."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** max(0, failed_attempt - 1)))


class StepSpec(BaseModel):
    """One step of a workflow. / 工作流中的一个步骤。"""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    id: str = Field(pattern=STEP_ID_PATTERN, description="Step id, unique in the workflow. / 步骤 ID。")
    uses: str = Field(
        min_length=1,
        max_length=128,
        description="A built-in step type or a registered component. / 内置步骤类型或已注册组件名。",
    )
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        max_length=50,
        description=(
            "The step's inputs: literals, or `${...}` references to `input` and earlier steps' outputs. / "
            "步骤输入：字面量，或引用 input 与前序步骤输出的 ${...} 表达式。"
        ),
    )
    needs: list[Annotated[str, Field(pattern=STEP_ID_PATTERN)]] = Field(
        default_factory=list,
        max_length=100,
        description="Steps that must finish first, besides those referenced. / 除引用外必须先完成的步骤。",
    )
    if_: str | None = Field(
        default=None,
        alias="if",
        max_length=1000,
        description="Run only when this condition holds, e.g. `steps.transcribe.language != 'en'`. / 运行条件。",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retry policy. / 重试策略。")


class ManualTrigger(BaseModel):
    """Runs started through the API. / 通过 API 手动启动。"""

    model_config = ConfigDict(extra="forbid")

    type: Literal["manual"] = "manual"


class ScheduledInput(BaseModel):
    """The input a scheduled run gets. / 定时运行使用的输入。"""

    model_config = ConfigDict(extra="forbid")

    file_url: str | None = Field(default=None, max_length=4000, description="Media URL. / 媒体 URL。")
    link: str | None = Field(default=None, max_length=4000, description="Media page link. / 媒体页面链接。")
    params: dict[str, Any] = Field(default_factory=dict, max_length=50, description="Parameters. / 参数。")


class CronTrigger(BaseModel):
    """Runs on a cron schedule; each slot fires once across all nodes. / 按 cron 定时运行。"""

    model_config = ConfigDict(extra="forbid")

    type: Literal["cron"]
    schedule: str = Field(min_length=1, max_length=200, description="Cron expression. / cron 表达式。")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA time zone. / 时区。")
    input: ScheduledInput = Field(default_factory=ScheduledInput, description="Run input. / 运行输入。")


class EventName(StrEnum):
    task_completed = "task.completed"
    link_submitted = "link.submitted"


class EventTrigger(BaseModel):
    """Runs when a task completes or a link is submitted. / 任务完成或提交链接时运行。"""

    model_config = ConfigDict(extra="forbid")

    type: Literal["event"]
    on: EventName = Field(description="The event. / 事件。")
    match: dict[str, str] = Field(
        default_factory=dict,
        max_length=10,
        description=(
            "task.completed: task fields that must be equal (platform, task_type, language, model, source). "
            "link.submitted: `url` (glob) or `url_regex` (RE2 syntax: no backreferences or lookaround), "
            f"each at most {MAX_URL_PATTERN_CHARS} characters. / 匹配条件（url_regex 使用 RE2 语法，"
            f"不支持反向引用与环视；最长 {MAX_URL_PATTERN_CHARS} 字符）。"
        ),
    )


Trigger = Annotated[ManualTrigger | CronTrigger | EventTrigger, Field(discriminator="type")]


def _manual_only() -> list[ManualTrigger | CronTrigger | EventTrigger]:
    return [ManualTrigger()]


class WorkflowDocument(BaseModel):
    """A workflow: steps forming a DAG, and what starts it. / 工作流定义。"""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    name: str = Field(min_length=1, max_length=128, description="Workflow name. / 工作流名称。")
    description: str | None = Field(default=None, max_length=2000, description="Free text. / 说明。")
    input: InputSpec = Field(default_factory=InputSpec, description="Accepted input. / 接受的输入。")
    steps: list[StepSpec] = Field(
        min_length=1, max_length=200, description="The steps (a DAG). / 步骤列表（有向无环图）。"
    )
    triggers: list[Trigger] = Field(
        default_factory=_manual_only,
        max_length=20,
        description="What starts runs: manual, cron or event. / 触发方式：手动、定时或事件。",
    )
    enabled: bool = Field(default=True, description="Whether triggers fire. / 是否启用触发器。")

    def trigger_kinds(self) -> set[str]:
        kinds: set[str] = set()
        for trigger in self.triggers:
            kinds.add(trigger.on.value if isinstance(trigger, EventTrigger) else trigger.type)
        return kinds
