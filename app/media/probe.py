"""Content probing with PyAV: is this really audio/video, and how long is it?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import av.error


class NotMediaError(ValueError):
    """The file holds no decodable audio."""


class MediaTooLongError(Exception):
    """The media lasts longer than the configured limit (declared by its container, or found while
    decoding it: a header may lie)."""

    def __init__(self, limit: float, duration: float | None = None) -> None:
        found = f" ({duration:.0f} s)" if duration is not None else ""
        super().__init__(f"the media is longer than the limit of {limit:g} s{found}")
        self.limit = limit
        self.duration = duration


def check_duration(seconds: float, max_seconds: float | None) -> None:
    """Raise :class:`MediaTooLongError` when ``seconds`` exceeds ``max_seconds`` (``None`` or 0: no limit)."""
    if max_seconds and seconds > max_seconds:
        raise MediaTooLongError(max_seconds, seconds)


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    format_name: str
    codec: str
    sample_rate: int
    channels: int


def probe_media(path: Path, max_seconds: float | None = None) -> MediaInfo:
    """Open ``path`` with FFmpeg (PyAV) and describe its first audio stream.

    The decision never looks at the file name: a text file called ``.mp3`` is rejected
    because FFmpeg cannot find an audio stream in it or cannot decode one frame.
    ``MediaTooLongError`` when the container declares more than ``max_seconds`` (or, when it
    declares nothing, as soon as counting the decoded samples passes it).
    Blocking; run it in a thread.
    """
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise NotMediaError("the file has no audio stream")
            stream = container.streams.audio[0]
            duration = _duration(container, stream)
            if duration is None:
                duration = _decode_duration(container, stream, max_seconds)
            else:
                check_duration(duration, max_seconds)
                _require_one_frame(container, stream)
            return MediaInfo(
                duration=round(duration, 3),
                format_name=container.format.name,
                codec=stream.codec_context.name,
                sample_rate=int(stream.codec_context.sample_rate or 0),
                channels=int(stream.codec_context.channels or 0),
            )
    except (NotMediaError, MediaTooLongError):
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise NotMediaError(f"not a decodable media file: {exc}") from exc


def _duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return None


def _require_one_frame(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> None:
    for _frame in container.decode(stream):
        return
    raise NotMediaError("the audio stream holds no decodable frame")


def _decode_duration(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    max_seconds: float | None,
) -> float:
    samples = 0
    rate = 0
    for frame in container.decode(stream):
        samples += frame.samples
        rate = frame.sample_rate
        if max_seconds and rate and samples > max_seconds * rate:
            raise MediaTooLongError(max_seconds)
    if not samples or not rate:
        raise NotMediaError("the audio stream holds no decodable frame")
    return samples / rate
