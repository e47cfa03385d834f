"""/metrics: Prometheus exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import AdminDep, ContainerDep
from app.api.problems import problem_responses
from app.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics / Prometheus 指标",
    description=(
        "Queue depth by priority (read from the database at scrape time), task duration and "
        "real-time factor histograms, completed/failed task and callback failure counters, and "
        "busy/idle model instances of this node. Needs an admin key when `AUTH__ENABLED=true` "
        "(give the scraper one as a bearer token).\n\n"
        "队列深度（抓取时从数据库读取）、任务耗时与实时率直方图、完成/失败任务与回调失败计数，以及本节点模型实例的忙闲数。"
        "启用认证时需要管理员密钥（以 Bearer 令牌提供给抓取器）。"
    ),
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}},
        **problem_responses(401, 403),
    },
)
async def metrics(container: ContainerDep, _admin: AdminDep) -> Response:
    return Response(await container.metrics.render(), media_type=CONTENT_TYPE)
