"""Long audio built at run time from the shared English clips, with where every clip lies.

Used by the "nothing lost" tests and by ``bench/throughput.py``: clips in shuffled passes, a
gap of 0.25–1.5 s after each, and a longer pause (3–6 s) every ``pause_every`` clips.
"""

from __future__ import annotations

import csv
import random
import re
import wave
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
SAMPLE_RATE = 16000
DUPLICATES = ("jfk.wav", "jfk.mp3")
"""Same speech as jfk.flac."""


@dataclass(frozen=True)
class PlacedClip:
    file: str
    start: float
    end: float
    reference: str


@dataclass(frozen=True)
class LongAudio:
    samples: npt.NDArray[np.float32]
    clips: list[PlacedClip]

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def reference(self) -> str:
        return " ".join(clip.reference for clip in self.clips)

    def write_wav(self, path: Path) -> Path:
        pcm = (np.clip(self.samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(pcm.tobytes())
        return path


def english_clips() -> dict[str, tuple[npt.NDArray[np.float32], str]]:
    """file -> (16 kHz samples, reference) of every plain English shared clip."""
    from faster_whisper.audio import decode_audio

    with (AUDIO_DIR / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row["language"] == "en"]
    return {
        row["file"]: (
            decode_audio(str(AUDIO_DIR / row["file"]), sampling_rate=SAMPLE_RATE),
            row["reference_transcript"],
        )
        for row in rows
        if row["file"] not in DUPLICATES
    }


def build_long_audio(
    seconds: float,
    seed: int,
    *,
    gaps: tuple[float, float] = (0.25, 1.5),
    pause_every: int = 8,
    pauses: tuple[float, float] = (3.0, 6.0),
    clips: dict[str, tuple[npt.NDArray[np.float32], str]] | None = None,
) -> LongAudio:
    """About ``seconds`` of English speech: passes over the clips in one shuffled order, a random gap in
    ``gaps`` after each and a pause in ``pauses`` after every ``pause_every``-th clip."""
    source = clips if clips is not None else english_clips()
    rng = random.Random(seed)
    pieces: list[npt.NDArray[np.float32]] = []
    placed: list[PlacedClip] = []
    cursor = 0
    order = sorted(source)
    rng.shuffle(order)
    while cursor < seconds * SAMPLE_RATE:
        # The same order in every pass, so that a clip comes back only after all the others:
        # Whisper, prompted with a sentence it has just written, tends to skip it when the audio
        # says it again at once (a synthetic-audio artefact that real speech rarely has).
        for name in order:
            audio, reference = source[name]
            placed.append(
                PlacedClip(name, cursor / SAMPLE_RATE, (cursor + len(audio)) / SAMPLE_RATE, reference)
            )
            low, high = pauses if len(placed) % pause_every == 0 else gaps
            silence = np.zeros(int(rng.uniform(low, high) * SAMPLE_RATE), dtype=np.float32)
            pieces.extend((audio, silence))
            cursor += len(audio) + len(silence)
            if cursor >= seconds * SAMPLE_RATE:
                break
    return LongAudio(np.concatenate(pieces).astype(np.float32), placed)


def words(text: str) -> list[str]:
    """Whisper's English normalisation, split into words."""
    from whisper.normalizers import EnglishTextNormalizer

    return re.sub(r"\s+", " ", str(EnglishTextNormalizer()(text))).strip().split()


def loose_words(text: str) -> list[str]:
    """Each word normalised on its own (``one two three`` and ``1, 2, 3`` both give 1 2 3,
    where the whole-text normaliser would join the first into 123)."""
    from whisper.normalizers import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    return [word for token in text.split() for word in str(normalize(token)).split()]


def clip_recall(clip: PlacedClip, segments: Sequence[tuple[float, float, str]], margin: float = 1.0) -> float:
    """The share of ``clip``'s reference words found among the words of the segments (start,
    end, text) that overlap its time span (± ``margin`` seconds)."""
    reference = Counter(loose_words(clip.reference))
    heard = Counter(
        word
        for start, end, text in segments
        if end >= clip.start - margin and start <= clip.end + margin
        for word in loose_words(text)
    )
    total = sum(reference.values())
    return sum(min(count, heard[word]) for word, count in reference.items()) / total if total else 1.0


def recall_floors(
    library: WhisperModel, clips: dict[str, tuple[npt.NDArray[np.float32], str]]
) -> dict[str, float]:
    """Per clip, the recall a long file must reach for the clip to count as heard: 80 %, or less
    where the library itself, on the clip alone, recognises fewer of its words (tiny.en hears
    "four queen of clubs" as "for Queen of Clothes"), and all words but one in clips of up to
    four words (tiny.en hears "ten of clubs" as "ten of clothes" in some contexts): a
    recognition error is not speech lost."""
    found = {}
    for name, (samples, reference) in clips.items():
        segments, _info = library.transcribe(samples, beam_size=5)
        clip = PlacedClip(name, 0.0, len(samples) / 16000, reference)
        alone = clip_recall(clip, [(0.0, clip.end, "".join(segment.text for segment in segments))])
        count = len(loose_words(reference))
        found[name] = min(0.8, alone, (count - 1) / count if count <= 4 else 1.0)
    return found


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis))))


def assert_clips_heard(segments: Sequence[dict[str, Any]], offsets: Sequence[tuple[float, Any]]) -> None:
    """Every placed clip (offset, ``tests.conftest.Clip``) has half its words or more heard over
    its time span (tiny.en hears "four queen of clubs" as "for Queen of Clothes"). Whisper's
    long-form segments need not start where a clip starts: one may run on from the clip before."""
    spans = [(segment["start"], segment["end"], segment["text"]) for segment in segments]
    for offset, clip in offsets:
        placed = PlacedClip(clip.file, offset, offset + clip.duration, clip.reference)
        assert clip_recall(placed, spans) >= 0.5, (clip.file, offset, spans)


def concat_wav(sources: list[Path], target: Path, gap_seconds: float = 0.0) -> None:
    """Join WAV files of one format into ``target``, with ``gap_seconds`` of silence after each."""
    with wave.open(str(target), "wb") as out:
        params_set = False
        for source in sources:
            with wave.open(str(source), "rb") as clip:
                if not params_set:
                    out.setparams(clip.getparams())
                    params_set = True
                    silence = (
                        b"\x00"
                        * int(clip.getframerate() * gap_seconds)
                        * clip.getsampwidth()
                        * clip.getnchannels()
                    )
                out.writeframes(clip.readframes(clip.getnframes()))
                if gap_seconds:
                    out.writeframes(silence)
