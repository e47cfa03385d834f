"""/api/v1/workers: live workers across every node sharing the database."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import AdminDep, ContainerDep
from app.api.problems import problem_responses
from app.db.models import utcnow
from app.schemas.worker import NodeRole

router = APIRouter(prefix="/api/v1/workers", tags=["workers"])


class WorkerOut(BaseModel):
    """A live worker. / 存活的工作进程。"""

    id: str = Field(description="Worker id. / 工作进程 ID。")
    role: NodeRole = Field(description="What the node runs: `all` (API and worker) or `worker`. / 节点角色。")
    hostname: str = Field(description="Host. / 主机名。")
    pid: int = Field(description="Process id. / 进程号。")
    devices: list[str] = Field(description="Devices of its model pool. / 模型池设备。")
    running_tasks: list[str] = Field(description="Tasks running there. / 正在运行的任务。")
    started_at: datetime = Field(description="Start time (UTC). / 启动时间。")
    heartbeat_age_seconds: float = Field(description="Seconds since its last heartbeat. / 距上次心跳的秒数。")


@router.get(
    "",
    summary="List live workers / 存活工作进程列表",
    description=(
        "Workers whose heartbeat is younger than the lease, on every node of the shared database, "
        "with the ids of the tasks they run. Needs an admin key.\n\n"
        "共享数据库上所有节点中心跳未超过租约时长的工作进程，及其正在运行的任务 ID。需要管理员密钥。"
    ),
    responses=problem_responses(401, 403),
)
async def list_workers(container: ContainerDep, _admin: AdminDep) -> list[WorkerOut]:
    now = utcnow()
    rows = await container.repositories.workers.live(container.settings.processor.lease_seconds)
    return [
        WorkerOut(
            id=row.id,
            role=cast(NodeRole, row.role),
            hostname=row.hostname,
            pid=row.pid,
            devices=row.devices,
            running_tasks=row.running_tasks,
            started_at=row.started_at,
            heartbeat_age_seconds=round((now - row.heartbeat_at).total_seconds(), 2),
        )
        for row in rows
    ]
