"""/api/v1/media: media utilities (audio extraction)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from app.api.deps import ContainerDep
from app.api.extract_audio import TempFileStreamingResponse, extracted_audio_response
from app.api.problems import problem_responses
from app.media.extract import AudioFormat, ExtractOptions

router = APIRouter(prefix="/api/v1/media", tags=["media"])

AUDIO_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The extracted audio. / 提取出的音频。",
        "content": {
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
            "audio/mpeg": {"schema": {"type": "string", "format": "binary"}},
            "audio/flac": {"schema": {"type": "string", "format": "binary"}},
            "audio/ogg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **problem_responses(400, 413, 415, 422, 503),
}


@router.post(
    "/extract-audio",
    summary="Extract the audio of a file / 提取音频",
    description=(
        "Upload a video (or audio) file and get its first audio track back as WAV, MP3, FLAC or Opus "
        "(Ogg), resampled to `sample_rate` and `channels`. `bit_depth` (16/24/32 for WAV, 16/24 for "
        "FLAC) applies to lossless formats only. The upload size limit applies, and so do the "
        "duration limit and a cap on the output's size (413); a file that is not media gets 415; 503 "
        "when the service is over capacity.\n\n"
        "上传视频（或音频）文件，返回其第一条音轨，格式为 WAV、MP3、FLAC 或 Opus（Ogg），并按 sample_rate 与 "
        "channels 重采样。bit_depth（WAV 为 16/24/32，FLAC 为 16/24）只适用于无损格式。受上传大小限制；"
        "不是音视频的文件返回 415。"
    ),
    status_code=200,
    response_class=TempFileStreamingResponse,
    responses=AUDIO_RESPONSES,
)
async def extract_audio_route(
    container: ContainerDep,
    file: Annotated[UploadFile, File(description="Video or audio file. / 视频或音频文件。")],
    format: Annotated[
        AudioFormat, Form(description="wav | mp3 | flac | opus. / 输出格式。")
    ] = AudioFormat.wav,
    sample_rate: Annotated[
        int,
        Form(
            ge=8000,
            le=192000,
            description="Output sample rate in Hz (MP3 and Opus accept only their standard rates). / 输出采样率（Hz）。",
        ),
    ] = 16000,
    channels: Annotated[
        int, Form(ge=1, le=2, description="1 (mono) or 2 (stereo). / 声道数：1 单声道，2 立体声。")
    ] = 1,
    bit_depth: Annotated[
        int | None,
        Form(
            description="Bits per sample for wav (16/24/32) or flac (16/24); default 16; not for mp3/opus. / 位深（wav 16/24/32，flac 16/24），默认 16；mp3/opus 不适用。",
        ),
    ] = None,
) -> TempFileStreamingResponse:
    options = ExtractOptions(format=format, sample_rate=sample_rate, channels=channels, bit_depth=bit_depth)
    return await extracted_audio_response(
        container.storage,
        file,
        options,
        admission=container.admission,
        limits=container.settings.limits,
        upload_name=file.filename,
    )
