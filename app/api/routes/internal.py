"""/internal/v1: node-to-node endpoints, authenticated by the shared peer secret."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import FileResponse

from app.api.deps import ContainerDep
from app.api.problems import ProblemError, problem_responses

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.get(
    "/media/{name}",
    summary="Media for a peer worker / 供其他节点的工作进程读取媒体",
    description=(
        "Streams a media file this node received to a worker on another node. Needs "
        "`Authorization: Bearer <STORAGE__PEER_SECRET>`; disabled when no secret is set.\n\n"
        "向其他节点的工作进程提供本节点接收的媒体文件。需要 `Authorization: Bearer <STORAGE__PEER_SECRET>`；未设置密钥时禁用。"
    ),
    response_class=FileResponse,
    responses=problem_responses(401, 404),
)
async def peer_media(
    container: ContainerDep,
    name: Annotated[str, Path(description="Server-generated media name. / 服务器生成的媒体文件名。")],
    authorization: Annotated[
        str | None, Header(description="`Bearer <peer secret>`. / 节点间共享密钥。")
    ] = None,
) -> FileResponse:
    secret = container.settings.storage.peer_secret
    if secret is None:
        raise ProblemError(404, "peer media is disabled on this node")
    expected = f"Bearer {secret.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise ProblemError(401, "a valid peer secret is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        path = container.storage.path_of(name)
    except ValueError as exc:
        raise ProblemError(404, "no such media") from exc
    if not path.is_file():
        raise ProblemError(404, "no such media")
    return FileResponse(path, media_type="application/octet-stream")
