"""/api/v1/tasks: create, read, list, delete, subtitles and media."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status
from fastapi.responses import FileResponse, PlainTextResponse

from app.api.deps import TaskServiceDep
from app.api.problems import problem_responses
from app.db.task_repository import TaskFilters
from app.errors import ProblemError
from app.schemas.result import TranscriptionResult
from app.schemas.task import (
    TaskCreateForm,
    TaskOut,
    TaskPage,
    TaskPriority,
    TaskStatus,
    TaskType,
)
from app.services.subtitles import SubtitleFormat, media_type, render_subtitles

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])

TaskId = Annotated[str, Path(description="Task id. / 任务 ID。", max_length=64)]

MAX_OFFSET = 2**31 - 1
"""Larger offsets overflow SQLite's integers (a 500 found by the schemathesis run); no table is that big."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task / 创建任务",
    description=(
        "Upload a media file (`file`) or give its `file_url`; the task is queued by priority "
        "and processed in the background. Decode options default to Whisper's own.\n\n"
        "上传媒体文件（file）或提供 file_url，任务按优先级排队并在后台处理。解码参数默认与 Whisper 相同。"
    ),
    responses=problem_responses(400, 413, 415, 422),
)
async def create_task(
    service: TaskServiceDep,
    form: Annotated[TaskCreateForm, Form()],
    file: Annotated[
        UploadFile | None,
        File(description="Audio or video file. / 音频或视频文件。"),
    ] = None,
) -> TaskOut:
    return await service.create(
        upload=file,
        upload_name=file.filename if file is not None else None,
        file_url=form.file_url,
        task_type=form.task_type,
        priority=form.priority,
        model=form.model,
        engine=form.engine,
        options=form.decode_options(),
        callback_url=form.callback_url,
        platform=form.platform,
    )


@router.get(
    "",
    summary="List tasks / 查询任务列表",
    description="Filter optionally, newest first, paged. / 可选筛选，按创建时间倒序分页。",
    responses=problem_responses(422),
)
async def list_tasks(
    service: TaskServiceDep,
    status_: Annotated[
        TaskStatus | None, Query(alias="status", description="Status filter. / 按状态筛选。")
    ] = None,
    priority: Annotated[TaskPriority | None, Query(description="Priority filter. / 按优先级筛选。")] = None,
    task_type: Annotated[TaskType | None, Query(description="Task type filter. / 按任务类型筛选。")] = None,
    language: Annotated[
        str | None, Query(max_length=16, description="Language filter. / 按语言筛选。")
    ] = None,
    platform: Annotated[
        str | None, Query(max_length=64, description="Platform filter. / 按平台筛选。")
    ] = None,
    engine: Annotated[str | None, Query(max_length=32, description="Engine filter. / 按引擎筛选。")] = None,
    model: Annotated[str | None, Query(max_length=128, description="Model filter. / 按模型筛选。")] = None,
    created_after: Annotated[
        datetime | None,
        Query(description="Created at or after (ISO 8601). / 创建时间不早于。"),
    ] = None,
    created_before: Annotated[
        datetime | None,
        Query(description="Created before (ISO 8601). / 创建时间早于。"),
    ] = None,
    has_error: Annotated[
        bool | None, Query(description="Only tasks with (true) or without (false) an error. / 是否有错误。")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size. / 每页数量。")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Offset. / 偏移量。")] = 0,
) -> TaskPage:
    filters = TaskFilters(
        status=status_,
        priority=priority,
        task_type=task_type,
        language=language,
        platform=platform,
        engine=engine,
        model=model,
        created_after=_aware(created_after),
        created_before=_aware(created_before),
        has_error=has_error,
    )
    return await service.search(filters, limit=limit, offset=offset)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@router.get(
    "/{task_id}",
    summary="Get a task / 查询任务",
    description=(
        "Returns the task, with `result` once completed. `wait=N` long-polls up to N seconds "
        "for the task to finish.\n\n返回任务；完成后包含 result。wait=N 表示最多等待 N 秒直到任务结束。"
    ),
    responses=problem_responses(404, 422),
)
async def get_task(
    service: TaskServiceDep,
    task_id: TaskId,
    wait: Annotated[
        float,
        Query(ge=0, le=600, description="Seconds to wait for completion. / 等待完成的秒数。"),
    ] = 0,
) -> TaskOut:
    return await service.get(task_id, wait=wait)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task / 删除任务",
    description=(
        "Removes the task and its files. A running task is cancelled and its result dropped.\n\n"
        "删除任务及其文件；正在运行的任务会被取消，结果被丢弃。"
    ),
    responses=problem_responses(404),
)
async def delete_task(service: TaskServiceDep, task_id: TaskId) -> Response:
    await service.delete(task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{task_id}/subtitles",
    summary="Download subtitles / 下载字幕",
    description=(
        "SRT, WebVTT, plain text, TSV or JSON built from the segments (word timings where present): "
        "at most 42 characters a line, 2 lines and 7 seconds a cue.\n\n"
        "根据片段生成字幕（有词级时间戳时使用之）：每行最多 42 字符，每条最多 2 行、7 秒。"
    ),
    response_class=PlainTextResponse,
    responses=problem_responses(404, 409, 422),
)
async def get_subtitles(
    service: TaskServiceDep,
    task_id: TaskId,
    format: Annotated[
        SubtitleFormat, Query(description="srt | vtt | txt | tsv | json. / 字幕格式。")
    ] = SubtitleFormat.SRT,
) -> Response:
    task = await service.get_task(task_id)
    if task.status != TaskStatus.completed.value or task.result is None:
        raise ProblemError(409, f"task {task_id} is {task.status}; subtitles need a completed task")
    body = render_subtitles(TranscriptionResult.model_validate(task.result), format)
    return Response(
        content=body,
        media_type=media_type(format),
        headers={"Content-Disposition": f'attachment; filename="{task_id}.{format.value}"'},
    )


@router.get(
    "/{task_id}/media",
    summary="Download the original media / 下载原始媒体",
    description="The uploaded or downloaded file, while retained. / 在保留期内返回原始文件。",
    response_class=FileResponse,
    responses=problem_responses(404, 410),
)
async def get_media(service: TaskServiceDep, task_id: TaskId) -> FileResponse:
    task, path = await service.media(task_id)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=task.file_name or f"{task_id}.media",
    )
