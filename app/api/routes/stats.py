"""/api/v1/stats: task counts, queue depth and the last hour's throughput."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import AdminDep, ContainerDep
from app.api.problems import problem_responses
from app.db.models import utcnow
from app.schemas.task import TaskPriority, TaskStatus

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])

THROUGHPUT_PERIOD = timedelta(hours=1)
"""How far back the throughput figures look."""


class Throughput(BaseModel):
    """Tasks finished in the window. / 时间窗口内结束的任务。"""

    window_seconds: int = Field(description="Window length. / 窗口长度（秒）。")
    completed: int = Field(description="Tasks completed. / 完成的任务数。")
    failed: int = Field(description="Tasks failed. / 失败的任务数。")
    audio_seconds: float = Field(description="Audio processed by completed tasks. / 已处理音频秒数。")
    processing_seconds: float = Field(description="Processing time of completed tasks. / 处理耗时（秒）。")
    mean_real_time_factor: float | None = Field(
        description="Mean processing time / audio duration of completed tasks; null without any. / 平均实时率。"
    )


class Stats(BaseModel):
    """Queue and throughput across every node of the database. / 全部节点的队列与吞吐统计。"""

    counts: dict[str, int] = Field(description="Tasks by status. / 各状态任务数。")
    queue_depth: dict[str, int] = Field(description="Queued tasks by priority. / 各优先级排队数。")
    last_hour: Throughput = Field(description="The last hour. / 最近一小时。")


@router.get(
    "",
    summary="Statistics / 统计",
    description=(
        "Counts by status, queue depth by priority, and over the last hour the tasks completed and "
        "failed, seconds of audio processed and the mean real-time factor, over every key's tasks. "
        "Needs an admin key.\n\n"
        "各状态任务数、各优先级队列深度，以及最近一小时完成/失败的任务数、处理的音频秒数和平均实时率"
        "（统计全部密钥的任务）。需要管理员密钥。"
    ),
    responses=problem_responses(401, 403),
)
async def stats(container: ContainerDep, _admin: AdminDep) -> Stats:
    repository = container.repositories.stats
    counts = await repository.counts_by_status()
    depth = await repository.queue_depth()
    recent = await repository.finished_since(utcnow() - THROUGHPUT_PERIOD)
    return Stats(
        counts={status.value: counts.get(status.value, 0) for status in TaskStatus},
        queue_depth={priority.value: depth.get(priority.rank, 0) for priority in TaskPriority},
        last_hour=Throughput(
            window_seconds=int(THROUGHPUT_PERIOD.total_seconds()),
            completed=recent.completed,
            failed=recent.failed,
            audio_seconds=round(recent.audio_seconds, 3),
            processing_seconds=round(recent.processing_seconds, 3),
            mean_real_time_factor=(
                None if recent.mean_real_time_factor is None else round(recent.mean_real_time_factor, 4)
            ),
        ),
    )
