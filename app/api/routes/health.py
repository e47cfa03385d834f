"""/api/v1/health: liveness plus the state of the database, processor and models."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from app import __version__
from app.api.deps import ServicesDep
from app.schemas.model import PoolOut, pool_out

router = APIRouter(prefix="/api/v1/health", tags=["health"])


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
    pool: PoolOut = Field(description="Model pool. / 模型池。")
    model_errors: dict[str, str] = Field(
        description="Failed model loads, retried in the background. / 模型加载错误。"
    )


@router.get("", summary="Health / 健康检查", description="Liveness and component state. / 存活与组件状态。")
async def health(services: ServicesDep) -> Health:
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        database = f"{type(exc).__name__}: {exc}"
    processor = services.processor
    pool = services.pool
    errors = {f"{key.engine}/{key.model}": message for key, message in pool.failures.items()}
    degraded = database != "ok" or bool(errors)
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
        pool=pool_out(
            pool,
            allowed_models=services.settings.whisper.allowed_models,
            instances_per_device=services.settings.whisper.instances_per_device,
        ),
        model_errors=errors,
    )
