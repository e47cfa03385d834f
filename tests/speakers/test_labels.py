"""Speaker labels on results: words by overlap, segments split at speaker changes, and every
output format shows the speaker with no cue holding two."""

from __future__ import annotations

import srt
import webvtt

from app.schemas.result import Segment, TranscriptionResult, Word
from app.services.subtitles import SubtitleFormat, render_subtitles
from app.speakers.assign import label_speakers, speaker_at
from app.speakers.diarizer import Turn

TURNS = [Turn(0.0, 2.0, "A"), Turn(2.4, 4.0, "B"), Turn(4.5, 6.0, "A")]


def segment(index: int, start: float, end: float, words: list[tuple[str, float, float]] | None) -> Segment:
    return Segment(
        id=index,
        start=start,
        end=end,
        text="".join(word for word, _, _ in words) if words else " hello there",
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        temperature=0.0,
        tokens=[1, 2, 3],
        words=[Word(word=w, start=s, end=e, probability=0.9) for w, s, e in words] if words else None,
    )


def result(segments: list[Segment]) -> TranscriptionResult:
    return TranscriptionResult(
        text="".join(s.text for s in segments).strip(), language="en", duration=6.0, segments=segments
    )


def test_majority_overlap_and_nearest_turn() -> None:
    assert speaker_at(TURNS, 1.5, 2.6) == "A"  # 0.5 s of A, 0.2 s of B
    assert speaker_at(TURNS, 1.9, 3.0) == "B"
    assert speaker_at(TURNS, 4.1, 4.3) == "B"  # in a pause: the nearest turn
    assert speaker_at([], 0.0, 1.0) is None


def test_a_segment_straddling_a_change_is_split_at_its_words() -> None:
    words = [(" Hello", 1.0, 1.5), (" there.", 1.5, 1.9), (" Hi", 2.5, 2.8), (" you.", 2.8, 3.2)]
    labelled = label_speakers(result([segment(0, 1.0, 3.2, words), segment(1, 4.6, 5.5, None)]), TURNS)
    assert [(s.id, s.speaker, s.text, s.start, s.end) for s in labelled.segments] == [
        (0, "A", " Hello there.", 1.0, 1.9),
        (1, "B", " Hi you.", 2.5, 3.2),
        (2, "A", " hello there", 4.6, 5.5),
    ]
    assert all(w.speaker == s.speaker for s in labelled.segments for w in s.words or [])
    assert labelled.segments[0].tokens is None, "a piece of a split segment has no tokens of its own"
    assert labelled.segments[2].tokens == [1, 2, 3]
    assert labelled.speakers == ["A", "B"]


def test_outputs_carry_the_speaker_and_no_cue_holds_two() -> None:
    # Two short segments of different speakers would join into one cue without diarization.
    segments = [
        segment(0, 0.5, 1.5, [(" Yes.", 0.5, 1.5)]),
        segment(1, 2.5, 3.2, [(" No.", 2.5, 3.2)]),
        segment(2, 3.3, 3.9, [(" Maybe.", 3.3, 3.9)]),
    ]
    plain = render_subtitles(result(segments), SubtitleFormat.SRT)
    assert len(list(srt.parse(plain))) == 1, "without speakers the close segments share a cue"

    labelled = label_speakers(result(segments), TURNS)
    cues = list(srt.parse(render_subtitles(labelled, SubtitleFormat.SRT)))
    assert [cue.content for cue in cues] == ["A: Yes.", "B: No. Maybe."]

    vtt = render_subtitles(labelled, SubtitleFormat.VTT)
    assert "<v A>Yes." in vtt and "<v B>No. Maybe." in vtt
    captions = webvtt.from_string(vtt)
    assert [c.voice for c in captions] == ["A", "B"]

    txt = render_subtitles(labelled, SubtitleFormat.TXT)
    assert txt == "A: Yes.\nB: No.\nMaybe.\n"

    body = TranscriptionResult.model_validate_json(render_subtitles(labelled, SubtitleFormat.JSON))
    assert [s.speaker for s in body.segments] == ["A", "B", "B"]
    assert [w.speaker for s in body.segments for w in s.words or []] == ["A", "B", "B"]


def test_names_with_markup_stay_inert_in_vtt() -> None:
    labelled = label_speakers(result([segment(0, 0.5, 1.5, None)]), [Turn(0.0, 2.0, "<b>Ann & Bo>")])
    vtt = render_subtitles(labelled, SubtitleFormat.VTT)
    assert "<v b Ann Bo>" in vtt and "<b>" not in vtt
