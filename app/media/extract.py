"""Extract the audio of a video (or audio) file as WAV, MP3, FLAC or Opus with PyAV.

``extract_audio`` is a plain blocking function (run it in a thread); the routes and any
legacy adapter call it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import av
import av.error

from app.media.probe import MediaTooLongError, NotMediaError


class AudioFormat(StrEnum):
    """Output format. / 输出格式。"""

    wav = "wav"
    mp3 = "mp3"
    flac = "flac"
    opus = "opus"


class ExtractOptionsError(ValueError):
    """An impossible combination of format, sample rate, channels and bit depth."""


class ExtractTooLargeError(Exception):
    """The extracted audio would exceed the output size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the extracted audio exceeds the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on one extraction; ``None`` means no cap."""

    max_seconds: float | None = None
    """Stop with ``MediaTooLongError`` once more audio than this has been written."""
    max_bytes: int | None = None
    """Stop with ``ExtractTooLargeError`` once the encoded output passes this size."""


@dataclass(frozen=True)
class _Spec:
    container: str
    media_type: str
    extension: str
    codecs: dict[int | None, tuple[str, str]]
    """bit depth (None for lossy formats) -> (encoder, sample format)"""
    sample_rates: frozenset[int] | None
    """Allowed rates; None: any rate in [MIN_RATE, MAX_RATE]."""


MIN_RATE = 8000
MAX_RATE = 192000
MAX_CHANNELS = 2
_LAYOUTS = {1: "mono", 2: "stereo"}
_MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
_OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})

_SPECS: dict[AudioFormat, _Spec] = {
    AudioFormat.wav: _Spec(
        "wav",
        "audio/wav",
        "wav",
        {16: ("pcm_s16le", "s16"), 24: ("pcm_s24le", "s32"), 32: ("pcm_s32le", "s32")},
        None,
    ),
    # FFmpeg writes 24-bit FLAC from 32-bit samples; 32-bit FLAC is still experimental there.
    AudioFormat.flac: _Spec("flac", "audio/flac", "flac", {16: ("flac", "s16"), 24: ("flac", "s32")}, None),
    AudioFormat.mp3: _Spec("mp3", "audio/mpeg", "mp3", {None: ("libmp3lame", "fltp")}, _MP3_RATES),
    AudioFormat.opus: _Spec("ogg", "audio/ogg", "opus", {None: ("libopus", "flt")}, _OPUS_RATES),
}


@dataclass(frozen=True)
class ExtractOptions:
    format: AudioFormat = AudioFormat.wav
    sample_rate: int = 16000
    channels: int = 1
    bit_depth: int | None = None
    """16, 24 or 32 for WAV; 16 or 24 for FLAC (default 16); must stay empty for MP3 and Opus."""

    def validated(self) -> ExtractOptions:
        """These options with the default bit depth filled in; ``ExtractOptionsError`` if impossible."""
        spec = _SPECS[self.format]
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise ExtractOptionsError(f"channels must be 1 or 2, not {self.channels}")
        if spec.sample_rates is not None:
            if self.sample_rate not in spec.sample_rates:
                rates = ", ".join(str(rate) for rate in sorted(spec.sample_rates))
                raise ExtractOptionsError(
                    f"{self.format.value} supports the sample rates {rates}, not {self.sample_rate}"
                )
        elif not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ExtractOptionsError(
                f"sample_rate must lie in [{MIN_RATE}, {MAX_RATE}], not {self.sample_rate}"
            )
        if None in spec.codecs:
            if self.bit_depth is not None:
                raise ExtractOptionsError(
                    f"bit_depth applies to wav and flac only; {self.format.value} is lossy"
                )
            return self
        depths = sorted(depth for depth in spec.codecs if depth is not None)
        bit_depth = self.bit_depth if self.bit_depth is not None else depths[0]
        if bit_depth not in spec.codecs:
            raise ExtractOptionsError(
                f"{self.format.value} supports the bit depths {', '.join(map(str, depths))}, not {bit_depth}"
            )
        return ExtractOptions(self.format, self.sample_rate, self.channels, bit_depth)

    @property
    def media_type(self) -> str:
        return _SPECS[self.format].media_type

    @property
    def extension(self) -> str:
        return _SPECS[self.format].extension


@dataclass(frozen=True)
class ExtractedAudio:
    path: Path
    options: ExtractOptions
    """The options used (bit depth filled in)."""
    duration: float
    """Seconds of audio written."""
    size: int


def extract_audio(
    source: Path, dest: Path, options: ExtractOptions, limits: ExtractLimits | None = None
) -> ExtractedAudio:
    """Decode the first audio stream of ``source``, resample it and encode it into ``dest``.

    Raises ``NotMediaError`` when ``source`` holds no decodable audio and ``ExtractOptionsError``
    for impossible options; ``MediaTooLongError`` or ``ExtractTooLargeError`` as soon as the output
    passes ``limits`` (nothing more is decoded). ``dest`` is removed on failure. Blocking; run it
    in a thread.
    """
    options = options.validated()
    spec = _SPECS[options.format]
    encoder, sample_format = spec.codecs[options.bit_depth]
    rate = options.sample_rate
    written = 0
    output = _Output(rate, limits or ExtractLimits())
    try:
        with av.open(str(source), mode="r", metadata_errors="ignore") as inp:
            if not inp.streams.audio:
                raise NotMediaError("the file has no audio stream")
            audio_in = inp.streams.audio[0]
            with av.open(str(dest), mode="w", format=spec.container) as out:
                stream = out.add_stream(
                    encoder, rate=rate, layout=_LAYOUTS[options.channels], format=sample_format
                )
                stream.codec_context.open()
                resampler = av.AudioResampler(
                    format=sample_format,
                    layout=_LAYOUTS[options.channels],
                    rate=rate,
                    frame_size=stream.codec_context.frame_size or None,
                )
                decoded = False
                for frame in inp.decode(audio_in):
                    decoded = True
                    frame.pts = None
                    for chunk in resampler.resample(frame):
                        written = output.encode(out, stream, chunk, written)
                if not decoded:
                    raise NotMediaError("the audio stream holds no decodable frame")
                for chunk in resampler.resample(None):
                    written = output.encode(out, stream, chunk, written)
                output.mux(out, stream.encode(None))
    except (NotMediaError, MediaTooLongError, ExtractTooLargeError):
        dest.unlink(missing_ok=True)
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, IndexError) as exc:
        dest.unlink(missing_ok=True)
        raise NotMediaError(f"not a decodable media file: {exc}") from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return ExtractedAudio(path=dest, options=options, duration=written / rate, size=dest.stat().st_size)


class _Output:
    """Encodes resampled chunks into the output and enforces the extraction's limits."""

    def __init__(self, rate: int, limits: ExtractLimits) -> None:
        self._rate = rate
        self._max_samples = int(limits.max_seconds * rate) if limits.max_seconds else None
        self._max_seconds = limits.max_seconds
        self._max_bytes = limits.max_bytes
        self._bytes = 0

    def encode(
        self,
        out: av.container.OutputContainer,
        stream: av.audio.stream.AudioStream,
        chunk: av.AudioFrame,
        written: int,
    ) -> int:
        chunk.pts = written
        chunk.time_base = Fraction(1, self._rate)
        self.mux(out, stream.encode(chunk))
        written += int(chunk.samples)
        if self._max_samples is not None and written > self._max_samples:
            assert self._max_seconds is not None
            raise MediaTooLongError(self._max_seconds)
        return written

    def mux(self, out: av.container.OutputContainer, packets: list[av.Packet]) -> None:
        self._bytes += sum(packet.size for packet in packets)
        if self._max_bytes is not None and self._bytes > self._max_bytes:
            raise ExtractTooLargeError(self._max_bytes)
        out.mux(packets)
