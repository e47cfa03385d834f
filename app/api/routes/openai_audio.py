"""/v1: the OpenAI-compatible audio API (transcriptions, translations, models).

Requests become ordinary tasks at the highest priority; the request waits for its task and
renders the result the way OpenAI does. Errors are problem+json with OpenAI's ``error`` member
added, so OpenAI's SDKs raise ``APIStatusError`` subclasses with a readable message.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from app.api.deps import SettingsDep, SpeakerServiceDep, TaskServiceDep
from app.api.problems import PROBLEM_SCHEMA, ProblemError, ProblemRenderingRoute, problem_response
from app.api.waiting import ClientGoneError, wait_or_abandon
from app.schemas.openai import (
    OpenAIModel,
    OpenAIModelList,
    OpenAIResponseFormat,
    OpenAIVerboseTranscription,
    TimestampGranularity,
)
from app.schemas.result import TranscriptionResult
from app.schemas.task import (
    MAX_KNOWN_SPEAKERS,
    MAX_SPEAKERS,
    WHISPER_TEMPERATURES,
    DecodeOptions,
    KnownSpeaker,
    TaskPriority,
    TaskSpec,
    TaskStatus,
    TaskType,
)
from app.services.openai_format import render_openai
from app.services.transcript_stream import stream_transcript
from config.engines import engine_for_model
from config.settings import Settings

OPENAI_MODEL_ALIASES = frozenset({"whisper-1"})
"""OpenAI model names that mean "the configured default model"."""

PLATFORM = "openai"
"""Platform tag of the tasks created through ``/v1``."""

CLIENT_CLOSED_REQUEST = 499


def _openai_error(status: int, message: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "message": message,
        "type": "server_error" if status >= 500 else "invalid_request_error",
        "param": extra.get("param"),
        "code": extra.get("code"),
    }


class OpenAIErrorRoute(ProblemRenderingRoute):
    """Errors of these routes carry OpenAI's ``error`` object inside the problem document."""

    def render_problem(
        self,
        request: Request,
        status: int,
        detail: str,
        *,
        title: str | None,
        headers: dict[str, str] | None,
        extra: dict[str, Any],
    ) -> Response:
        errors = extra.get("errors") or []
        param = str(errors[0]["loc"][-1]) if errors and errors[0]["loc"] else extra.get("param")
        return problem_response(
            request,
            status,
            detail,
            title=title,
            headers=headers,
            **extra,
            error=_openai_error(status, detail, {**extra, "param": param}),
        )


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": "Error (problem+json with OpenAI's `error` member) / 错误", **PROBLEM_SCHEMA}
    for status in (400, 404, 413, 415, 422, 500)
}
AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "`json`: {text}; `verbose_json`: segments and words; `text`, `srt`, `vtt`: text/plain. "
            "The header `X-Tingxie-Task-Id` names the task. / json 返回 {text}；verbose_json 含片段与词；"
            "text、srt、vtt 以纯文本返回。响应头 X-Tingxie-Task-Id 为任务 ID。"
        ),
        "model": OpenAIVerboseTranscription,
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    **ERRORS,
}


def resolve_model(requested: str, settings: Settings) -> str:
    """``whisper-1`` means the default model; other names must be in the allowlist, or be the own
    model of an allowed engine (``sensevoice``)."""
    name = requested.strip()
    if name in OPENAI_MODEL_ALIASES:
        return settings.whisper.default_model
    if name in settings.whisper.allowed_models:
        return name
    engine = engine_for_model(name)  # an engine's own model, such as `sensevoice`
    if engine is not None and engine in settings.whisper.allowed_engines:
        return name
    raise ProblemError(
        400,
        f"The model `{requested}` does not exist. Use `whisper-1` or one of: "
        + ", ".join(settings.whisper.allowed_models),
        param="model",
        code="model_not_found",
    )


def _options(
    *,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    words: bool,
    speakers: dict[str, Any] | None = None,
) -> DecodeOptions:
    # As with OpenAI, temperature 0 (the default) falls back to higher temperatures when decoding fails.
    fallback = temperature is None or temperature == 0
    try:
        return DecodeOptions(
            language=language,
            initial_prompt=prompt,
            temperature=list(WHISPER_TEMPERATURES) if fallback else temperature,
            word_timestamps=words,
            **(speakers or {}),
        )
    except ValueError as exc:
        param = "min_speakers" if "speakers" in str(exc) else "language"
        raise ProblemError(400, f"invalid option: {exc}", param=param) from exc


