"""Model pool state as the API reports it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class InstanceState(StrEnum):
    loading = "loading"
    ready = "ready"
    draining = "draining"
    """No new leases; closed when the last lease ends (unload or rebuild after OOM)."""


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
