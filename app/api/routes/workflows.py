"""/api/v1/workflows: create, read, list, replace and delete workflow documents; start and list runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status

from app.api.deps import PrincipalDep, WorkflowServiceDep
from app.api.problems import problem_responses
from app.schemas.workflow import RunCreateForm, RunOut, RunPage, WorkflowOut, WorkflowPage
from app.workflows.definition import WorkflowDocument

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

WorkflowId = Annotated[str, Path(description="Workflow id. / 工作流 ID。", max_length=64)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size. / 每页数量。")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Offset. / 偏移量。")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a workflow / 创建工作流",
    description=(
        "A JSON document of steps (a DAG: built-in steps `transcribe`, `translate`, `summarize`, `subtitles`, "
        "`extract_audio`, `webhook`, or registered components), their inputs (`${...}` references), conditions, "
        "retry policies and triggers (manual, cron, events). Cycles, unknown steps and bad references answer 422 "
        "with an `errors` list naming each step and field.\n\n"
        "由步骤组成的 JSON 文档（有向无环图），含输入引用、条件、重试策略和触发器。存在环、未知步骤或错误引用时返回 422，"
        "errors 列出每个出错的步骤与字段。"
    ),
    responses=problem_responses(422),
)
async def create_workflow(
    service: WorkflowServiceDep, principal: PrincipalDep, document: WorkflowDocument
) -> WorkflowOut:
    return await service.create(document, principal)


@router.get(
    "",
    summary="List workflows / 查询工作流列表",
    description="Newest first, paged. / 按创建时间倒序分页。",
    responses=problem_responses(422),
)
async def list_workflows(
    service: WorkflowServiceDep, principal: PrincipalDep, limit: Limit = 50, offset: Offset = 0
) -> WorkflowPage:
    return await service.search(limit=limit, offset=offset, principal=principal)


@router.get(
    "/{workflow_id}",
    summary="Get a workflow / 查询工作流",
    description="The workflow and its document. / 返回工作流及其文档。",
    responses=problem_responses(404, 422),
)
async def get_workflow(
    service: WorkflowServiceDep, principal: PrincipalDep, workflow_id: WorkflowId
) -> WorkflowOut:
    return await service.get(workflow_id, principal)


@router.put(
    "/{workflow_id}",
    summary="Replace a workflow / 替换工作流",
    description=(
        "Validated like a new one. Runs already started keep the version they started with.\n\n"
        "与创建时相同的校验；已开始的运行继续使用启动时的版本。"
    ),
    responses=problem_responses(404, 422),
)
async def replace_workflow(
    service: WorkflowServiceDep, principal: PrincipalDep, workflow_id: WorkflowId, document: WorkflowDocument
) -> WorkflowOut:
    return await service.replace(workflow_id, document, principal)


@router.delete(
    "/{workflow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a workflow / 删除工作流",
    description=(
        "Deletes the workflow with its finished runs and their artifacts; 409 while runs are active.\n\n"
        "删除工作流及其已结束的运行与产物；存在进行中的运行时返回 409。"
    ),
    responses=problem_responses(404, 409),
)
async def delete_workflow(
    service: WorkflowServiceDep, principal: PrincipalDep, workflow_id: WorkflowId
) -> Response:
    await service.delete(workflow_id, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{workflow_id}/runs",
    status_code=status.HTTP_201_CREATED,
    summary="Start a run / 启动运行",
    description=(
        "Give one input: an uploaded `file`, a `file_url`, a media `link` or an existing `task_id` (its "
        "transcript is reused), as the workflow's `input.kinds` allow, and optionally `params` (JSON). The media "
        "is stored once for the run; steps run in the background.\n\n"
        "提供一种输入：上传 file、file_url、媒体 link 或已有 task_id（复用其转录），以及可选的 params（JSON）。"
        "媒体为该运行保存一次，步骤在后台执行。"
    ),
    responses=problem_responses(400, 404, 413, 415, 422, 503),
)
async def start_run(
    service: WorkflowServiceDep,
    principal: PrincipalDep,
    workflow_id: WorkflowId,
    form: Annotated[RunCreateForm, Form()],
    file: Annotated[UploadFile | None, File(description="Audio or video file. / 音频或视频文件。")] = None,
) -> RunOut:
    return await service.start_run(
        workflow_id,
        upload=file,
        upload_name=file.filename if file is not None else None,
        file_url=form.file_url,
        link=form.link,
        task_id=form.task_id,
        params=form.params,
        principal=principal,
    )


@router.get(
    "/{workflow_id}/runs",
    summary="List a workflow's runs / 查询工作流的运行",
    description="Newest first, paged, without steps. / 按创建时间倒序分页，不含步骤详情。",
    responses=problem_responses(404, 422),
)
async def list_runs(
    service: WorkflowServiceDep,
    principal: PrincipalDep,
    workflow_id: WorkflowId,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RunPage:
    return await service.search_runs(workflow_id, limit=limit, offset=offset, principal=principal)
