"""Request and response schemas for tasks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.schemas.callback import CallbackStatus
from app.schemas.chinese import ChineseScript, split_language_tag
from app.schemas.result import TranscriptionResult
from config.engines import ENGINE_NAMES, check_engine_name

WHISPER_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


MAX_OFFSET = 2**31 - 1
"""The largest list offset: larger ones overflow SQLite's integers (a 500 found by the schemathesis
run); no table is that big."""


class TaskStatus(StrEnum):
    """Lifecycle of a task. / 任务状态。"""

    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled)


class TaskType(StrEnum):
    """What to do with the audio. / 任务类型。"""

    transcribe = "transcribe"
    translate = "translate"  # type: ignore[assignment]  # shadows str.translate


class TaskPriority(StrEnum):
    """Queue priority. / 队列优先级。"""

    high = "high"
    normal = "normal"
    low = "low"

    @property
    def rank(self) -> int:
        """Stored rank: lower runs first."""
        return _PRIORITY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> TaskPriority:
        return _RANK_PRIORITY[rank]


_PRIORITY_RANK = {TaskPriority.high: 0, TaskPriority.normal: 1, TaskPriority.low: 2}
_RANK_PRIORITY = {rank: priority for priority, rank in _PRIORITY_RANK.items()}


class MediaSource(StrEnum):
    """Where the media came from. / 媒体来源。"""

    upload = "upload"
    url = "url"
    link = "link"


def _parse_float_list(value: Any) -> Any:
    """Accept ``0.2``, ``"0.2"``, ``"0,0.2,0.4"``, ``"[0, 0.2]"`` or a list (repeated form fields)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("["):
            return json.loads(text)
        parts = [part.strip() for part in text.split(",") if part.strip()]
        return parts if len(parts) > 1 else parts[0]
    return value


MAX_SPEAKERS = 32
MAX_KNOWN_SPEAKERS = 8


class KnownSpeaker(BaseModel):
    """A voice a diarized task names: a name and its voice embedding. / 任务中已知说话人的名字与声纹向量。"""

    name: str = Field(min_length=1, max_length=64, description="Name to label. / 标注用的名字。")
    embedding: list[float] = Field(
        min_length=256, max_length=256, description="256-d voice embedding. / 256 维声纹向量。"
    )


