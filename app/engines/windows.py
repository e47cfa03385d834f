"""Split long audio into windows so memory stays bounded, cutting in silence.

Whisper's feature extraction works on the whole input at once (several hundred bytes of
intermediate data per audio sample), so a long file is decoded window by window. Cuts fall
in the quietest stretch near each window boundary, or between speech regions when VAD or
``clip_timestamps`` give them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.engines.base import SAMPLE_RATE
from app.engines.vad import Region, format_clip_timestamps

FRAME = SAMPLE_RATE // 10  # 100 ms energy frames


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    clips: list[Region] | None = None
    """Regions to decode inside the window, in seconds relative to ``start``; ``None`` decodes it all."""

    def clip_timestamps(self) -> str:
        if self.clips is None:
            return "0"
        return format_clip_timestamps(self.clips)


def _quietest_cut(audio: npt.NDArray[np.float32], target: float, low: float, high: float) -> float:
    """The centre of the quietest 100 ms frame in [low, high] seconds, nearest ``target`` on ties."""
    first, last = int(low * SAMPLE_RATE) // FRAME, int(high * SAMPLE_RATE) // FRAME
    if last <= first:
        return target
    frames = audio[first * FRAME : last * FRAME].reshape(-1, FRAME)
    energy = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    distance = np.abs(np.arange(first, last) * FRAME / SAMPLE_RATE - target)
    best = int(np.lexsort((distance, np.round(energy, 4)))[0])
    return (first + best) * FRAME / SAMPLE_RATE + 0.05


def _cuts(audio: npt.NDArray[np.float32], start: float, end: float, window: float) -> list[float]:
    cuts = [start]
    slack = min(15.0, window / 4)
    while end - cuts[-1] > window:
        target = cuts[-1] + window - slack
        cuts.append(_quietest_cut(audio, target, target - slack, cuts[-1] + window))
    return [*cuts, end]


def plan_windows(audio: npt.NDArray[np.float32], regions: list[Region] | None, window: float) -> list[Window]:
    """Windows of at most ``window`` seconds covering the audio (or just ``regions``)."""
    duration = len(audio) / SAMPLE_RATE
    if regions is None:
        if duration <= window:
            return [Window(0.0, duration)]
        cuts = _cuts(audio, 0.0, duration, window)
        return [Window(a, b) for a, b in itertools.pairwise(cuts)]

    pieces: list[Region] = []
    for start, end in regions:  # split any region longer than a window at quiet points
        cuts = _cuts(audio, start, end, window)
        pieces.extend(itertools.pairwise(cuts))
    windows: list[Window] = []
    group: list[Region] = []
    for piece in pieces:
        if group and piece[1] - group[0][0] > window:
            windows.append(_window(group))
            group = []
        group.append(piece)
    if group:
        windows.append(_window(group))
    return windows


def _window(group: list[Region]) -> Window:
    start, end = group[0][0], group[-1][1]
    return Window(start, end, [(a - start, b - start) for a, b in group])
