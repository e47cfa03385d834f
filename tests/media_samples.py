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
