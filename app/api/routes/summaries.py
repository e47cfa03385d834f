"""/api/v1/tasks/{id}/summaries: LLM summaries of a task's transcript."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, status

from app.api.deps import SummaryServiceDep
from app.api.problems import problem_responses
from app.schemas.summary import SummaryCreate, SummaryList, SummaryOut

router = APIRouter(prefix="/api/v1/tasks", tags=["summaries"])

TaskId = Annotated[str, Path(description="Task id. / 任务 ID。", max_length=64)]
SummaryId = Annotated[str, Path(description="Summary id. / 摘要 ID。", max_length=64)]
LLMKeyHeader = Annotated[
    str | None,
    Header(
        alias="X-LLM-API-Key",
        max_length=4096,
        description=(
            "API key for the LLM API, used for this request only: never stored, logged or echoed. "
            "Overrides `LLM__API_KEY`. / 本次请求使用的 LLM API 密钥，不会被保存、记录或回显；"
            "优先于 LLM__API_KEY。"
        ),
    ),
]


@router.post(
    "/{task_id}/summaries",
    status_code=status.HTTP_201_CREATED,
    summary="Summarise a transcript / 生成转录摘要",
    description=(
        "Sends the completed task's transcript to the OpenAI-compatible chat API (`LLM__*`) and "
        "stores the summary. Transcripts longer than `LLM__CONTEXT_TOKENS` are split on segment and "
        "sentence boundaries and summarised map-reduce. Runs within the request. An LLM API error "
        "answers 502 (the failed summary is stored with its error).\n\n"
        "把已完成任务的转录文本发送到 OpenAI 兼容的对话 API（LLM__*）并保存摘要。超过 "
        "LLM__CONTEXT_TOKENS 的文本按片段和句子边界分块，先分块摘要再合并（map-reduce）。"
        "在请求内同步完成；LLM API 出错时返回 502（失败记录连同错误一并保存）。"
    ),
    responses=problem_responses(404, 409, 422, 502, 503),
)
async def create_summary(
    service: SummaryServiceDep,
    task_id: TaskId,
    body: SummaryCreate,
    api_key: LLMKeyHeader = None,
) -> SummaryOut:
    return await service.summarise_task(task_id, body, api_key=api_key)


@router.get(
    "/{task_id}/summaries",
    summary="List summaries / 查询摘要列表",
    description="Summaries of the task, newest first. / 该任务的摘要，按时间倒序。",
    responses=problem_responses(404, 422),
)
async def list_summaries(service: SummaryServiceDep, task_id: TaskId) -> SummaryList:
    return await service.list_for_task(task_id)


@router.get(
    "/{task_id}/summaries/{summary_id}",
    summary="Get a summary / 查询摘要",
    description="One summary of the task. / 该任务的一条摘要。",
    responses=problem_responses(404, 422),
)
async def get_summary(service: SummaryServiceDep, task_id: TaskId, summary_id: SummaryId) -> SummaryOut:
    return await service.get(task_id, summary_id)