class DecodeOptions(BaseModel):
    """Whisper decoding options; defaults are Whisper's own. / Whisper 解码参数，默认值与 Whisper 相同。"""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(
        default=None,
        min_length=2,
        max_length=16,
        description="Spoken language code such as `en` or `zh`; empty detects it. `zh-Hans`/`zh-CN` mean `zh` with Simplified output, `zh-Hant`/`zh-TW` `zh` with Taiwan Traditional, `zh-HK` `zh` with Hong Kong Traditional. / 语言代码（如 en、zh），留空自动检测；zh-Hans/zh-CN 表示简体输出，zh-Hant/zh-TW 表示台湾繁体，zh-HK 表示香港繁体。",
    )
    chinese_script: ChineseScript | None = Field(
        default=None,
        description="Script of Chinese output: `original`, `simplified`, `traditional`, `taiwan` or `hongkong`; empty uses the server's default. Applies only when the language is Chinese. / 中文输出字形：original、simplified、traditional、taiwan、hongkong；留空使用服务器默认值，仅对中文生效。",
    )
    use_itn: bool = Field(
        default=True,
        description="SenseVoice: inverse text normalisation, with punctuation (Whisper ignores it). / SenseVoice：逆文本正则化（含标点），Whisper 忽略此项。",
    )
    temperature: float | list[float] = Field(
        default=list(WHISPER_TEMPERATURES),
        description="One temperature, or a fallback list (`0,0.2,0.4`). / 温度，或回退温度列表。",
    )
    beam_size: int = Field(default=5, ge=1, le=20, description="Beam width. / 束搜索宽度。")
    best_of: int = Field(
        default=5, ge=1, le=20, description="Candidates when sampling at temperature > 0. / 采样候选数。"
    )
    patience: float = Field(default=1.0, gt=0, le=10, description="Beam search patience. / 束搜索耐心系数。")
    compression_ratio_threshold: float | None = Field(
        default=2.4, description="Retry above this gzip ratio. / 压缩比超过此值时回退重试。"
    )
    log_prob_threshold: float | None = Field(
        default=-1.0, description="Retry below this average log probability. / 平均对数概率低于此值时重试。"
    )
    no_speech_threshold: float | None = Field(
        default=0.6, description="Silence threshold for skipping segments. / 静音判定阈值。"
    )
    condition_on_previous_text: bool = Field(
        default=True, description="Prompt each window with the previous text. / 以前文作为提示。"
    )
    initial_prompt: str | None = Field(
        default=None, max_length=2000, description="Prompt for the first window. / 首个窗口的提示词。"
    )
    hotwords: str | None = Field(
        default=None, max_length=2000, description="Hotwords / hint phrases. / 热词。"
    )
    word_timestamps: bool = Field(default=False, description="Return word timings. / 返回词级时间戳。")
    prepend_punctuations: str = Field(
        default="\"'“¿([{-",
        max_length=64,
        description="Punctuation merged into the next word. / 并入下一个词的标点。",
    )
    append_punctuations: str = Field(
        default="\"'.。,，!！?？:：”)]}、",
        max_length=64,
        description="Punctuation merged into the previous word. / 并入上一个词的标点。",
    )
    clip_timestamps: str | None = Field(
        default=None,
        max_length=4000,
        description="Comma-separated start,end,... seconds to process. / 仅处理的时间段（逗号分隔的秒数）。",
    )
    hallucination_silence_threshold: float | None = Field(
        default=None,
        gt=0,
        description="Skip silences longer than this around hallucinations (needs word timestamps). Not batched: a task that sets it is decoded alone by faster-whisper's own `transcribe`, on the whole file. / 幻觉静音阈值（不参与批处理：该任务由 faster-whisper 自身的 transcribe 单独解码整个文件）。",
    )
    vad_filter: bool = Field(default=False, description="Drop silence with Silero VAD. / 使用 VAD 过滤静音。")
    diarize: bool = Field(
        default=False,
        description="Label who spoke when (`speaker` on segments and words). / 说话人分离（片段与词带 speaker）。",
    )
    num_speakers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SPEAKERS,
        description="Exact number of speakers; empty estimates it. / 说话人数量；留空自动估计。",
    )
    min_speakers: int | None = Field(
        default=None, ge=1, le=MAX_SPEAKERS, description="Fewest speakers to find. / 最少说话人数。"
    )
    max_speakers: int | None = Field(
        default=None, ge=1, le=MAX_SPEAKERS, description="Most speakers to find. / 最多说话人数。"
    )
    known_speakers: list[KnownSpeaker] | None = Field(
        default=None,
        max_length=MAX_KNOWN_SPEAKERS,
        description="Voices from `known_speaker_references`, embedded when the task was created. / 由 known_speaker_references 计算出的声纹。",
    )

    @model_validator(mode="before")
    @classmethod
    def _language_tag(cls, data: Any) -> Any:
        """``zh-Hans`` and its kin: language ``zh`` plus a script, unless a script is given."""
        if isinstance(data, dict) and isinstance(data.get("language"), str):
            language, script = split_language_tag(data["language"])
            if script is not None:
                data = {**data, "language": language}
                if not data.get("chinese_script"):
                    data["chinese_script"] = script
        return data

    @field_validator("temperature", mode="before")
    @classmethod
    def _temperature(cls, value: Any) -> Any:
        return _parse_float_list(value)

    @field_validator("num_speakers", "min_speakers", "max_speakers", mode="before")
    @classmethod
    def _blank_count(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _speaker_bounds(self) -> DecodeOptions:
        if (
            self.min_speakers is not None
            and self.max_speakers is not None
            and self.min_speakers > self.max_speakers
        ):
            raise ValueError("min_speakers must not exceed max_speakers")
        return self

    @field_validator("temperature")
    @classmethod
    def _temperature_range(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(not 0.0 <= item <= 2.0 for item in values):
            raise ValueError("temperatures must lie in [0, 2]")
        return value

    @field_validator("clip_timestamps")
    @classmethod
    def _clip_timestamps(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            numbers = [float(part) for part in value.split(",")]
        except ValueError as exc:
            raise ValueError("clip_timestamps must be comma-separated seconds") from exc
        if any(number < 0 for number in numbers):
            raise ValueError("clip_timestamps must not be negative")
        return ",".join(f"{number:g}" for number in numbers)

    @field_validator("chinese_script", mode="before")
    @classmethod
    def _blank_script(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("language", "initial_prompt", "hotwords", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value


class LinkMetadata(BaseModel):
    """What the platform says about a media link. / 媒体链接的平台信息。"""

    platform: str = Field(
        description="Detected platform (tiktok, douyin, youtube, bilibili, generic, ...). / 识别出的平台。"
    )
    original_url: str = Field(description="The link as given. / 提交的原始链接。")
    webpage_url: str | None = Field(
        default=None, description="Canonical page URL (short links resolved). / 规范页面地址（短链已解析）。"
    )
    media_id: str | None = Field(
        default=None, description="The platform's id of the media. / 平台上的媒体 ID。"
    )
    title: str | None = Field(default=None, description="Title. / 标题。")
    author: str | None = Field(default=None, description="Author or uploader. / 作者或上传者。")
    duration: float | None = Field(
        default=None, description="Duration the platform declares (seconds). / 平台声明的时长（秒）。"
    )
    thumbnail: str | None = Field(default=None, description="Thumbnail URL. / 封面图地址。")


class TaskOut(BaseModel):
    """A task as the API returns it. / API 返回的任务。"""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Task id. / 任务 ID。")
    status: TaskStatus = Field(description="Status. / 状态。")
    priority: TaskPriority = Field(description="Priority. / 优先级。")
    task_type: TaskType = Field(description="transcribe or translate. / 转录或翻译。")
    engine: str = Field(description="Speech engine. / 推理引擎。")
    model: str = Field(description="Model name. / 模型名称。")
    options: DecodeOptions = Field(description="Decoding options. / 解码参数。")
    chinese_script: ChineseScript | None = Field(
        default=None,
        description="Script Chinese output is written in (`original` leaves it as decoded). / 中文输出所用字形（original 为原样）。",
    )
    source: MediaSource = Field(description="upload, url or link. / 来源：上传、URL 或媒体链接。")
    file_name: str | None = Field(description="Original file name (display only). / 原始文件名（仅展示）。")
    file_url: str | None = Field(description="Source URL if any. / 源 URL。")
    file_size: int | None = Field(description="Media size in bytes. / 文件大小（字节）。")
    duration: float | None = Field(description="Audio duration in seconds. / 音频时长（秒）。")
    platform: str | None = Field(description="Platform tag. / 平台标签。")
    callback_url: str | None = Field(description="Callback URL. / 回调地址。")
    progress: float = Field(description="Progress 0-100 by audio position. / 进度（0-100）。")
    language: str | None = Field(description="Detected language. / 检测到的语言。")
    language_probability: float | None = Field(description="Language probability. / 语言概率。")
    error: str | None = Field(description="Error message of a failed task. / 失败原因。")
    processing_time: float | None = Field(description="Processing seconds. / 处理耗时（秒）。")
    worker_id: str | None = Field(description="Worker that ran the task. / 执行的工作进程。")
    attempts: int = Field(description="Times a worker claimed the task. / 被领取的次数。")
    media_available: bool = Field(
        description="Whether the original media is retained. / 原始媒体是否仍保留。"
    )
    created_at: datetime = Field(description="Created (UTC). / 创建时间（UTC）。")
    updated_at: datetime = Field(description="Last update (UTC). / 更新时间（UTC）。")
    started_at: datetime | None = Field(description="Processing start (UTC). / 开始处理时间。")
    completed_at: datetime | None = Field(description="End of processing (UTC). / 结束时间。")
    link: LinkMetadata | None = Field(
        default=None,
        description="Platform metadata of a task created from a media link. / 由媒体链接创建的任务的平台信息。",
    )
    result: TranscriptionResult | None = Field(
        default=None, description="Result once completed. / 完成后的结果。"
    )
    callback: CallbackStatus | None = Field(
        default=None,
        description="Latest callback delivery, once the task has ended with a `callback_url`. / 最近一次回调投递（任务结束且设置了 callback_url 时）。",
    )


class TaskPage(BaseModel):
    """One page of tasks, newest first. / 分页任务列表（最新在前）。"""

    items: list[TaskOut] = Field(description="Tasks on this page. / 本页任务。")
    total: int = Field(description="Tasks matching the filters. / 符合条件的总数。")
    limit: int = Field(description="Page size. / 每页数量。")
    offset: int = Field(description="Offset of this page. / 偏移量。")
    next_offset: int | None = Field(description="Offset of the next page, if any. / 下一页偏移量。")


def _http_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class TaskRequest(DecodeOptions):
    """What every way of creating a task asks for besides the media: the task, its priority,
    model, engine and callback, plus the decoding options."""

    task_type: TaskType = Field(
        default=TaskType.transcribe,
        description="`transcribe` keeps the language; `translate` outputs English. / transcribe 保留原语言，translate 译为英文。",
    )
    priority: TaskPriority = Field(
        default=TaskPriority.normal,
        description="`high` tasks run before `normal`, `normal` before `low`. / 高优先级先于普通，普通先于低。",
    )
    model: str | None = Field(
        default=None,
        max_length=128,
        description="Model from the configured allowlist (e.g. `base`, `tiny.en`); empty uses the default. / 模型名（需在允许列表中），留空使用默认模型。",
    )
    engine: str | None = Field(
        default=None,
        description="Engine from the configured allowlist (`faster_whisper`, `openai_whisper`, `sensevoice`); empty uses the default (or the engine of a model such as `sensevoice`). / 推理引擎（需在允许列表中），留空使用默认引擎。",
        json_schema_extra={"enum": [*ENGINE_NAMES, None]},
    )
    callback_url: str | None = Field(
        default=None,
        max_length=4096,
        description="URL that receives the task when it ends. / 任务结束时接收回调的地址。",
    )

    known_speaker_names: list[str] | None = Field(
        default=None,
        max_length=MAX_KNOWN_SPEAKERS,
        validation_alias=AliasChoices("known_speaker_names", "known_speaker_names[]"),
        description="Names of the voices in `known_speaker_references`, in the same order (diarized tasks). / 已知说话人名字，与参考音频一一对应。",
    )
    known_speaker_references: list[str] | None = Field(
        default=None,
        max_length=MAX_KNOWN_SPEAKERS,
        validation_alias=AliasChoices("known_speaker_references", "known_speaker_references[]"),
        description="2-30 s voice samples as data URLs (`data:audio/wav;base64,...`), as in OpenAI's API. / 已知说话人的参考音频（data URL，2-30 秒）。",
    )

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @model_validator(mode="after")
    def _known_pairs(self) -> TaskRequest:
        names, references = self.known_speaker_names or [], self.known_speaker_references or []
        if len(names) != len(references):
            raise ValueError("known_speaker_names and known_speaker_references must pair up")
        if names and not self.diarize:
            raise ValueError("known speakers need diarize=true")
        return self

    @field_validator("model", "engine", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str | None) -> str | None:
        return check_engine_name(value) if value is not None else None

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions.model_validate(self.model_dump(include=set(DecodeOptions.model_fields)))

    def task_spec(self, options: DecodeOptions | None = None) -> TaskSpec:
        """What this request asks for; ``options`` replace its own (with known speakers embedded)."""
        return TaskSpec(
            task_type=self.task_type,
            priority=self.priority,
            model=self.model,
            engine=self.engine,
            options=options or self.decode_options(),
            callback_url=self.callback_url,
        )


@dataclass(frozen=True)
class TaskSpec:
    """What to transcribe, and how: everything a new task asks for besides its media.

    Every way in (the task form, a link, a batch, the OpenAI route, a workflow step) builds one;
    ``TaskService.check_request`` returns it with the model and engine filled in."""

    task_type: TaskType = TaskType.transcribe
    priority: TaskPriority = TaskPriority.normal
    model: str | None = None
    engine: str | None = None
    options: DecodeOptions = field(default_factory=DecodeOptions)
    callback_url: str | None = None
    platform: str | None = None
    """A free-form tag for filtering; a link's platform when it came from one."""


class TaskCreateForm(TaskRequest):
    """Multipart form fields of ``POST /api/v1/tasks`` (the file itself is a separate part)."""

    model_config = ConfigDict(extra="ignore")

    file_url: str | None = Field(
        default=None,
        max_length=4096,
        description="http(s) URL of the media, instead of `file`. / 媒体文件的 http(s) 地址（与 file 二选一）。",
    )
    platform: str | None = Field(
        default=None,
        max_length=64,
        description="Free-form platform tag for filtering (e.g. `tiktok`). / 平台标签，便于筛选。",
    )

    @field_validator("file_url")
    @classmethod
    def _file_url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("platform", mode="before")
    @classmethod
    def _blank_platform(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def task_spec(self, options: DecodeOptions | None = None) -> TaskSpec:
        return replace(super().task_spec(options), platform=self.platform)
