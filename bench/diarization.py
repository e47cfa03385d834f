"""Diarization's cost on top of transcription, on a 10-minute file of four alternating speakers.

The file cycles the 4-speaker conversation of the tests (single-speaker clips of four people,
0.3-1 s apart) until it lasts ``--minutes``. In one process, one after the other:

1. transcription: ``WhisperModel.transcribe`` of the file (int8, ``--threads`` threads, beam 5,
   the service's defaults), segments consumed;
2. diarization: what a diarized task adds after that: decoding the file again with PyAV, Silero
   VAD, the speaker encoder over the speech windows, clustering, and the speaker labels put on the
   transcription's segments.

``--rounds`` alternates the two (T, D, D, T, ...) so machine noise hits both alike; the medians are
compared. Memory: the process's peak RSS growth over the diarization runs (torch and the encoder
loaded) against the peak after transcription. The last line is ``ratio diarization/transcription = X.XX``.

    python bench/diarization.py [--model base] [--minutes 10] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# This directory holds ``queue.py`` (the queue benchmark), which would shadow the standard
# library's ``queue`` that urllib3 imports: keep the directory on the path, after the stdlib.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402
from workload import DEFAULT_MODEL_DIR, resolve_model  # noqa: E402

from app.schemas.result import Segment, TranscriptionResult, Word  # noqa: E402
from app.schemas.task import DecodeOptions  # noqa: E402
from app.speakers.pipeline import diarize_file  # noqa: E402
from config.settings import DiarizationSettings  # noqa: E402
from tests.speaker_samples import CONVERSATIONS, Conversation, conversation  # noqa: E402


def long_file(minutes: float, directory: Path) -> tuple[Path, Conversation]:
    talk = conversation(CONVERSATIONS[4])
    gap = np.zeros(8000, dtype=np.float32)
    parts: list[np.ndarray] = []
    total = 0
    while total < minutes * 60 * 16000:
        parts.extend([talk.samples, gap])
        total += len(talk.samples) + len(gap)
    whole = Conversation(np.concatenate(parts)[: round(minutes * 60 * 16000)], [])
    return whole.write_wav(directory / "ten_minutes.wav"), whole


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """The highest resident set size seen every 20 ms while the block runs."""

    def __enter__(self) -> RssSampler:
        self.before = rss_mb()
        self.highest = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.highest = max(self.highest, rss_mb())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.highest = max(self.highest, rss_mb())


def transcribe(model: WhisperModel, path: Path) -> tuple[float, TranscriptionResult]:
    started = time.perf_counter()
    segments, info = model.transcribe(str(path), beam_size=5, language="en")
    decoded = [
        Segment(
            id=index,
            start=s.start,
            end=s.end,
            text=s.text,
            avg_logprob=s.avg_logprob,
            no_speech_prob=s.no_speech_prob,
            compression_ratio=s.compression_ratio,
            temperature=s.temperature or 0.0,
            words=[
                Word(start=w.start, end=w.end, word=w.word, probability=w.probability) for w in s.words or []
            ]
            or None,
        )
        for index, s in enumerate(segments)
    ]
    elapsed = time.perf_counter() - started
    text = "".join(s.text for s in decoded).strip()
    return elapsed, TranscriptionResult(text=text, language="en", duration=info.duration, segments=decoded)


def diarize(path: Path, result: TranscriptionResult) -> tuple[float, int, float, float]:
    """Seconds, speakers found, RSS before and highest RSS during."""
    with RssSampler() as memory:
        started = time.perf_counter()
        labelled = diarize_file(path, result, DecodeOptions(diarize=True), [], DiarizationSettings())
        elapsed = time.perf_counter() - started
    return elapsed, len(labelled.speakers or []), memory.before, memory.highest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="base")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = long_file(args.minutes, Path(tmp))
        model = WhisperModel(
            resolve_model(args.model, args.model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=args.threads,
        )
        transcription: list[float] = []
        diarization: list[float] = []
        result: TranscriptionResult | None = None
        rss_after_transcription = 0.0
        growth: list[float] = []
        for round_index in range(args.rounds):
            order = ("T", "D") if round_index % 2 == 0 else ("D", "T")
            for step in order:
                if step == "T" or result is None:
                    elapsed, result = transcribe(model, path)
                    transcription.append(elapsed)
                    rss_after_transcription = max(rss_after_transcription, peak_rss_mb())
                    print(f"transcription: {elapsed:.1f} s", flush=True)
                    if step == "T":
                        continue
                elapsed, speakers, before, highest = diarize(path, result)
                diarization.append(elapsed)
                growth.append(highest - before)
                print(
                    f"diarization: {elapsed:.1f} s, {speakers} speakers, RSS {before:.0f} -> {highest:.0f} MiB",
                    flush=True,
                )
        audio_seconds = args.minutes * 60
        t, d = statistics.median(transcription), statistics.median(diarization)
        print(f"audio {audio_seconds:.0f} s, model {args.model}, {args.threads} threads")
        print(f"transcription median {t:.1f} s ({audio_seconds / t:.1f}x real time)")
        print(f"diarization median {d:.1f} s ({audio_seconds / d:.1f}x real time)")
        print(
            f"peak RSS after transcription {rss_after_transcription:.0f} MiB, after diarization {peak_rss_mb():.0f} MiB"
        )
        print(f"ratio diarization/transcription = {d / t:.2f}")


if __name__ == "__main__":
    main()
