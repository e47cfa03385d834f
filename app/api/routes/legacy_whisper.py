"""Legacy ``/api/whisper/...`` routes for clients of the older API style of this kind of service.

Thin adapters over the same services as ``/api/v1``. Every answer is the envelope
``{code, router, params, data}``: on success ``code`` is 200 and ``data`` the payload; on an
error the HTTP status stays the real one (400, 404, 415, 422, ...), ``code`` repeats it and
``data`` holds the RFC 9457 problem details (type, title, status, detail, instance).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Query, Request, Response, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.deps import ContainerDep, TaskServiceDep
from app.api.extract_audio import TempFileStreamingResponse, extracted_audio_response
from app.api.problems import ProblemError, ProblemRenderingRoute
from app.api.routes.health import health
from app.api.routes.media import AUDIO_RESPONSES
from app.db.task_repository import TaskFilters
from app.media.extract import AudioFormat, ExtractOptions
from app.schemas.legacy import Envelope, LegacyTaskQuery
from app.schemas.result import TranscriptionResult
from app.schemas.task import TaskCreateForm, TaskStatus
from app.services.subtitles import SubtitleFormat, render_subtitles

logger = logging.getLogger(__name__)

LEGACY = "**Legacy** (older `/api/whisper` style; prefer `/api/v1`). / **旧版接口**（兼容旧客户端，建议改用 /api/v1）。"


def envelope(
    request: Request, data: Any, *, params: dict[str, Any] | None = None, code: int = 200
) -> JSONResponse:
    """The legacy envelope; ``params`` defaults to the query string."""
    body = {
        "code": code,
        "router": request.url.path,
        "params": jsonable_encoder(params if params is not None else dict(request.query_params)),
        "data": jsonable_encoder(data),
    }
    return JSONResponse(body, status_code=code)


def error_envelope(request: Request, status: int, detail: str, **extra: Any) -> JSONResponse:
    problem = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return envelope(request, problem, code=status)


class LegacyEnvelopeRoute(ProblemRenderingRoute):
    """Errors of these routes are envelopes too, with the problem details as ``data``."""

    def render_problem(
        self,
        request: Request,
        status: int,
        detail: str,
        *,
        title: str | None,
        headers: dict[str, str] | None,
        extra: dict[str, Any],
    ) -> Response:
        response = error_envelope(request, status, detail, **extra)
        if headers:
            response.headers.update(headers)
        return response


router = APIRouter(tags=["legacy"], route_class=LegacyEnvelopeRoute, deprecated=True)

ENVELOPE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Envelope, "description": f"{HTTPStatus(status).phrase} (envelope) / 错误（信封格式）"}
    for status in (400, 404, 409, 413, 415, 422)
}
TaskIdQuery = Annotated[str, Query(max_length=64, description="Task id. / 任务 ID。")]


@router.post(
    "/api/whisper/tasks/create",
    summary="Create a task (legacy) / 创建任务（旧版）",
    description=(
        f"{LEGACY}\n\nOptions in the query string, the media as the `file_upload` multipart field or a "
        "`file_url` query parameter. `data` is the task.\n\n"
        "参数放在查询字符串中，媒体文件用 multipart 字段 file_upload 上传，或用查询参数 file_url。data 为任务。"
    ),
    response_model=Envelope,
    responses=ENVELOPE_ERRORS,
)
async def legacy_create_task(
    request: Request,
    service: TaskServiceDep,
    options: Annotated[TaskCreateForm, Query()],
    file_upload: Annotated[
        UploadFile | None,
        File(description="Audio or video file (or give `file_url`). / 音频或视频文件（或提供 file_url）。"),
    ] = None,
) -> JSONResponse:
    task = await service.create(
        options.task_spec(),
        upload=file_upload,
        upload_name=file_upload.filename if file_upload is not None else None,
        file_url=options.file_url,
    )
    return envelope(request, task, params=options.model_dump(mode="json", exclude_defaults=True))


@router.post(
    "/api/whisper/tasks/query",
    summary="Query tasks (legacy) / 查询任务（旧版）",
    description=(
        f"{LEGACY}\n\nFilters in a JSON body, newest first, paged. `data` is "
        "`{items, total, limit, offset, next_offset}` (items without results).\n\n"
        "JSON 请求体中给出筛选条件，按创建时间倒序分页。data 为 {items, total, limit, offset, next_offset}（不含结果）。"
    ),
    response_model=Envelope,
    responses=ENVELOPE_ERRORS,
)
async def legacy_query_tasks(
    request: Request,
    service: TaskServiceDep,
    query: Annotated[
        LegacyTaskQuery, Body(description="Filters and paging. / 筛选与分页条件。")
    ] = LegacyTaskQuery(),
) -> JSONResponse:
    filters = TaskFilters(
        status=query.status,
        priority=query.priority,
        task_type=query.task_type,
        language=query.language,
        platform=query.platform,
        engine=query.engine,
        model=query.model,
        created_after=query.created_after,
        created_before=query.created_before,
        has_error=query.has_error,
    )
    page = await service.search(filters, limit=query.limit, offset=query.offset)
    return envelope(request, page, params=query.model_dump(mode="json", exclude_defaults=True))


@router.get(
    "/api/whisper/tasks/result",
    summary="Task result (legacy) / 任务结果（旧版）",
    description=(
        f"{LEGACY}\n\n`data` is the task, with `result` once completed.\n\ndata 为任务，完成后包含 result。"
    ),
    response_model=Envelope,
    responses=ENVELOPE_ERRORS,
)
async def legacy_task_result(request: Request, service: TaskServiceDep, task_id: TaskIdQuery) -> JSONResponse:
    return envelope(request, await service.get(task_id))


@router.delete(
    "/api/whisper/tasks/delete",
    summary="Delete a task (legacy) / 删除任务（旧版）",
    description=(
        f"{LEGACY}\n\nDeletes the task and its files (a running task is cancelled). "
        "`data` is `{task_id, deleted}`.\n\n删除任务及其文件（运行中的任务会被取消）。data 为 {task_id, deleted}。"
    ),
    response_model=Envelope,
    responses=ENVELOPE_ERRORS,
)
async def legacy_delete_task(request: Request, service: TaskServiceDep, task_id: TaskIdQuery) -> JSONResponse:
    await service.delete(task_id)
    return envelope(request, {"task_id": task_id, "deleted": True})


@router.get(
    "/api/whisper/generate_subtitles",
    summary="Generate subtitles (legacy) / 生成字幕（旧版）",
    description=(
        f"{LEGACY}\n\nSRT or WebVTT of a completed task (409 before). `data` is "
        "`{task_id, output_format, subtitles}`.\n\n"
        "已完成任务的 SRT 或 WebVTT 字幕（未完成时返回 409）。data 为 {task_id, output_format, subtitles}。"
    ),
    response_model=Envelope,
    responses=ENVELOPE_ERRORS,
)
async def legacy_generate_subtitles(
    request: Request,
    service: TaskServiceDep,
    task_id: TaskIdQuery,
    output_format: Annotated[
        Literal["srt", "vtt"], Query(description="srt or vtt. / 字幕格式：srt 或 vtt。")
    ] = "srt",
) -> JSONResponse:
    task = await service.get_row(task_id)
    if task.status != TaskStatus.completed.value or task.result is None:
        raise ProblemError(409, f"task {task_id} is {task.status}; subtitles need a completed task")
    subtitles = render_subtitles(
        TranscriptionResult.model_validate(task.result), SubtitleFormat(output_format)
    )
    return envelope(request, {"task_id": task_id, "output_format": output_format, "subtitles": subtitles})


@router.get(
    "/api/health/check",
    summary="Health check (legacy) / 健康检查（旧版）",
    description=(
        f"{LEGACY}\n\n`data` is what `/api/v1/health` returns.\n\ndata 与 /api/v1/health 的返回相同。"
    ),
    response_model=Envelope,
)
async def legacy_health(request: Request, container: ContainerDep) -> JSONResponse:
    return envelope(request, await health(container))


@router.post(
    "/api/whisper/extract_audio",
    summary="Extract audio (legacy) / 提取音频（旧版）",
    description=(
        f"{LEGACY}\n\nThe media as the `file` multipart field, options in the query string. On success "
        "the answer is the audio itself (as `/api/v1/media/extract-audio`), not an envelope; errors are "
        "envelopes.\n\n"
        "媒体文件用 multipart 字段 file 上传，参数放在查询字符串中。成功时直接返回音频（同 /api/v1/media/extract-audio），"
        "而不是信封；错误时返回信封。"
    ),
    status_code=200,
    response_class=TempFileStreamingResponse,
    responses={**AUDIO_RESPONSES, **ENVELOPE_ERRORS},
)
async def legacy_extract_audio(
    container: ContainerDep,
    file: Annotated[UploadFile, File(description="Video or audio file. / 视频或音频文件。")],
    output_format: Annotated[
        AudioFormat, Query(description="wav | mp3 | flac | opus. / 输出格式。")
    ] = AudioFormat.wav,
    sample_rate: Annotated[
        int, Query(ge=8000, le=192000, description="Output sample rate in Hz. / 输出采样率（Hz）。")
    ] = 16000,
    channels: Annotated[
        int, Query(ge=1, le=2, description="1 (mono) or 2 (stereo). / 声道数：1 单声道，2 立体声。")
    ] = 1,
    bit_depth: Annotated[
        int | None,
        Query(
            description="Bits per sample for wav (16/24/32) or flac (16/24). / 位深（wav 16/24/32，flac 16/24）。"
        ),
    ] = None,
) -> TempFileStreamingResponse:
    options = ExtractOptions(
        format=output_format, sample_rate=sample_rate, channels=channels, bit_depth=bit_depth
    )
    return await extracted_audio_response(
        container.storage,
        file,
        options,
        admission=container.admission,
        limits=container.settings.limits,
        upload_name=file.filename,
    )