async def _transcribe(
    request: Request,
    service: TaskServiceDep,
    settings: Settings,
    *,
    file: UploadFile,
    task_type: TaskType,
    model: str,
    options: DecodeOptions,
    response_format: OpenAIResponseFormat,
    granularities: frozenset[TimestampGranularity],
    stream: bool = False,
) -> Response:
    created = await service.create(
        TaskSpec(
            task_type=task_type,
            priority=TaskPriority.high,  # interactive requests go first
            model=resolve_model(model, settings),
            options=options,
            platform=PLATFORM,
        ),
        upload=file,
        upload_name=file.filename,
    )
    headers = {"X-Tingxie-Task-Id": created.id}
    if stream:
        return StreamingResponse(
            stream_transcript(
                service,
                created.id,
                diarized=options.diarize,
                failed=lambda message: {
                    "type": "error",
                    "error": _openai_error(500, f"the transcription failed: {message}", {}),
                },
            ),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    try:
        task = await wait_or_abandon(service, request, created.id)
    except ClientGoneError:
        return Response(status_code=CLIENT_CLOSED_REQUEST, headers=headers)
    if task.status is not TaskStatus.completed or task.result is None:
        raise ProblemError(
            500,
            f"the transcription failed: {task.error or 'unknown error'}",
            headers=headers,
            code="transcription_failed",
            task_id=task.id,
        )
    body, media_type = render_openai(
        TranscriptionResult.model_validate(task.result), response_format, task_type, granularities
    )
    return Response(content=body, media_type=media_type, headers=headers)


FileField = Annotated[
    UploadFile, File(description="Audio or video file to process. / 要处理的音频或视频文件。")
]
ModelField = Annotated[
    str,
    Form(
        max_length=128,
        description="`whisper-1` (the configured default model) or an allowed model such as `tiny.en`. / whisper-1（即默认模型）或允许列表中的模型名。",
    ),
]
PromptField = Annotated[
    str | None,
    Form(
        max_length=2000,
        description="Text to guide the style or continue a previous segment. / 引导风格或承接上文的提示词。",
    ),
]
TemperatureField = Annotated[
    float | None,
    Form(
        ge=0,
        le=1,
        description="Sampling temperature 0-1; 0 (default) raises it automatically when decoding fails. / 采样温度 0-1；为 0（默认）时解码失败会自动升温重试。",
    ),
]
FormatField = Annotated[
    OpenAIResponseFormat,
    Form(
        description="json | text | srt | vtt | verbose_json | diarized_json (speakers on segments). / 返回格式（diarized_json 含说话人）。"
    ),
]
SpeakerCountField = Annotated[
    int | None,
    Form(
        ge=1,
        le=MAX_SPEAKERS,
        description="Tingxie extension: speaker count hints for diarization. / 扩展：说话人数提示。",
    ),
]


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible) / 转录音频（兼容 OpenAI）",
    description=(
        "OpenAI's `audio.transcriptions.create`: the file becomes a high-priority task; the request "
        "waits for it and answers in `response_format`. A client that disconnects first deletes its task.\n\n"
        "兼容 OpenAI 的转录接口：文件作为高优先级任务排队，请求等待其完成并按 response_format 返回。"
        "客户端提前断开时任务会被删除。"
    ),
    response_class=Response,
    responses=AUDIO_RESPONSES,
)
async def create_transcription(
    request: Request,
    service: TaskServiceDep,
    speakers: SpeakerServiceDep,
    settings: SettingsDep,
    file: FileField,
    model: ModelField,
    language: Annotated[
        str | None,
        Form(
            max_length=16,
            description="ISO-639-1 language of the audio, e.g. `en`; empty detects it. / 音频语言（如 en），留空自动检测。",
        ),
    ] = None,
    prompt: PromptField = None,
    temperature: TemperatureField = None,
    response_format: FormatField = OpenAIResponseFormat.json,
    timestamp_granularities: Annotated[
        list[TimestampGranularity] | None,
        Form(
            alias="timestamp_granularities[]",
            description="`word` and/or `segment` timings in `verbose_json` (word timings cost extra time). / verbose_json 中的时间戳粒度：word 和/或 segment（词级更耗时）。",
        ),
    ] = None,
    stream: Annotated[
        bool,
        Form(
            description="Server-sent events as segments are decoded: `transcript.text.delta`, `transcript.text.segment` (diarized_json) and `transcript.text.done`. / 以 SSE 流式返回。"
        ),
    ] = False,
    known_speaker_names: Annotated[
        list[str] | None,
        Form(
            alias="known_speaker_names[]",
            max_length=MAX_KNOWN_SPEAKERS,
            description="Names of the voices in `known_speaker_references[]` (diarized_json). / 已知说话人名字。",
        ),
    ] = None,
    known_speaker_references: Annotated[
        list[str] | None,
        Form(
            alias="known_speaker_references[]",
            max_length=MAX_KNOWN_SPEAKERS,
            description="2-30 s samples of those voices as data URLs. / 已知说话人的参考音频（data URL）。",
        ),
    ] = None,
    diarize: Annotated[
        bool,
        Form(
            description="Tingxie extension: label speakers in any format (implied by diarized_json). / 扩展：说话人分离。"
        ),
    ] = False,
    num_speakers: SpeakerCountField = None,
    min_speakers: SpeakerCountField = None,
    max_speakers: SpeakerCountField = None,
    chunking_strategy: Annotated[
        str | None, Form(description="Accepted for compatibility and ignored. / 兼容参数，忽略。")
    ] = None,
) -> Response:
    granularities = frozenset(timestamp_granularities or ())
    diarized = diarize or response_format is OpenAIResponseFormat.diarized_json
    names, references = known_speaker_names or [], known_speaker_references or []
    if len(names) != len(references):
        raise ProblemError(
            400,
            "known_speaker_names[] and known_speaker_references[] must pair up",
            param="known_speaker_names",
        )
    known: list[KnownSpeaker] = await speakers.reference_embeddings(names, references) if references else []
    options = _options(
        language=language,
        prompt=prompt,
        temperature=temperature,
        words=TimestampGranularity.word in granularities or diarized,
        speakers={
            "diarize": diarized,
            "num_speakers": num_speakers,
            "min_speakers": min_speakers,
            "max_speakers": max_speakers,
            "known_speakers": known or None,
        },
    )
    return await _transcribe(
        request,
        service,
        settings,
        file=file,
        task_type=TaskType.transcribe,
        model=model,
        options=options,
        response_format=response_format,
        granularities=granularities,
        stream=stream,
    )


