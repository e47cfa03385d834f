"""/api/v1/tasks: create, read, list, delete, cancel, retry, live events, subtitles and media."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from app.api.deps import PrincipalDep, SettingsDep, SpeakerServiceDep, TaskServiceDep
from app.api.problems import ProblemError, problem_responses
from app.api.stream_slots import SlotStreamingResponse, StreamSlotDep
from app.db.task_repository import TaskFilters
from app.schemas.callback import CallbackHistory, CallbackStatus
from app.schemas.result import TranscriptionResult
from app.schemas.task import (
    MAX_OFFSET,
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


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task / 创建任务",
    description=(
        "Upload a media file (`file`) or give its `file_url`; the task is queued by priority "
        "and processed in the background. Decode options default to Whisper's own.\n\n"
        "上传媒体文件（file）或提供 file_url，任务按优先级排队并在后台处理。解码参数默认与 Whisper 相同。"
    ),
    responses=problem_responses(400, 413, 415, 422, 503),
)
async def create_task(
    service: TaskServiceDep,
    speakers: SpeakerServiceDep,
    principal: PrincipalDep,
    form: Annotated[TaskCreateForm, Form()],
    file: Annotated[
        UploadFile | None,
        File(description="Audio or video file. / 音频或视频文件。"),
    ] = None,
) -> TaskOut:
    return await service.create(
        form.task_spec(await speakers.with_references(form, form.decode_options())),
        upload=file,
        upload_name=file.filename if file is not None else None,
        file_url=form.file_url,
        principal=principal,
    )


@router.get(
    "",
    summary="List tasks / 查询任务列表",
    description="Filter optionally, newest first, paged. / 可选筛选，按创建时间倒序分页。",
    responses=problem_responses(422),
)
async def list_tasks(
    service: TaskServiceDep,
    principal: PrincipalDep,
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
        created_after=created_after,
        created_before=created_before,
        has_error=has_error,
    )
    return await service.search(filters, limit=limit, offset=offset, principal=principal)


@router.get(
    "/{task_id}",
    summary="Get a task / 查询任务",
    description=(
        "Returns the task, with `result` once completed. `wait=N` long-polls up to N seconds "
        "for the task to finish; a caller (API key) holds at most `LIMITS__MAX_STREAMS_PER_KEY` long "
        "polls and event streams at once (429 beyond).\n\n"
        "返回任务；完成后包含 result。wait=N 表示最多等待 N 秒直到任务结束；每个调用方（API 密钥）同时最多保持 "
        "LIMITS__MAX_STREAMS_PER_KEY 个长轮询与事件流（超出返回 429）。"
    ),
    responses=problem_responses(404, 422, 429),
)
async def get_task(
    service: TaskServiceDep,
    principal: PrincipalDep,
    slot: StreamSlotDep,
    task_id: TaskId,
    wait: Annotated[
        float,
        Query(ge=0, le=600, description="Seconds to wait for completion. / 等待完成的秒数。"),
    ] = 0,
) -> TaskOut:
    if wait <= 0:
        return await service.get(task_id, principal=principal)
    async with slot.hold():  # 429 past the caller's open streams and long polls
        return await service.get(task_id, wait=wait, principal=principal)


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
async def delete_task(service: TaskServiceDep, principal: PrincipalDep, task_id: TaskId) -> Response:
    await service.delete(task_id, principal)
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
    principal: PrincipalDep,
    task_id: TaskId,
    format: Annotated[
        SubtitleFormat, Query(description="srt | vtt | txt | tsv | json. / 字幕格式。")
    ] = SubtitleFormat.SRT,
) -> Response:
    task = await service.get_row(task_id, principal)
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
async def get_media(service: TaskServiceDep, principal: PrincipalDep, task_id: TaskId) -> FileResponse:
    task, path = await service.media(task_id, principal)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=task.file_name or f"{task_id}.media",
    )


@router.get(
    "/{task_id}/callback",
    summary="Callback deliveries / 回调投递记录",
    description=(
        "Every webhook delivery of the task with each attempt: time, HTTP status and the start of "
        "the reply.\n\n任务的全部回调投递及每次尝试的时间、HTTP 状态码与响应开头。"
    ),
    responses=problem_responses(404),
)
async def get_callback_history(service: TaskServiceDep, task_id: TaskId) -> CallbackHistory:
    return await service.callback_history(task_id)


@router.post(
    "/{task_id}/callback",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Re-send the callback / 重新发送回调",
    description=(
        "Queues a new delivery (new idempotency key) of a finished task's callback. 409 when the "
        "task has no `callback_url`, has not ended, or a delivery is still pending.\n\n"
        "为已结束的任务重新投递回调（新的幂等键）。任务无 callback_url、尚未结束或仍有待投递的回调时返回 409。"
    ),
    responses=problem_responses(404, 409, 422),
)
async def resend_callback(service: TaskServiceDep, task_id: TaskId) -> CallbackStatus:
    return await service.resend_callback(task_id)


@router.post(
    "/{task_id}/cancel",
    summary="Cancel a task / 取消任务",
    description=(
        "Cancels a queued or running task; a running one stops at its next segment (on another node, "
        "at its next progress write or heartbeat) and its result is dropped. The media is kept, so the "
        "task can be retried. Other states answer 409.\n\n"
        "取消排队中或运行中的任务；运行中的任务在下一个片段处停止（在其他节点上则在下一次进度写入或心跳时停止），"
        "结果被丢弃。媒体文件保留，可以重试。其他状态返回 409。"
    ),
    responses=problem_responses(404, 409),
)
async def cancel_task(service: TaskServiceDep, principal: PrincipalDep, task_id: TaskId) -> TaskOut:
    return await service.cancel(task_id, principal)


@router.post(
    "/{task_id}/retry",
    summary="Retry a task / 重试任务",
    description=(
        "Queues a failed or cancelled task again, clearing its error and result. 409 in other states "
        "or when its media is no longer retained; 503 when the service is over capacity.\n\n"
        "将失败或已取消的任务重新排队，并清除错误与结果。其他状态或媒体已不再保留时返回 409；服务超载时返回 503。"
    ),
    responses=problem_responses(404, 409, 503),
)
async def retry_task(service: TaskServiceDep, principal: PrincipalDep, task_id: TaskId) -> TaskOut:
    return await service.retry(task_id, principal)


def _sse(event: str, data: Any, event_id: int) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get(
    "/{task_id}/events",
    summary="Live task events (SSE) / 任务实时事件（SSE）",
    description=(
        "Server-Sent Events until the task ends: `status` (data: id, status, progress, error, "
        "attempts, worker_id) at each status change, `progress` (data: id, progress) as the audio "
        "advances, and a final `end` event carrying the task (without result), then the stream "
        "closes. `: keep-alive` comments are sent while nothing changes. Tasks on other nodes are "
        "followed by re-reading the database. When the server shuts down, an unfinished task's "
        "stream ends with a `shutdown` event (data: id, status): reconnect to follow it on. A caller "
        "(API key) holds at most `LIMITS__MAX_STREAMS_PER_KEY` event streams and long polls at once "
        "(429 beyond).\n\n"
        "以 Server-Sent Events 推送任务事件直到任务结束：状态变化时发送 `status`（id、status、progress、error、"
        "attempts、worker_id），处理进度推进时发送 `progress`（id、progress），最后发送携带任务（不含结果）的 "
        "`end` 事件并关闭连接。无变化时发送 `: keep-alive` 注释。其他节点上的任务通过轮询数据库跟踪。"
        "每个调用方（API 密钥）同时最多保持 LIMITS__MAX_STREAMS_PER_KEY 个事件流与长轮询（超出返回 429）。"
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An event stream. / 事件流。",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problem_responses(404, 422, 429),
    },
)
async def task_events(
    service: TaskServiceDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    slot: StreamSlotDep,
    task_id: TaskId,
    keepalive: Annotated[
        float,
        Query(ge=1, le=300, description="Seconds between keep-alive comments. / 保活注释的间隔秒数。"),
    ] = 15,
) -> StreamingResponse:
    await service.get_row(task_id, principal)  # 404 before the stream starts
    poll_interval = min(1.0, settings.processor.wait_recheck_seconds)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        event_id = 0
        last: TaskOut | None = None
        async for task in service.watch(
            task_id, poll_interval=poll_interval, keepalive=keepalive, principal=principal
        ):
            if task is None:
                yield ": keep-alive\n\n"
                continue
            frames: list[tuple[str, Any]] = []
            if last is None or task.status != last.status:
                frames.append(
                    (
                        "status",
                        {
                            "id": task.id,
                            "status": task.status.value,
                            "progress": task.progress,
                            "error": task.error,
                            "attempts": task.attempts,
                            "worker_id": task.worker_id,
                        },
                    )
                )
            if last is not None and task.progress != last.progress:
                progress = ("progress", {"id": task.id, "progress": task.progress})
                # A final status comes after the last progress.
                frames.insert(0 if task.status.finished else len(frames), progress)
            for name, data in frames:
                event_id += 1
                yield _sse(name, data, event_id)
            last = task
        if (last is None or not last.status.finished) and service.shutting_down:
            # The task goes on (here after a restart, or on another node): the client reconnects.
            status = last.status.value if last is not None else None
            yield _sse("shutdown", {"id": task_id, "status": status}, event_id + 1)
            return
        final: dict[str, Any] = (
            last.model_dump(mode="json", exclude={"result"})
            if last is not None and last.status.finished
            else {"id": task_id, "status": "deleted"}
        )
        yield _sse("end", final, event_id + 1)

    slot.acquire()  # 429 past the caller's open streams and long polls; released when the stream ends
    return SlotStreamingResponse(
        stream(),
        slot=slot,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
