"""/api/v1/models: the model pool — list, load and unload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import AdminDep, ContainerDep
from app.api.problems import ProblemError, problem_responses
from app.engines.model_pool import ModelKey, ModelNotAllowedError, ModelUnavailableError
from app.schemas.model import ModelOut, PoolOut
from app.services.mappers import model_out, pool_out
from config.engines import ENGINE_NAMES

router = APIRouter(prefix="/api/v1/models", tags=["models"])

ModelName = Annotated[str, Path(description="Model name, e.g. `base` or `tiny.en`. / 模型名。")]
EngineQuery = Annotated[
    str | None,
    Query(
        max_length=32,
        description="Engine; empty uses the default. / 引擎，留空使用默认。",
        json_schema_extra={"enum": list(ENGINE_NAMES)},
    ),
]


@router.get(
    "",
    summary="List models / 模型列表",
    description=(
        "Configured and loaded models with their instances, devices, busy/idle state and memory.\n\n"
        "已配置和已加载的模型，包括实例、设备、忙闲状态与内存。"
    ),
)
async def list_models(container: ContainerDep) -> PoolOut:
    whisper = container.settings.whisper
    return pool_out(
        container.pool,
        allowed_models=whisper.allowed_models,
        instances_per_device=whisper.instances_per_device,
    )


@router.post(
    "/{name:path}/load",
    summary="Load a model / 加载模型",
    description=(
        "Load an instance now and keep it loaded. Needs an admin key.\n\n"
        "立即加载一个实例并保持常驻。需要管理员密钥。"
    ),
    responses=problem_responses(401, 403, 422, 503),
)
async def load_model(
    container: ContainerDep, _admin: AdminDep, name: ModelName, engine: EngineQuery = None
) -> ModelOut:
    try:
        key = await container.pool.load(name, engine)
    except ModelNotAllowedError as exc:
        raise ProblemError(422, str(exc)) from exc
    except ModelUnavailableError as exc:
        raise ProblemError(503, str(exc)) from exc
    return model_out(container.pool, key, allowed_models=container.settings.whisper.allowed_models)


@router.post(
    "/{name:path}/unload",
    summary="Unload a model / 卸载模型",
    description=(
        "Free the memory of every instance; instances in use close when their task ends. "
        "Needs an admin key.\n\n"
        "释放全部实例的内存；正在使用的实例在任务结束后关闭。需要管理员密钥。"
    ),
    responses=problem_responses(401, 403, 404),
)
async def unload_model(
    container: ContainerDep, _admin: AdminDep, name: ModelName, engine: EngineQuery = None
) -> ModelOut:
    count = await container.pool.unload(name, engine)
    key = ModelKey(engine or container.settings.whisper.engine, name)
    if count == 0 and name not in container.settings.whisper.allowed_models:
        raise ProblemError(404, f"model {name!r} is neither configured nor loaded")
    return model_out(container.pool, key, allowed_models=container.settings.whisper.allowed_models)
