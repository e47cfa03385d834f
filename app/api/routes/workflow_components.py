"""/api/v1/workflow-components: the custom step components registered on this node."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import WorkflowServiceDep
from app.schemas.workflow import ComponentOut

router = APIRouter(prefix="/api/v1/workflow-components", tags=["workflows"])


@router.get(
    "",
    summary="List custom components / 查询自定义组件",
    description=(
        "Components registered with `WORKFLOWS__COMPONENTS` (checked at start-up), usable as a step's `uses`.\n\n"
        "通过 WORKFLOWS__COMPONENTS 注册（启动时校验）的组件，可在步骤的 uses 中使用。"
    ),
)
async def list_components(service: WorkflowServiceDep) -> list[ComponentOut]:
    return service.list_components()
