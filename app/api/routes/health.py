"""/api/v1/health: liveness (cheap, no database) and readiness (database and models)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from app import __version__
from app.api.deps import ContainerDep
from app.api.problems import ProblemError, problem_responses
from app.container import Container
from app.schemas.model import InstanceState, PoolOut
from app.services.mappers import pool_out

router = APIRouter(prefix="/api/v1/health", tags=["health"])


class ProcessorState(BaseModel):
    enabled: bool = Field(description="Runs in this process. / 是否在本进程运行。")
    running: bool = Field(description="Claim loop alive. / 领取循环是否运行。")
    paused: bool = Field(description="Claiming paused. / 是否暂停领取。")
    worker_id: str | None = Field(description="Node id. / 节点 ID。")
    running_task_count: int = Field(
        description=(
            "Tasks running here. Their ids are for admin keys: `GET /api/v1/workers`. / "
            "正在运行的任务数；任务 ID 见需要管理员密钥的 GET /api/v1/workers。"
        )
    )


class Health(BaseModel):
    status: str = Field(description="`ok` or `degraded`. / 状态。")
    version: str = Field(description="Service version. / 版本。")
    processor: ProcessorState = Field(description="Background processor. / 后台处理器。")
    pool: PoolOut = Field(description="Model pool. / 模型池。")
    model_errors: dict[str, str] = Field(
        description="Failed model loads, retried in the background. / 模型加载错误。"
    )
    engines: dict[str, str] = Field(
        default_factory=dict,
        description="Each allowed engine: `ok`, or why it cannot run here (e.g. `sensevoice` without its model directory). / 各引擎状态：ok 或无法运行的原因。",
    )


class Readiness(BaseModel):
    status: str = Field(description="`ready`. / 就绪。")
    checks: dict[str, str] = Field(description="Each check and its outcome. / 各项检查结果。")


@router.get(
    "",
    summary="Liveness / 存活检查",
    description=(
        "Cheap liveness: the process answers, with the processor and model pool state; no database "
        "query. `degraded` when a model failed to load. Public, so it shows counts only: no task ids "
        "(admin keys read those from `GET /api/v1/workers`).\n\n"
        "轻量存活检查：返回处理器与模型池状态，不查询数据库；模型加载失败时为 degraded。"
        "此接口公开，因此只给出数量，不含任务 ID（管理员密钥可通过 GET /api/v1/workers 查看）。"
    ),
)
async def health(container: ContainerDep) -> Health:
    processor = container.processor
    pool = container.pool
    errors = {f"{key.engine}/{key.model}": message for key, message in pool.failures.items()}
    engines = {name: problem or "ok" for name, problem in pool.engine_problems().items()}
    # An optional engine without its weights is reported, not a degradation; the default one is.
    default_problem = engines.get(container.settings.whisper.engine, "ok") != "ok"
    return Health(
        status="degraded" if errors or default_problem else "ok",
        engines=engines,
        version=__version__,
        processor=ProcessorState(
            enabled=processor is not None,
            running=processor.started if processor else False,
            paused=processor.paused if processor else False,
            worker_id=processor.worker_id if processor else None,
            running_task_count=len(processor.running_task_ids) if processor else 0,
        ),
        pool=pool_out(
            pool,
            allowed_models=container.settings.whisper.allowed_models,
            instances_per_device=container.settings.whisper.instances_per_device,
        ),
        model_errors=errors,
    )


async def _database_check(container: Container) -> tuple[bool, str]:
    try:
        async with container.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


def _model_check(container: Container) -> tuple[bool, str]:
    """The default model must be loaded (eager) or loadable (lazy, no failed load)."""
    if container.processor is None:
        return True, "not needed: this node runs no processor"
    pool = container.pool
    key = pool.default_key
    ready = sum(1 for i in pool.instances(key) if i.state is InstanceState.ready)
    name = f"{key.engine}/{key.model}"
    if ready:
        return True, f"{name}: {ready} instance(s) loaded"
    if key in pool.failures:
        return False, f"{name} failed to load: {pool.failures[key]}"
    if container.settings.whisper.load_mode == "eager" and pool.desired(key) > 0:
        return False, f"{name} is still loading"
    return True, f"{name}: loaded on first use"


@router.get(
    "/ready",
    summary="Readiness / 就绪检查",
    description=(
        "Ready when the database answers and the default model is loaded (or, in lazy mode, "
        "loadable: no failed load). Otherwise 503 problem+json with the failed checks.\n\n"
        "数据库可访问且默认模型已加载（懒加载模式下可加载、无失败记录）时就绪；否则返回 503 problem+json 并列出失败的检查。"
    ),
    responses=problem_responses(503),
)
async def ready(container: ContainerDep) -> Readiness:
    database_ok, database = await _database_check(container)
    models_ok, models = _model_check(container)
    checks = {"database": database, "models": models}
    if not (database_ok and models_ok):
        failed = ", ".join(name for name, ok in (("database", database_ok), ("models", models_ok)) if not ok)
        raise ProblemError(503, f"not ready: {failed}", title="Not Ready", checks=checks)
    return Readiness(status="ready", checks=checks)
