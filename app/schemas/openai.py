"""Response shapes of the OpenAI-compatible API (``/v1``), as OpenAI's SDKs read them."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class OpenAIResponseFormat(StrEnum):
    """``response_format`` of ``/v1/audio/*``. / 返回格式。"""

    json = "json"
    text = "text"
    srt = "srt"
    vtt = "vtt"
    verbose_json = "verbose_json"
    diarized_json = "diarized_json"


class TimestampGranularity(StrEnum):
    """Timestamp detail of ``verbose_json``. / 时间戳粒度。"""

    word = "word"
    segment = "segment"


class OpenAITranscription(BaseModel):
    """``json`` format. / json 格式。"""

    text: str = Field(description="Full text. / 全文。")


class OpenAIWord(BaseModel):
    """One word with its timing. / 一个词及其时间。"""

    word: str = Field(description="The word. / 词。")
    start: float = Field(description="Start in seconds. / 开始时间（秒）。")
    end: float = Field(description="End in seconds. / 结束时间（秒）。")


class OpenAISegment(BaseModel):
    """One segment of ``verbose_json``. / verbose_json 的一个片段。"""

    id: int = Field(description="Segment index. / 片段序号。")
    seek: int = Field(description="Window offset in 10 ms frames. / 窗口起点（10 毫秒帧）。")
    start: float = Field(description="Start in seconds. / 开始时间（秒）。")
    end: float = Field(description="End in seconds. / 结束时间（秒）。")
    text: str = Field(description="Segment text. / 片段文本。")
    tokens: list[int] = Field(description="Token ids. / token ID。")
    temperature: float = Field(description="Decoding temperature. / 解码温度。")
    avg_logprob: float = Field(description="Average log probability. / 平均对数概率。")
    compression_ratio: float = Field(description="Gzip compression ratio. / 压缩比。")
    no_speech_prob: float = Field(description="Probability of silence. / 无语音概率。")
    speaker: str | None = Field(
        default=None, description="Speaker label when diarized. / 说话人标签（开启说话人分离时）。"
    )


class OpenAIVerboseTranscription(BaseModel):
    """``verbose_json`` format. / verbose_json 格式。"""

    task: Literal["transcribe", "translate"] = Field(description="What was done. / 任务类型。")
    language: str = Field(description="Language name, e.g. `english`. / 语言名称。")
    duration: float = Field(description="Audio seconds. / 音频时长（秒）。")
    text: str = Field(description="Full text. / 全文。")
    segments: list[OpenAISegment] | None = Field(
        default=None, description="Segments (segment granularity). / 片段（片段粒度）。"
    )
    words: list[OpenAIWord] | None = Field(
        default=None, description="Words (word granularity). / 词（词粒度）。"
    )


class OpenAIDiarizedSegment(BaseModel):
    """One segment of ``diarized_json``. / diarized_json 的一个片段。"""

    type: Literal["transcript.text.segment"] = Field(
        default="transcript.text.segment", description="Always `transcript.text.segment`. / 固定值。"
    )
    id: str = Field(description="Segment id, e.g. `seg_0`. / 片段 ID。")
    start: float = Field(description="Start in seconds. / 开始时间（秒）。")
    end: float = Field(description="End in seconds. / 结束时间（秒）。")
    text: str = Field(description="Segment text. / 片段文本。")
    speaker: str = Field(
        description="`A`, `B`, … or a known speaker's name. / 说话人：A、B…或已知说话人的名字。"
    )


class OpenAIDurationUsage(BaseModel):
    """Usage billed by audio length. / 按音频时长计的用量。"""

    type: Literal["duration"] = Field(default="duration", description="Always `duration`. / 固定值。")
    seconds: float = Field(description="Audio seconds. / 音频时长（秒）。")


class OpenAIDiarizedTranscription(BaseModel):
    """``diarized_json`` format (OpenAI's `TranscriptionDiarized`). / diarized_json 格式。"""

    task: Literal["transcribe"] = Field(default="transcribe", description="Always `transcribe`. / 固定值。")
    duration: float = Field(description="Audio seconds. / 音频时长（秒）。")
    text: str = Field(description="Full text. / 全文。")
    segments: list[OpenAIDiarizedSegment] = Field(description="Segments with speakers. / 带说话人的片段。")
    usage: OpenAIDurationUsage = Field(description="Usage. / 用量。")


class OpenAIModel(BaseModel):
    """One model. / 一个模型。"""

    id: str = Field(description="Model id. / 模型 ID。")
    object: Literal["model"] = Field(default="model", description="Always `model`. / 固定为 model。")
    created: int = Field(description="Unix time (0: unknown). / 创建时间（Unix 秒，0 表示未知）。")
    owned_by: str = Field(description="Owner. / 所有者。")


class OpenAIModelList(BaseModel):
    """Models in OpenAI's list shape. / OpenAI 列表格式的模型列表。"""

    object: Literal["list"] = Field(default="list", description="Always `list`. / 固定为 list。")
    data: list[OpenAIModel] = Field(description="Models. / 模型。")
