"""Legacy platform routes (``/api/tiktok/video_task``, ``/api/douyin/video_task``) for older clients.

Thin adapters over the link service: the link comes as ``url`` in a JSON body, a form or the query.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from app.api.deps import LinkServiceDep
from app.api.problems import ProblemError, problem_responses
from app.schemas.link import LinkTaskCreate
from app.schemas.task import LinkMetadata, TaskStatus

router = APIRouter(prefix="/api", tags=["legacy"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_URL_DESCRIPTION = "Video link or share text containing it. / 视频链接或包含链接的分享文本。"
_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "description": _URL_DESCRIPTION},
        "model": {
            "type": "string",
            "description": "Model name; empty uses the default. / 模型名，留空使用默认模型。",
        },
        "language": {
            "type": "string",
            "description": "Language code; empty detects it. / 语言代码，留空自动检测。",
        },
        "task_type": {
            "type": "string",
            "enum": ["transcribe", "translate"],
            "description": "transcribe or translate. / 转录或翻译。",
        },
        "priority": {
            "type": "string",
            "enum": ["high", "normal", "low"],
            "description": "Queue priority. / 队列优先级。",
        },
        "callback_url": {
            "type": "string",
            "description": "URL that receives the task when it ends. / 任务结束时接收回调的地址。",
        },
    },
    "required": ["url"],
}
_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": _BODY_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _BODY_SCHEMA},
        },
    }
}


class LegacyVideoTaskOut(BaseModel):
    """Answer of the legacy video-task routes. / 旧版视频任务接口的响应。"""

    task_id: str = Field(description="Id of the created task. / 创建的任务 ID。")
    status: TaskStatus = Field(description="Task status. / 任务状态。")
    platform: str | None = Field(description="Detected platform. / 识别出的平台。")
    link: LinkMetadata | None = Field(description="Platform metadata. / 平台信息。")


async def _fields(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.endswith("json"):
        try:
            body = await request.json()
        except ValueError as exc:
            raise ProblemError(400, "the body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise ProblemError(422, "the JSON body must be an object with `url`")
        fields.update(body)
    elif content_type in _FORM_TYPES:
        form = await request.form()
        fields.update({key: value for key, value in form.items() if isinstance(value, str)})
    return fields


async def _create(request: Request, service: LinkServiceDep) -> LegacyVideoTaskOut:
    fields = await _fields(request)
    if not fields.get("url"):
        raise ProblemError(422, "give the video link as `url` (JSON, form or query)")
    known = {key: fields[key] for key in LinkTaskCreate.model_fields if key in fields}
    try:
        body = LinkTaskCreate.model_validate(known)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    task = await service.create(body.url, body.task_spec())
    return LegacyVideoTaskOut(task_id=task.id, status=task.status, platform=task.platform, link=task.link)


UrlQuery = Annotated[str | None, Query(max_length=4096, description=_URL_DESCRIPTION)]


def _add_platform_route(platform: str, label: str, label_zh: str) -> None:
    async def video_task(
        request: Request, service: LinkServiceDep, url: UrlQuery = None
    ) -> LegacyVideoTaskOut:
        return await _create(request, service)

    router.add_api_route(
        f"/{platform}/video_task",
        video_task,
        methods=["POST"],
        name=f"{platform}_video_task",
        summary=f"Legacy: task from a {label} link / 旧版：从{label_zh}链接创建任务",
        description=(
            "Legacy route for older clients; use `POST /api/v1/tasks/from-link`. Give the link as `url` "
            "(JSON, form or query); answers with the task id.\n\n"
            "旧版接口，供旧客户端使用；新客户端请用 POST /api/v1/tasks/from-link。以 url 提交链接（JSON、表单或查询参数），返回任务 ID。"
        ),
        responses=problem_responses(400, 413, 415, 422, 429),
        openapi_extra=_OPENAPI_BODY,
    )


_add_platform_route("tiktok", "TikTok", " TikTok ")
_add_platform_route("douyin", "Douyin", "抖音")
