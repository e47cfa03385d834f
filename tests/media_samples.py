"""Small media files that tests build from the shared speech clips with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def encode_mp4(source: Path, dest: Path, *, fps: int = 5, size: int = 16) -> Path:
    """Re-encode ``source``'s audio as AAC beside a tiny H.264 video stream in an MP4."""
    with av.open(str(source)) as inp, av.open(str(dest), mode="w", format="mp4") as out:
        audio_in = inp.streams.audio[0]
        rate = audio_in.codec_context.sample_rate
        audio = out.add_stream("aac", rate=rate, layout="mono")
        video = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate, frame_size=1024)
        samples = 0
        for frame in inp.decode(audio_in):
            for chunk in resampler.resample(frame):
                chunk.pts, chunk.time_base = samples, Fraction(1, rate)
                samples += chunk.samples
                out.mux(audio.encode(chunk))
        for chunk in resampler.resample(None):
            chunk.pts, chunk.time_base = samples, Fraction(1, rate)
            samples += chunk.samples
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
        pixels = np.zeros((size, size, 3), dtype=np.uint8)
        for index in range(int(samples / rate * fps) + 1):
            pixels[:] = (index * 7) % 256
            picture = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            picture.pts = index
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
    return dest


def silent_flac(
    dest: Path, seconds: float, *, rate: int = 8000, declared_seconds: float | None = None
) -> Path:
    """``seconds`` of digital silence as FLAC: a long duration in a small file (4.5 h at 8 kHz is
    35 KiB). ``declared_seconds`` rewrites the STREAMINFO sample count, so the header lies."""
    frame_samples = 65535  # FLAC's largest block: the least framing per second of silence
    zeros = np.zeros((1, frame_samples), dtype=np.int16)
    with av.open(str(dest), mode="w", format="flac") as out:
        stream = out.add_stream(
            "flac", rate=rate, layout="mono", format="s16", options={"frame_size": str(frame_samples)}
        )
        total = int(seconds * rate)
        written = 0
        while written < total:
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, written, Fraction(1, rate)
            out.mux(stream.encode(frame))
            written += frame_samples
        out.mux(stream.encode(None))
    if declared_seconds is not None:
        data = bytearray(dest.read_bytes())
        # "fLaC", a 4-byte block header, then STREAMINFO; its bytes 10..17 end with the 36-bit count.
        assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
        packed = int.from_bytes(data[18:26], "big")
        count_mask = (1 << 36) - 1
        packed = (packed & ~count_mask) | int(declared_seconds * rate)
        data[18:26] = packed.to_bytes(8, "big")
        dest.write_bytes(data)
    return dest
