"""The transcription result shape shared by every engine, the API and subtitles."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Word(BaseModel):
    """One word with its timing. / 一个词及其时间。"""

    start: float = Field(description="Start time in seconds. / 开始时间（秒）。")
    end: float = Field(description="End time in seconds. / 结束时间（秒）。")
    word: str = Field(description="The word, with its leading space if any. / 词文本（可能带前导空格）。")
    probability: float = Field(description="Word probability. / 词的概率。")
    speaker: str | None = Field(
        default=None,
        description="Speaker label (`A`, `B`, … or an enrolled name) when diarized. / 说话人标签（开启说话人分离时）。",
    )


class Segment(BaseModel):
    """One decoded segment. / 一个解码片段。"""

    id: int = Field(description="Segment index, from 0. / 片段序号，从 0 开始。")
    start: float = Field(description="Start time in seconds. / 开始时间（秒）。")
    end: float = Field(description="End time in seconds. / 结束时间（秒）。")
    text: str = Field(description="Segment text. / 片段文本。")
    avg_logprob: float = Field(description="Average token log probability. / 平均对数概率。")
    no_speech_prob: float = Field(description="Probability that the segment is silence. / 无语音概率。")
    compression_ratio: float = Field(description="Text gzip compression ratio. / 文本压缩比。")
    temperature: float = Field(description="Temperature the segment was decoded at. / 解码所用温度。")
    seek: int | None = Field(
        default=None,
        description="Offset of the decoding window in 10 ms frames. / 解码窗口的起点（10 毫秒帧）。",
    )
    tokens: list[int] | None = Field(default=None, description="Token ids of the text. / 文本的 token ID。")
    words: list[Word] | None = Field(
        default=None, description="Word timings when requested. / 请求时返回的词级时间戳。"
    )
    emotion: str | None = Field(
        default=None,
        description="SenseVoice: the speaker's emotion tag (`HAPPY`, `NEUTRAL`, ...). / SenseVoice：情感标签。",
    )
    event: str | None = Field(
        default=None,
        description="SenseVoice: the audio event tag (`Speech`, `BGM`, `Laughter`, ...). / SenseVoice：音频事件标签。",
    )
    speaker: str | None = Field(
        default=None,
        description="Speaker label (`A`, `B`, … or an enrolled name) when diarized. / 说话人标签（开启说话人分离时）。",
    )


class TranscriptionResult(BaseModel):
    """A finished transcription. / 转录结果。"""

    text: str = Field(description="Full text. / 全文。")
    language: str | None = Field(description="Detected or given language. / 检测到或指定的语言。")
    language_probability: float | None = Field(
        default=None, description="Language detection probability. / 语言检测概率。"
    )
    duration: float = Field(description="Audio duration in seconds. / 音频时长（秒）。")
    segments: list[Segment] = Field(description="Decoded segments. / 片段列表。")
    speakers: list[str] | None = Field(
        default=None,
        description="Speaker labels in order of first appearance, when diarized. / 说话人标签（按首次出现顺序，开启说话人分离时）。",
    )