@router.post(
    "/audio/translations",
    summary="Translate audio to English (OpenAI-compatible) / 音频翻译为英文（兼容 OpenAI）",
    description=(
        "OpenAI's `audio.translations.create`: speech in any language to English text, through the "
        "same queue. Needs a multilingual model (not `*.en`).\n\n"
        "兼容 OpenAI 的翻译接口：把任意语言的语音译为英文，经同一队列处理；需要多语言模型（非 .en）。"
    ),
    response_class=Response,
    responses=AUDIO_RESPONSES,
)
async def create_translation(
    request: Request,
    service: TaskServiceDep,
    settings: SettingsDep,
    file: FileField,
    model: ModelField,
    prompt: PromptField = None,
    temperature: TemperatureField = None,
    response_format: FormatField = OpenAIResponseFormat.json,
) -> Response:
    if response_format is OpenAIResponseFormat.diarized_json:
        raise ProblemError(400, "diarized_json is for transcriptions", param="response_format")
    options = _options(language=None, prompt=prompt, temperature=temperature, words=False)
    return await _transcribe(
        request,
        service,
        settings,
        file=file,
        task_type=TaskType.translate,
        model=model,
        options=options,
        response_format=response_format,
        granularities=frozenset(),
    )


def _model_list(settings: Settings) -> list[OpenAIModel]:
    names = [*sorted(OPENAI_MODEL_ALIASES), *settings.whisper.allowed_models]
    return [OpenAIModel(id=name, created=0, owned_by="tingxie") for name in names]


@router.get(
    "/models",
    summary="List models (OpenAI-compatible) / 模型列表（兼容 OpenAI）",
    description=(
        "`whisper-1` (an alias of the default model) and every allowed model, in OpenAI's list shape.\n\n"
        "以 OpenAI 列表格式返回 whisper-1（默认模型的别名）和所有允许的模型。"
    ),
)
async def list_models(settings: SettingsDep) -> OpenAIModelList:
    return OpenAIModelList(data=_model_list(settings))


@router.get(
    "/models/{model_id:path}",
    summary="Get a model (OpenAI-compatible) / 查询模型（兼容 OpenAI）",
    description="One model in OpenAI's shape, or 404. / 以 OpenAI 格式返回单个模型，不存在时返回 404。",
    responses={404: ERRORS[404]},
)
async def get_model(
    settings: SettingsDep,
    model_id: Annotated[str, Path(description="Model id, e.g. `whisper-1`. / 模型 ID。")],
) -> OpenAIModel:
    for model in _model_list(settings):
        if model.id == model_id:
            return model
    raise ProblemError(404, f"The model `{model_id}` does not exist", param="model", code="model_not_found")
