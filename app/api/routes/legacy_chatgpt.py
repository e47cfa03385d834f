"""POST /api/chatgpt/summary: the summary route of older clients, over the summary service."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SummaryServiceDep
from app.api.problems import problem_responses
from app.api.routes.summaries import LLMKeyHeader
from app.schemas.summary import LegacySummaryRequest, LegacySummaryResponse

router = APIRouter(prefix="/api/chatgpt", tags=["legacy"])


@router.post(
    "/summary",
    summary="Summarise (legacy) / 生成摘要（旧版）",
    description=(
        "**Legacy** route kept for older clients; use `POST /api/v1/tasks/{id}/summaries`. "
        "Give a completed task's `task_id` (the summary is stored) or raw `text` (not stored), "
        "with an optional `prompt` and `language`; answers the summary as JSON.\n\n"
        "**旧版**接口，为兼容旧客户端保留；新客户端请使用 POST /api/v1/tasks/{id}/summaries。"
        "提供已完成任务的 task_id（摘要会保存）或原始 text（不保存），可选 prompt 与 language，"
        "以 JSON 返回摘要。"
    ),
    responses=problem_responses(404, 409, 422, 502, 503),
)
async def legacy_summary(
    service: SummaryServiceDep, body: LegacySummaryRequest, api_key: LLMKeyHeader = None
) -> LegacySummaryResponse:
    if body.task_id is not None:
        stored = await service.summarise_task(body.task_id, body, api_key=api_key)
        return LegacySummaryResponse(
            summary=stored.content or "",
            model=stored.model,
            chunk_count=stored.chunk_count,
            summary_id=stored.id,
            total_tokens=stored.total_tokens,
        )
    assert body.text is not None
    text = await service.summarise_text(body.text, body, api_key=api_key)
    return LegacySummaryResponse(
        summary=text.content,
        model=text.model,
        chunk_count=text.chunk_count,
        summary_id=None,
        total_tokens=text.usage.total_tokens,
    )
