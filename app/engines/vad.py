"""Speech regions for VAD filtering, on the original timeline.

faster-whisper's own ``vad_filter`` glues the speech chunks together and decodes the glued
audio, so a segment can stretch across the silence between two chunks and its start can be
seconds away from where the speech begins. Here the regions found by the same Silero VAD are
decoded as ``clip_timestamps`` instead: silence is skipped and timestamps stay exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper.vad import VadOptions, get_speech_timestamps

from app.engines.base import SAMPLE_RATE

Region = tuple[float, float]
PIECE_SECONDS = 60.0
"""With a ``pause`` hook, longer audio is searched in pieces this long (the VAD state starts
afresh at each), and ``pause`` is called before each piece: a point where a long file's
preparation gives way to a short task's."""


def parse_clip_timestamps(clip_timestamps: str | None, duration: float) -> list[Region] | None:
    """``"0,10,20,30"`` → ``[(0, 10), (20, 30)]``; an odd count runs to the end. ``None`` when unset."""
    if not clip_timestamps:
        return None
    values = [float(v) for v in clip_timestamps.split(",")]
    if len(values) % 2:
        values.append(duration)
    regions = [(values[i], min(values[i + 1], duration)) for i in range(0, len(values), 2)]
    return [(start, end) for start, end in regions if end > start]


def format_clip_timestamps(regions: list[Region]) -> str:
    """``[(0, 10), (20, 30)]`` → ``"0.000,10.000,20.000,30.000"`` (the inverse of the parser)."""
    return ",".join(f"{start:.3f},{end:.3f}" for start, end in regions)


def speech_regions(
    audio: npt.NDArray[np.float32],
    within: list[Region] | None = None,
    options: VadOptions | None = None,
    pause: Callable[[], None] | None = None,
) -> list[Region]:
    """Speech regions of ``audio``, intersected with ``within`` when given."""
    duration = len(audio) / SAMPLE_RATE
    allowed = within or [(0.0, duration)]
    regions: list[Region] = []
    for chunk in _speech_timestamps(audio, options or VadOptions(), pause):
        start, end = chunk["start"] / SAMPLE_RATE, chunk["end"] / SAMPLE_RATE
        for low, high in allowed:
            clip_start, clip_end = max(start, low), min(end, high)
            if clip_end - clip_start > 0.05:
                regions.append((clip_start, clip_end))
    return regions


def _speech_timestamps(
    audio: npt.NDArray[np.float32], options: VadOptions, pause: Callable[[], None] | None
) -> list[dict[str, Any]]:
    """Silero's speech stretches in samples: in one pass, or with ``pause`` in pieces of
    ``PIECE_SECONDS`` (a stretch over a piece's end becomes two touching ones, which the
    chunking merges again)."""
    piece = int(PIECE_SECONDS * SAMPLE_RATE)
    if pause is None or len(audio) <= piece:
        found: list[dict[str, Any]] = get_speech_timestamps(audio, options)
        return found
    found = []
    for offset in range(0, len(audio), piece):
        pause()
        for stretch in get_speech_timestamps(audio[offset : offset + piece], options):
            found.append({"start": stretch["start"] + offset, "end": stretch["end"] + offset})
    return found


PAUSE_FRAME = SAMPLE_RATE * 30 // 1000
"""30 ms energy frames for ``find_pauses``."""
CUT_LEAD_SECONDS = 0.5
"""A cut lies this long before the speech after a pause (or in the pause's middle, if shorter)."""


MEETING_PAUSE_SECONDS = 0.2
"""Shortest pause where two overlapping streams of one task meet (``find_pauses``)."""


@dataclass(frozen=True, eq=False)
class Pauses:
    """Where a long file may be cut into streams and where two overlapping streams may meet, in
    seconds, and where it is louder than its pauses (``find_pauses``)."""

    cuts: list[float]
    meetings: list[float]
    loud: npt.NDArray[np.bool_]
    """Per ``PAUSE_FRAME`` of audio, whether it is above the pauses' energy gate: speech, or a
    sound, that a transcript should account for (``longform.Stream.loud``)."""


def find_pauses(
    audio: npt.NDArray[np.float32],
    min_cut_pause: float = 1.0,
    min_meeting_pause: float = MEETING_PAUSE_SECONDS,
) -> Pauses:
    """Pauses in ``audio``: stretches whose energy stays near the recording's noise floor (below
    a fifth of the way, in dB, from its 5th to its 95th percentile frame).

    * **cuts**, in every pause of at least ``min_cut_pause`` seconds, shortly before the speech
      that follows. Not in the pause's middle: a window that starts with seconds of silence
      makes Whisper skip speech more often (tiny.en jumped over three clips after 4.7 s of
      silence);
    * **meetings**, the middle of every pause of at least ``min_meeting_pause`` seconds: where
      the words of one stream end and the next one's begin (``Stream.split``);
    * **loud**, every frame above the gate.

    An energy gate, not Silero: Silero took 10 s on a 10-minute file (a sixth of the time tiny.en
    takes to transcribe it), and a second of quiet is never inside a word."""
    count = len(audio) // PAUSE_FRAME
    if count == 0:
        return Pauses([], [], np.zeros(0, dtype=bool))
    frames = audio[: count * PAUSE_FRAME].reshape(count, PAUSE_FRAME)
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / PAUSE_FRAME
    level = 10 * np.log10(power + 1e-10)
    floor, loud = np.percentile(level, 5), np.percentile(level, 95)
    quiet = level < floor + (loud - floor) / 5
    frame_seconds = PAUSE_FRAME / SAMPLE_RATE
    found = Pauses([], [], ~quiet)
    start: int | None = None
    for number, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and start is None:
            start = number
        elif not is_quiet and start is not None:
            begin, end = start * frame_seconds, number * frame_seconds
            if start > 0 and number < count:
                if end - begin >= min_cut_pause:
                    found.cuts.append(max((begin + end) / 2, end - CUT_LEAD_SECONDS))
                if end - begin >= min_meeting_pause:
                    found.meetings.append((begin + end) / 2)
            start = None
    return found
