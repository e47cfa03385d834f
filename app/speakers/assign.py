"""Put speaker labels on a transcription: every word and every segment gets one speaker.

A word takes the speaker whose turns overlap it most (the nearest turn when none does). A segment
with words is split wherever its words change speaker, so no segment holds two speakers; a segment
without words takes the speaker that overlaps it most.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.schemas.result import Segment, TranscriptionResult, Word
from app.speakers.diarizer import Turn


def speaker_at(turns: Sequence[Turn], start: float, end: float) -> str | None:
    """The speaker overlapping ``[start, end]`` most; else the nearest turn's; None without turns."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap.items(), key=lambda item: item[1])[0]
    middle = (start + end) / 2
    nearest = min(turns, key=lambda turn: max(turn.start - middle, middle - turn.end, 0.0))
    return nearest.speaker


def _split(segment: Segment, words: list[Word]) -> list[Segment]:
    """``segment`` cut into runs of words of one speaker."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [segment.model_copy(update={"words": words, "speaker": words[0].speaker})]
    return [
        segment.model_copy(
            update={
                "start": run[0].start,
                "end": run[-1].end,
                "text": "".join(word.word for word in run),
                "words": run,
                "speaker": run[0].speaker,
                "tokens": None,  # the tokens belong to the whole segment
            }
        )
        for run in runs
    ]


def label_speakers(result: TranscriptionResult, turns: Sequence[Turn]) -> TranscriptionResult:
    """``result`` with a speaker on each segment and word (segments split at speaker changes)."""
    labelled: list[Segment] = []
    for segment in result.segments:
        if segment.words:
            words = [
                word.model_copy(update={"speaker": speaker_at(turns, word.start, word.end)})
                for word in segment.words
            ]
            labelled.extend(_split(segment, words))
        else:
            labelled.append(
                segment.model_copy(update={"speaker": speaker_at(turns, segment.start, segment.end)})
            )
    for index, segment in enumerate(labelled):
        segment.id = index
    order: list[str] = []
    for segment in labelled:
        if segment.speaker is not None and segment.speaker not in order:
            order.append(segment.speaker)
    return result.model_copy(update={"segments": labelled, "speakers": order})
