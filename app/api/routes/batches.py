"""Batches: several uploads as one request (``POST /api/v1/tasks/batch``), followed as one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile, status

from app.api.deps import SpeakerServiceDep, TaskServiceDep
from app.api.problems import problem_responses
from app.schemas.batch import BatchCreateForm, BatchOut

router = APIRouter(tags=["batches"])


@router.post(
    "/api/v1/tasks/batch",
    status_code=status.HTTP_201_CREATED,
    summary="Create a batch of tasks / 批量创建任务",
    description=(
        "One task per uploaded `files` part, all with the same options, under one batch id. "
        "All or nothing: if any file is empty, too large or not media, the request is rejected and "
        "nothing is kept. The request body as a whole is limited like a single upload "
        "(`STORAGE__MAX_UPLOAD_MB`); at most 100 files.\n\n"
        "每个上传的 files 部分创建一个任务，选项相同，归于同一批次。全部成功或全部失败：任一文件为空、过大或不是媒体时，"
        "整个请求被拒绝且不保留任何内容。整个请求体的大小限制与单个上传相同（STORAGE__MAX_UPLOAD_MB），最多 100 个文件。"
    ),
    responses=problem_responses(400, 413, 415, 422),
)
async def create_batch(
    service: TaskServiceDep,
    speakers: SpeakerServiceDep,
    form: Annotated[BatchCreateForm, Form()],
    files: Annotated[
        list[UploadFile],
        File(description="Audio or video files, one task each. / 音频或视频文件，每个文件一个任务。"),
    ],
) -> BatchOut:
    return await service.create_batch(
        form.task_spec(await speakers.with_references(form, form.decode_options())),
        uploads=[(file, file.filename) for file in files],
    )


@router.get(
    "/api/v1/batches/{batch_id}",
    summary="Get a batch / 查询批次",
    description=(
        "Counts by status, overall progress, and each task's id, file name, status and text once done.\n\n"
        "返回各状态的任务数、总体进度，以及每个任务的 ID、文件名、状态和完成后的文本。"
    ),
    responses=problem_responses(404),
)
async def get_batch(
    service: TaskServiceDep,
    batch_id: Annotated[str, Path(max_length=64, description="Batch id. / 批次 ID。")],
) -> BatchOut:
    return await service.get_batch(batch_id)
