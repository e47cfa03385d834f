"""/api/v1/keys: API key management (admin keys only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.api.deps import AdminDep, ContainerDep
from app.api.problems import ProblemError, problem_responses
from app.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.services.mappers import api_key_out

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key / 创建 API 密钥",
    description=(
        "Creates a key and returns it in `key`; only its hash is stored, so this is the only time it "
        "is shown. Needs an admin key.\n\n创建密钥并在 key 字段返回；服务器只保存其哈希，因此只显示这一次。需要管理员密钥。"
    ),
    responses=problem_responses(401, 403, 422),
)
async def create_key(container: ContainerDep, _admin: AdminDep, body: ApiKeyCreate) -> ApiKeyCreated:
    created = await container.auth.create(body.name, is_admin=body.is_admin)
    return ApiKeyCreated(**api_key_out(created.key).model_dump(), key=created.plaintext)


@router.get(
    "",
    summary="List API keys / 列出 API 密钥",
    description="Keys without their secrets. Needs an admin key. / 列出密钥（不含明文）。需要管理员密钥。",
    responses=problem_responses(401, 403),
)
async def list_keys(
    container: ContainerDep,
    _admin: AdminDep,
    include_revoked: Annotated[
        bool, Query(description="Also list revoked keys. / 是否包括已吊销的密钥。")
    ] = False,
) -> list[ApiKeyOut]:
    return [api_key_out(key) for key in await container.auth.list(include_revoked=include_revoked)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key / 吊销 API 密钥",
    description=(
        "Revokes the key at once; its tasks stay visible to admin keys. Needs an admin key.\n\n"
        "立即吊销密钥；其任务仍可由管理员密钥查看。需要管理员密钥。"
    ),
    responses=problem_responses(401, 403, 404),
)
async def revoke_key(
    container: ContainerDep,
    _admin: AdminDep,
    key_id: Annotated[str, Path(max_length=64, description="Key id. / 密钥 ID。")],
) -> Response:
    if await container.auth.revoke(key_id) is None:
        raise ProblemError(404, f"API key {key_id} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
