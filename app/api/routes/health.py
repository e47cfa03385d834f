"""/api/v1/health: liveness plus the state of the database, processor and models."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from app import __version__
from app.api.deps import ServicesDep

router = APIRouter(prefix="/api/v1/health", tags=["health"])


class ModelState(BaseModel):
    name: str = Field(description="Model name. / 模型名。")
    engine: str = Field(description="Engine. / 引擎。")
    device: str = Field(description="Device. / 设备。")


class ProcessorState(BaseModel):
    enabled: bool = Field(description="Runs in this process. / 是否在本进程运行。")
    running: bool = Field(description="Claim loop alive. / 领取循环是否运行。")
    paused: bool = Field(description="Claiming paused. / 是否暂停领取。")
    worker_id: str | None = Field(description="Node id. / 节点 ID。")
    running_tasks: list[str] = Field(description="Task ids running here. / 正在运行的任务。")


class Health(BaseModel):
    status: str = Field(description="`ok` or `degraded`. / 状态。")
    version: str = Field(description="Service version. / 版本。")
    database: str = Field(description="`ok` or the error. / 数据库状态。")
    processor: ProcessorState = Field(description="Background processor. / 后台处理器。")
    models: list[ModelState] = Field(description="Loaded models. / 已加载模型。")
    model_errors: dict[str, str] = Field(description="Failed model loads. / 模型加载错误。")


@router.get("", summary="Health / 健康检查", description="Liveness and component state. / 存活与组件状态。")
async def health(services: ServicesDep) -> Health:
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        database = f"{type(exc).__name__}: {exc}"
    processor = services.processor
    models = services.models
    degraded = database != "ok" or bool(models.load_errors)
    return Health(
        status="degraded" if degraded else "ok",
        version=__version__,
        database=database,
        processor=ProcessorState(
            enabled=processor is not None,
            running=processor.started if processor else False,
            paused=processor.paused if processor else False,
            worker_id=processor.worker_id if processor else None,
            running_tasks=processor.running_task_ids if processor else [],
        ),
        models=[ModelState(name=m.name, engine=m.engine, device=m.device) for m in models.loaded()],
        model_errors=dict(models.load_errors),
    )
