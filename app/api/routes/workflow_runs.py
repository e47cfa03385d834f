"""/api/v1/workflow-runs: a run's steps (status, output, attempts, timings), cancel, delete, artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import FileResponse

from app.api.deps import PrincipalDep, WorkflowServiceDep
from app.api.problems import problem_responses
from app.schemas.workflow import RunOut, RunPage

router = APIRouter(prefix="/api/v1/workflow-runs", tags=["workflows"])

RunId = Annotated[str, Path(description="Run id. / 运行 ID。", max_length=64)]


@router.get(
    "",
    summary="List runs / 查询运行列表",
    description="Runs of every visible workflow, newest first, paged. / 所有可见工作流的运行，倒序分页。",
    responses=problem_responses(422),
)
async def list_all_runs(
    service: WorkflowServiceDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size. / 每页数量。")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Offset. / 偏移量。")] = 0,
) -> RunPage:
    return await service.search_runs(None, limit=limit, offset=offset, principal=principal)


@router.get(
    "/{run_id}",
    summary="Get a run / 查询运行",
    description=(
        "The run with each step's status, output, attempts (with timings and tasks) and errors.\n\n"
        "返回运行及每个步骤的状态、输出、尝试记录（含耗时与任务）和错误。"
    ),
    responses=problem_responses(404, 422),
)
async def get_run(service: WorkflowServiceDep, principal: PrincipalDep, run_id: RunId) -> RunOut:
    return await service.get_run(run_id, principal)


@router.post(
    "/{run_id}/cancel",
    summary="Cancel a run / 取消运行",
    description=(
        "Cancels a pending or running run: its queued or running task is cancelled and no further step starts; "
        "409 once the run ended.\n\n取消等待中或运行中的运行：其任务被取消，不再启动后续步骤；已结束的运行返回 409。"
    ),
    responses=problem_responses(404, 409, 422),
)
async def cancel_run(service: WorkflowServiceDep, principal: PrincipalDep, run_id: RunId) -> RunOut:
    return await service.cancel_run(run_id, principal)


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a run / 删除运行",
    description="Deletes an ended run and its artifacts; 409 while active. / 删除已结束的运行及其产物；进行中返回 409。",
    responses=problem_responses(404, 409, 422),
)
async def delete_run(service: WorkflowServiceDep, principal: PrincipalDep, run_id: RunId) -> Response:
    await service.delete_run(run_id, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{run_id}/artifacts/{step_id}",
    summary="Download a step's artifact / 下载步骤产物",
    description="The audio file an `extract_audio` step produced. / extract_audio 步骤生成的音频文件。",
    response_class=FileResponse,
    responses=problem_responses(404, 410, 422),
)
async def get_artifact(
    service: WorkflowServiceDep,
    principal: PrincipalDep,
    run_id: RunId,
    step_id: Annotated[str, Path(description="Step id. / 步骤 ID。", max_length=64)],
) -> FileResponse:
    path, name = await service.artifact(run_id, step_id, principal)
    return FileResponse(path, media_type="application/octet-stream", filename=name)
