"""Model pool state as the API reports it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from app.engines.model_pool import AsyncModelPool, InstanceState, ModelInstance, ModelKey


class InstanceOut(BaseModel):
    """One loaded (or loading) model instance. / 一个模型实例。"""

    id: str = Field(description="Instance id. / 实例 ID。")
    device: str = Field(description="Device such as `cpu` or `cuda:0`. / 设备。")
    state: InstanceState = Field(description="loading, ready or draining. / 状态。")
    busy: bool = Field(description="Running an inference step now. / 是否正在推理。")
    leases: int = Field(description="Tasks holding this instance. / 持有该实例的任务数。")
    threads: int = Field(description="CPU threads of this instance. / CPU 线程数。")
    idle_seconds: float = Field(description="Seconds since last use. / 空闲秒数。")
    memory_bytes: int | None = Field(description="Memory taken by the load. / 加载占用的内存（字节）。")
    loaded_at: datetime | None = Field(description="When it became ready (UTC). / 加载完成时间。")


class ModelOut(BaseModel):
    """A configured or loaded model. / 已配置或已加载的模型。"""

    name: str = Field(description="Model name. / 模型名。")
    engine: str = Field(description="Engine. / 引擎。")
    default: bool = Field(description="The default model. / 是否默认模型。")
    allowed: bool = Field(description="In the allowlist. / 是否在允许列表。")
    desired: int = Field(description="Instances the pool keeps loaded. / 常驻实例数。")
    loaded: int = Field(description="Ready instances. / 就绪实例数。")
    busy: int = Field(description="Instances running a step. / 忙碌实例数。")
    idle: int = Field(description="Ready instances not running a step. / 空闲实例数。")
    memory_bytes: int = Field(description="Memory of all instances. / 全部实例内存（字节）。")
    last_error: str | None = Field(
        description="Last failed load, retried in the background. / 最近一次加载失败原因。"
    )
    instances: list[InstanceOut] = Field(description="Instances. / 实例列表。")


class PoolOut(BaseModel):
    """The model pool. / 模型池。"""

    devices: list[str] = Field(description="Devices in use. / 使用的设备。")
    instances_per_device: int = Field(
        description="Instances (and parallel steps) per device. / 每设备实例数。"
    )
    max_size: int = Field(description="Most instances of one model. / 单模型最大实例数。")
    cpu_threads: int = Field(description="Threads per CPU instance. / 每个 CPU 实例的线程数。")
    models: list[ModelOut] = Field(description="Models. / 模型列表。")


def _instance_out(instance: ModelInstance) -> InstanceOut:
    return InstanceOut(
        id=instance.id,
        device=instance.device.name,
        state=instance.state,
        busy=instance.running > 0,
        leases=instance.leases,
        threads=instance.threads,
        idle_seconds=round(time.monotonic() - instance.last_used, 1),
        memory_bytes=instance.memory_bytes,
        loaded_at=datetime.fromtimestamp(instance.loaded_at, UTC) if instance.loaded_at else None,
    )


def model_out(pool: AsyncModelPool, key: ModelKey, *, allowed_models: list[str]) -> ModelOut:
    instances = pool.instances(key)
    ready = [i for i in instances if i.state is InstanceState.ready]
    busy = sum(1 for i in ready if i.running > 0)
    return ModelOut(
        name=key.model,
        engine=key.engine,
        default=key == pool.default_key,
        allowed=key.model in allowed_models,
        desired=pool.desired(key),
        loaded=len(ready),
        busy=busy,
        idle=len(ready) - busy,
        memory_bytes=sum(i.memory_bytes or 0 for i in instances),
        last_error=pool.failures.get(key),
        instances=[_instance_out(i) for i in instances],
    )


def pool_out(pool: AsyncModelPool, *, allowed_models: list[str], instances_per_device: int) -> PoolOut:
    keys = pool.keys()
    keys.extend(key for key in pool.failures if key not in keys)
    return PoolOut(
        devices=[device.name for device in pool.devices],
        instances_per_device=instances_per_device,
        max_size=pool.max_size,
        cpu_threads=pool.cpu_threads,
        models=[model_out(pool, key, allowed_models=allowed_models) for key in keys],
    )
