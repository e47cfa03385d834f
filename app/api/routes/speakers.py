"""/api/v1/speakers: enrol voices by name, so diarized tasks label them with that name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status

from app.api.deps import PrincipalDep, SpeakerServiceDep
from app.api.problems import problem_responses
from app.schemas.speaker import SpeakerOut, SpeakerPage
from app.schemas.task import MAX_OFFSET
from app.speakers.voices import MAX_SAMPLE_BYTES

router = APIRouter(prefix="/api/v1/speakers", tags=["speakers"])

SpeakerId = Annotated[str, Path(description="Speaker id. / 说话人 ID。", max_length=64)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Enrol a voice / 登记声纹",
    description=(
        "A `name` and a 5-30 s `sample` of that person speaking alone. Only the voice embedding is "
        "kept. Diarized tasks of the same API key call a speaker whose voice matches by this name.\n\n"
        "提交名字（name）和 5-30 秒的单人语音样本（sample），仅保存声纹向量。同一 API 密钥的说话人分离任务会用此名字标注匹配的说话人。"
    ),
    responses=problem_responses(413, 422),
)
async def enroll_speaker(
    service: SpeakerServiceDep,
    principal: PrincipalDep,
    name: Annotated[str, Form(min_length=1, max_length=64, description="Name. / 名字。")],
    sample: Annotated[UploadFile, File(description="5-30 s of the voice. / 5-30 秒语音样本。")],
) -> SpeakerOut:
    data = await sample.read(MAX_SAMPLE_BYTES + 1)
    return await service.enroll(name, data, principal)


@router.get(
    "",
    summary="List enrolled voices / 查询已登记声纹",
    description="Newest first; a key sees its own voices, an admin key every voice. / 按登记时间倒序；普通密钥只能看到自己的。",
    responses=problem_responses(422),
)
async def list_speakers(
    service: SpeakerServiceDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size. / 每页数量。")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Offset. / 偏移量。")] = 0,
) -> SpeakerPage:
    return await service.search(limit=limit, offset=offset, principal=principal)


@router.get(
    "/{speaker_id}",
    summary="Get an enrolled voice / 查询声纹",
    responses=problem_responses(404),
)
async def get_speaker(
    service: SpeakerServiceDep, principal: PrincipalDep, speaker_id: SpeakerId
) -> SpeakerOut:
    return await service.get(speaker_id, principal)


@router.delete(
    "/{speaker_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an enrolled voice / 删除声纹",
    responses=problem_responses(404),
)
async def delete_speaker(
    service: SpeakerServiceDep, principal: PrincipalDep, speaker_id: SpeakerId
) -> Response:
    await service.delete(speaker_id, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
