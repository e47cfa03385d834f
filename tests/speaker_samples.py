"""Multi-speaker test recordings built from the shared single-speaker clips.

Each speaker's clips (trimmed to their speech by Silero VAD) alternate with the other speakers'
with 0.3-1 s of silence between turns; a clip used for two turns is split at its longest pause.
The reference turns are where each piece was placed.
"""

from __future__ import annotations

import itertools
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from faster_whisper.audio import decode_audio
from faster_whisper.vad import VadOptions

from app.engines.vad import speech_regions

SAMPLE_RATE = 16000
AUDIO_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "audio"

Floats = npt.NDArray[np.float32]
TIGHT = VadOptions(min_silence_duration_ms=100, speech_pad_ms=30)
"""Trims a clip to its speech with 30 ms to spare (the default pads 400 ms)."""

SPEAKER_CLIPS: dict[str, list[str]] = {
    "jfk": ["jfk.wav"],
    "librispeech_1089": ["1089-134686-0001.wav"],
    "librispeech_1221": ["1221-135766-0002.wav"],
    "austen_reader": [
        "sense_and_sensibility_01_austen_64kb-0880.wav",
        "sense_and_sensibility_01_austen_64kb-0930.wav",
    ],
    "ljspeech": ["LJ002-0020.wav", "LJ002-0035.wav"],
    "cards": [
        "pocketsphinx_cards_001.wav",
        "pocketsphinx_cards_002.wav",
        "pocketsphinx_cards_003.wav",
        "pocketsphinx_cards_004.wav",
    ],
}
"""Clips by speaker: each key is a different person (different datasets or speaker ids)."""

CONVERSATIONS: dict[int, list[str]] = {
    2: ["jfk", "librispeech_1221"],
    3: ["jfk", "librispeech_1089", "ljspeech"],
    4: ["jfk", "ljspeech", "librispeech_1221", "librispeech_1089"],
}
GAPS = (0.5, 0.8, 0.3, 1.0, 0.6, 0.4, 0.9, 0.7)
"""Silence between turns, in seconds, used in turn."""
ENROLMENT_CLIPS: dict[str, list[str]] = {
    "jfk": ["jfk.flac"],  # the 44.1 kHz stereo FLAC; the conversations use jfk.wav
    "librispeech_1089": ["1089-134686-0001.wav"],
    "cards": SPEAKER_CLIPS["cards"],
}
"""Voice samples (5-30 s) to enrol; ``cards`` is not in the 3-speaker conversation (a decoy)."""


@dataclass(frozen=True)
class ReferenceTurn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Conversation:
    samples: Floats
    turns: list[ReferenceTurn]

    @property
    def speakers(self) -> set[str]:
        return {turn.speaker for turn in self.turns}

    def write_wav(self, path: Path) -> Path:
        pcm = (np.clip(self.samples, -1.0, 1.0) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(pcm.tobytes())
        return path


def enrolment_wav(speaker: str, path: Path) -> Path:
    """A WAV of ``speaker``'s enrolment clips, 0.3 s of silence between them."""
    gap = np.zeros(round(0.3 * SAMPLE_RATE), dtype=np.float32)
    parts: list[Floats] = []
    for name in ENROLMENT_CLIPS[speaker]:
        parts.extend([decode_audio(str(AUDIO_DIR / name), sampling_rate=SAMPLE_RATE), gap])
    return Conversation(np.concatenate(parts[:-1]), []).write_wav(path)


def speech_of(name: str) -> Floats:
    """A clip at 16 kHz mono, trimmed to its first and last speech."""
    return trimmed(decode_audio(str(AUDIO_DIR / name), sampling_rate=SAMPLE_RATE))


def trimmed(samples: Floats) -> Floats:
    """``samples`` from their first speech to their last."""
    regions = speech_regions(samples, options=TIGHT)
    if not regions:
        return samples
    first, last = round(regions[0][0] * SAMPLE_RATE), round(regions[-1][1] * SAMPLE_RATE)
    return samples[first:last]


def split_at_pause(samples: Floats) -> list[Floats]:
    """Two pieces, cut in the middle of the longest pause (else in the middle)."""
    regions = speech_regions(samples, options=TIGHT)
    pauses = [(b[0] - a[1], (a[1] + b[0]) / 2) for a, b in itertools.pairwise(regions)]
    cut = round((max(pauses)[1] if pauses else len(samples) / SAMPLE_RATE / 2) * SAMPLE_RATE)
    return [trimmed(samples[:cut]), trimmed(samples[cut:])]


def pieces_of(speaker: str) -> list[Floats]:
    """At least two turns' worth of a speaker's speech."""
    clips = [speech_of(name) for name in SPEAKER_CLIPS[speaker]]
    if len(clips) >= 2:
        return clips
    return split_at_pause(clips[0])


def conversation(speakers: list[str]) -> Conversation:
    """Round-robin turns of ``speakers``, each at least twice, separated by silence."""
    pieces = {speaker: pieces_of(speaker) for speaker in speakers}
    rounds = max(len(items) for items in pieces.values())
    parts: list[Floats] = []
    turns: list[ReferenceTurn] = []
    position = 0
    gaps = iter(GAPS * 10)
    for index in range(rounds):
        for speaker in speakers:
            if index >= len(pieces[speaker]):
                continue
            if parts:
                gap = np.zeros(round(next(gaps) * SAMPLE_RATE), dtype=np.float32)
                parts.append(gap)
                position += len(gap)
            piece = pieces[speaker][index]
            parts.append(piece)
            turns.append(
                ReferenceTurn(position / SAMPLE_RATE, (position + len(piece)) / SAMPLE_RATE, speaker)
            )
            position += len(piece)
    return Conversation(np.concatenate(parts).astype(np.float32), turns)
