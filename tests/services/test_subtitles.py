"""Tests for subtitle building and rendering (no model or database needed)."""

from __future__ import annotations

import io
import itertools
import json
import random
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
import srt
import webvtt

from app.schemas.result import Segment, TranscriptionResult, Word
from app.services.subtitles import (
    Cue,
    CueLimits,
    SubtitleFormat,
    build_cues,
    format_timestamp,
    media_type,
    render_subtitles,
    to_milliseconds,
    wrap_lines,
)

LIMITS = CueLimits()

ENGLISH = (
    "So today we are going to talk about how subtitles are built, and why the line "
    "length matters so much. Readers need time to follow the text! Does that make "
    "sense? I think it does, mostly because short lines are easier to read, and "
    "balanced lines look better on screen."
)
CHINESE = (
    "今天天气很好，我们一起去公园散步吧。公园里有很多人在跑步、打太极拳，还有小朋友在放风筝。"
    "我觉得这样的周末真是太美好了！下次我们再一起来吧，好不好？"
    "语音识别的结果需要切分成适合阅读的字幕，每一行都不能太长，每一条字幕也不能显示太久。"
)
JAPANESE = (
    "今日はとても良い天気ですね。公園に行って、みんなでお弁当を食べましょう。"
    "字幕は読みやすい長さに分割する必要があります。ありがとうございました！"
)


def make_segment(
    index: int,
    start: float,
    end: float,
    text: str,
    words: list[Word] | None = None,
) -> Segment:
    """A segment with neutral decoder statistics."""
    return Segment(
        id=index,
        start=start,
        end=end,
        text=text,
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.2,
        temperature=0.0,
        words=words,
    )


def make_words(text: str, start: float, step: float = 0.4, length: float = 0.3) -> list[Word]:
    """Synthetic word timestamps, one word every ``step`` seconds, Whisper-style spaces."""
    return [
        Word(start=start + i * step, end=start + i * step + length, word=" " + w, probability=0.9)
        for i, w in enumerate(text.split())
    ]


def worded_segment(index: int, text: str, start: float, step: float = 0.4) -> Segment:
    """A segment whose text and times come from synthetic words."""
    words = make_words(text, start, step)
    return make_segment(index, words[0].start, words[-1].end, "".join(w.word for w in words), words)


def make_result(segments: list[Segment]) -> TranscriptionResult:
    """A result around the given segments."""
    return TranscriptionResult(
        text="".join(s.text for s in segments),
        language="en",
        language_probability=0.99,
        duration=max((s.end for s in segments), default=0.0),
        segments=segments,
    )


def squash(text: str) -> str:
    """Text without any whitespace, to compare modulo whitespace."""
    return re.sub(r"\s+", "", text)


def assert_valid_cues(cues: Sequence[Cue], limits: CueLimits = LIMITS) -> None:
    """Every cue respects the limits; cues are ordered and never overlap."""
    assert cues, "expected at least one cue"
    for cue in cues:
        assert 1 <= len(cue.lines) <= limits.max_lines, cue
        for line in cue.lines:
            assert line.strip() == line and line, cue
            assert len(line) <= limits.max_line_chars, cue
        assert cue.end > cue.start, cue
        assert to_milliseconds(cue.end) - to_milliseconds(cue.start) <= round(limits.max_duration * 1000), cue
    for before, after in itertools.pairwise(cues):
        assert before.end <= after.start, (before, after)


def assert_parsed_cues_valid(cues: list[tuple[int, int, list[str]]], limits: CueLimits = LIMITS) -> None:
    """The same checks on cues read back by a parser: (start ms, end ms, lines)."""
    assert cues
    previous_end = 0
    for start, end, lines in cues:
        assert 1 <= len(lines) <= limits.max_lines, lines
        assert all(0 < len(line) <= limits.max_line_chars for line in lines), lines
        assert 0 < end - start <= limits.max_duration * 1000, (start, end)
        assert start >= previous_end, (start, previous_end)
        previous_end = end


def mixed_segments() -> list[Segment]:
    """Segments with and without words, in English, Chinese and Japanese."""
    return [
        worded_segment(0, ENGLISH, 0.0),
        make_segment(1, 25.0, 55.0, ENGLISH),
        make_segment(2, 55.0, 80.0, CHINESE),
        make_segment(3, 80.0, 95.0, JAPANESE),
        make_segment(4, 95.0, 96.0, "   "),
        worded_segment(5, "Short one.", 96.5),
        worded_segment(6, "And another.", 97.5),
    ]


# --- Parsed output ----------------------------------------------------------------


def test_srt_output_parses_and_respects_limits() -> None:
    result = make_result(mixed_segments())
    output = render_subtitles(result, SubtitleFormat.SRT)
    subtitles = list(srt.parse(output))
    parsed = [
        (
            s.start // timedelta(milliseconds=1),
            s.end // timedelta(milliseconds=1),
            s.content.split("\n"),
        )
        for s in subtitles
    ]
    assert_parsed_cues_valid(parsed)
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    assert output.startswith("1\n")
    assert "\n\n2\n" in output
    assert squash("".join(s.content for s in subtitles)) == squash("".join(s.text for s in result.segments))


def test_vtt_output_parses_and_respects_limits() -> None:
    result = make_result(mixed_segments())
    output = render_subtitles(result, SubtitleFormat.VTT)
    assert output.startswith("WEBVTT\n\n")
    captions = webvtt.from_buffer(io.StringIO(output), strict=True).captions
    parsed = [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), list(c.lines)) for c in captions]
    assert_parsed_cues_valid(parsed)
    assert len(captions) == output.count(" --> ")
    assert squash("".join(c.text for c in captions)) == squash("".join(s.text for s in result.segments))


def test_vtt_from_file(tmp_path: Path) -> None:
    result = make_result([worded_segment(0, ENGLISH, 1.0)])
    path = tmp_path / "out.vtt"
    path.write_text(render_subtitles(result, SubtitleFormat.VTT), encoding="utf-8")
    captions = webvtt.read(str(path)).captions
    assert captions[0].start_time.in_milliseconds() == 1000
    assert len(captions) >= 3


# --- Word timestamps ------------------------------------------------------------------


def test_word_packing_uses_word_times() -> None:
    segment = worded_segment(0, ENGLISH, 2.0, step=0.35)
    assert segment.words is not None
    cues = build_cues([segment])
    assert_valid_cues(cues)
    assert len(cues) > 1
    word_starts = {to_milliseconds(w.start) for w in segment.words}
    word_ends = {to_milliseconds(w.end) for w in segment.words}
    for cue in cues:
        assert to_milliseconds(cue.start) in word_starts
        assert to_milliseconds(cue.end) in word_ends
    # Each word lands in the cue that is on screen while it is spoken.
    words = iter(segment.words)
    for cue in cues:
        for token in " ".join(cue.lines).split():
            word = next(words)
            assert word.word.strip() == token
            assert to_milliseconds(cue.start) <= to_milliseconds(word.start)
            assert to_milliseconds(word.end) <= to_milliseconds(cue.end)


def test_word_packing_prefers_sentence_end() -> None:
    text = (
        "The meeting starts at nine tomorrow morning. "
        "Please bring the quarterly report and the budget numbers with you."
    )
    cues = build_cues([worded_segment(0, text, 0.0, step=0.3)])
    assert_valid_cues(cues)
    assert len(cues) == 2
    assert cues[0].lines[-1].endswith("morning.")
    assert " ".join(cues[1].lines).startswith("Please")


def test_word_packing_prefers_comma_in_a_half_full_cue() -> None:
    text = (
        "When the weather gets warmer in the spring and summer months, "
        "we like to walk along the river with our friends"
    )
    cues = build_cues([worded_segment(0, text, 0.0, step=0.3)])
    assert_valid_cues(cues)
    assert len(cues) == 2
    assert cues[0].lines[-1].endswith("months,")


def test_word_packing_respects_duration() -> None:
    # Few characters, slow speech: the duration limit forces the breaks.
    text = "one two three four five six seven eight nine ten eleven twelve"
    cues = build_cues([worded_segment(0, text, 0.0, step=1.5)])
    assert_valid_cues(cues)
    assert len(cues) >= 3
    assert squash("".join(" ".join(c.lines) for c in cues)) == squash(text)


def test_short_segments_share_a_cue_when_they_fit() -> None:
    cues = build_cues([worded_segment(0, "Hi there.", 0.0), worded_segment(1, "How are you?", 1.0)])
    assert len(cues) == 1
    assert cues[0].lines == ("Hi there. How are you?",)
    assert cues[0].start == 0.0


def test_segment_that_does_not_fit_starts_a_new_cue() -> None:
    first = worded_segment(0, "Hi there.", 0.0)
    second = worded_segment(1, ENGLISH, 1.0, step=0.3)
    cues = build_cues([first, second])
    assert_valid_cues(cues)
    assert cues[0].lines == ("Hi there.",)
    assert cues[1].start == pytest.approx(1.0)


def test_segments_far_apart_are_not_joined() -> None:
    cues = build_cues([worded_segment(0, "Hello.", 0.0), worded_segment(1, "Goodbye.", 5.0)])
    assert [c.lines for c in cues] == [("Hello.",), ("Goodbye.",)]


def test_word_timestamps_with_cjk_words() -> None:
    chars = [c for c in CHINESE]
    words = [Word(start=i * 0.2, end=i * 0.2 + 0.15, word=c, probability=0.9) for i, c in enumerate(chars)]
    cues = build_cues([make_segment(0, 0.0, words[-1].end, CHINESE, words)])
    assert_valid_cues(cues)
    assert squash("".join("".join(c.lines) for c in cues)) == squash(CHINESE)
    for cue in cues:
        for line in cue.lines:
            assert line[0] not in "，。、！？"


# --- Segments without words -----------------------------------------------------------


def test_long_segment_without_words_is_split_by_duration() -> None:
    text = "We will now read a long passage of text that was decoded without word times at all"
    segment = make_segment(0, 10.0, 40.0, text)
    cues = build_cues([segment])
    assert_valid_cues(cues)
    assert len(cues) >= 5  # 30 s at no more than 7 s each
    assert cues[0].start == 10.0
    assert cues[-1].end == 40.0
    assert squash("".join(" ".join(c.lines) for c in cues)) == squash(text)
    # Time is shared in proportion to the text: no cue is much shorter than its share.
    total_chars = len(squash(text))
    for cue in cues:
        share = len(squash("".join(cue.lines))) / total_chars * 30.0
        assert cue.end - cue.start == pytest.approx(share, abs=0.01)


def test_long_cjk_text_without_spaces() -> None:
    text = CHINESE * 3
    cues = build_cues([make_segment(0, 0.0, 60.0, text)])
    assert_valid_cues(cues)
    assert squash("".join("".join(c.lines) for c in cues)) == squash(text)
    for cue in cues:
        for line in cue.lines:
            assert " " not in line
            assert line[0] not in "，。、！？"
    # Most cues end at punctuation rather than in the middle of a phrase.
    at_punctuation = sum(cue.lines[-1][-1] in "，。、！？" for cue in cues)
    assert at_punctuation >= len(cues) * 0.75


def test_long_japanese_text_without_spaces() -> None:
    cues = build_cues([make_segment(0, 0.0, 12.0, JAPANESE * 2)])
    assert_valid_cues(cues)
    assert squash("".join("".join(c.lines) for c in cues)) == squash(JAPANESE * 2)


def test_text_without_words_fitting_one_cue_stays_whole() -> None:
    cues = build_cues([make_segment(0, 1.0, 3.5, "  Hello world.  ")])
    assert cues == [Cue(1.0, 3.5, ("Hello world.",))]


def test_long_single_word_is_split() -> None:
    word = "a" * 30 + "b" * 30
    cues = build_cues([make_segment(0, 0.0, 3.0, f"see {word} here")])
    assert_valid_cues(cues)
    lines = [line for cue in cues for line in cue.lines]
    assert all(len(line) <= 42 for line in lines)
    assert squash("".join(lines)) == squash(f"see {word} here")


def test_long_single_word_with_word_timestamps_is_split() -> None:
    word = "x" * 60
    words = [Word(start=0.0, end=1.0, word=" " + word, probability=0.5)]
    cues = build_cues([make_segment(0, 0.0, 1.0, " " + word, words)])
    assert_valid_cues(cues)
    assert "".join(line for cue in cues for line in cue.lines) == word


def test_very_long_word_spans_several_cues() -> None:
    word = "z" * 200
    cues = build_cues([make_segment(0, 0.0, 4.0, word)])
    assert_valid_cues(cues)
    assert len(cues) >= 3
    assert "".join(line for cue in cues for line in cue.lines) == word


# --- Wrapping ---------------------------------------------------------------------------


def test_lines_are_balanced() -> None:
    text = "The quick brown fox jumps over the lazy dog and then runs away"
    lines = wrap_lines(text)
    assert len(lines) == 2
    assert abs(len(lines[0]) - len(lines[1])) <= 8
    assert " ".join(lines) == text


def test_text_that_fits_one_line_is_not_wrapped() -> None:
    assert wrap_lines("A line of exactly forty-two characters ok.") == (
        "A line of exactly forty-two characters ok.",
    )


def test_cue_lines_are_balanced() -> None:
    text = "This sentence is just a little bit longer than one line allows"
    cues = build_cues([make_segment(0, 0.0, 4.0, text)])
    assert len(cues) == 1
    first, second = cues[0].lines
    assert abs(len(first) - len(second)) <= 8


def test_wrap_does_not_separate_opening_or_closing_punctuation() -> None:
    text = "他说「今天天气很好，我们一起去公园散步吧。」然后我们就出发了，一路上说说笑笑非常开心。"
    for line in wrap_lines(text, CueLimits(max_line_chars=10, max_lines=10)):
        assert line[0] not in "，。」"
        assert line[-1] != "「"


@pytest.mark.parametrize(
    "text",
    [
        "一二三四五「六七八九十」",  # the balanced break would leave 「 at a line end
        "一二三四五」六七八九十",  # the balanced break would put 」 at a line start
        "ひらがなばかりでしょっちゅう",  # small kana must not start a line
        "コーヒーとジュースのセットです",
    ],
)
def test_wrap_keeps_punctuation_with_its_neighbour(text: str) -> None:
    lines = wrap_lines(text, CueLimits(max_line_chars=10))
    assert len(lines) == 2
    assert "".join(lines) == text
    assert lines[0][-1] not in "「"
    assert lines[1][0] not in "」ゃゅょっーぁぃぅぇぉ"


def test_custom_limits() -> None:
    limits = CueLimits(max_line_chars=20, max_lines=1, max_duration=3.0)
    cues = build_cues([worded_segment(0, ENGLISH, 0.0, step=0.3)], limits)
    assert_valid_cues(cues, limits)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_line_chars": 0}, {"max_lines": 0}, {"max_duration": 0.0}, {"max_duration": -1.0}],
)
def test_invalid_limits_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CueLimits(**kwargs)  # type: ignore[arg-type]


# --- Timing edge cases --------------------------------------------------------------------


def test_zero_length_and_overlapping_segments() -> None:
    segments = [
        make_segment(0, 5.0, 5.0, "Zero length one with enough words to stay alone here"),
        make_segment(1, 5.0, 5.0, "Another zero length segment right at the same time"),
        make_segment(2, 4.0, 9.0, "This one starts before the previous ones and it is long"),
        make_segment(3, 8.0, 12.0, "And this overlaps the segment before it by a whole second"),
    ]
    cues = build_cues(segments)
    assert_valid_cues(cues)
    for cue in cues:
        assert to_milliseconds(cue.end) - to_milliseconds(cue.start) >= 1
    assert squash("".join(" ".join(c.lines) for c in cues)) == squash("".join(s.text for s in segments))


def test_blank_segments_are_skipped() -> None:
    segments = [make_segment(0, 0.0, 1.0, ""), make_segment(1, 1.0, 2.0, " \n\t ")]
    assert build_cues(segments) == []
    result = make_result(segments)
    assert render_subtitles(result, SubtitleFormat.SRT) == ""
    assert render_subtitles(result, SubtitleFormat.VTT) == "WEBVTT\n\n"
    assert render_subtitles(result, SubtitleFormat.TXT) == ""
    assert render_subtitles(result, SubtitleFormat.TSV) == "start\tend\ttext\n"


def test_non_finite_times_are_rejected() -> None:
    with pytest.raises(ValueError):
        build_cues([make_segment(0, 0.0, float("nan"), "text")])


def test_randomised_segments_keep_every_invariant() -> None:
    rng = random.Random(20240501)
    vocabulary = [*ENGLISH.split(), "supercalifragilisticexpialidocious" * 2, "a", "I"]
    segments: list[Segment] = []
    clock = 0.0
    for index in range(120):
        kind = rng.random()
        if kind < 0.5:
            words: list[Word] = []
            for _ in range(rng.randint(1, 40)):
                length = rng.uniform(0.0, 1.2)
                words.append(
                    Word(
                        start=clock,
                        end=clock + length,
                        word=" " + rng.choice(vocabulary),
                        probability=0.5,
                    )
                )
                clock += length + rng.choice([0.0, 0.05, 0.3, 2.0])
            text = "".join(w.word for w in words)
            segments.append(make_segment(index, words[0].start, words[-1].end, text, words))
        else:
            source = CHINESE if kind < 0.75 else ENGLISH
            first = rng.randrange(len(source))
            text = source[first : first + rng.randint(1, 150)]
            duration = rng.uniform(0.0, 40.0)
            start = max(0.0, clock - rng.uniform(0.0, 1.0))
            segments.append(make_segment(index, start, start + duration, text))
            clock = start + duration
    cues = build_cues(segments)
    assert_valid_cues(cues)
    assert squash("".join("".join(c.lines) for c in cues)) == squash("".join(s.text for s in segments))
    subtitles = list(srt.parse(render_subtitles(make_result(segments), SubtitleFormat.SRT)))
    assert len(subtitles) == len(cues)


# --- Timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "milliseconds"),
    [
        (0.0, 0),
        (0.0005, 1),
        (0.0004, 0),
        (1.0005, 1001),
        (0.5005, 501),  # 0.5005 * 1000 is 500.49999999999994 in binary floating point
        (0.5015, 502),
        (1.9995, 2000),
        (2.675, 2675),
        (59.9996, 60000),
        (3599.9999, 3600000),
        (3600, 3600000),
        (-0.5, 0),
    ],
)
def test_to_milliseconds_rounds_half_up(seconds: float, milliseconds: int) -> None:
    assert to_milliseconds(seconds) == milliseconds


@pytest.mark.parametrize(
    ("seconds", "srt_text", "vtt_text"),
    [
        (0.0005, "00:00:00,001", "00:00:00.001"),
        (1.9995, "00:00:02,000", "00:00:02.000"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (3599.9999, "01:00:00,000", "01:00:00.000"),
        (3600, "01:00:00,000", "01:00:00.000"),
        (3723.004, "01:02:03,004", "01:02:03.004"),
        (360000.0, "100:00:00,000", "100:00:00.000"),
    ],
)
def test_format_timestamp(seconds: float, srt_text: str, vtt_text: str) -> None:
    assert format_timestamp(seconds, ",") == srt_text
    assert format_timestamp(seconds) == vtt_text


def test_rendered_timestamps_never_show_sixty_seconds() -> None:
    segments = [
        make_segment(0, 0.0005, 1.9995, "First line."),
        make_segment(1, 55.0, 59.9996, "Second line."),
        make_segment(2, 3599.9999, 3601.0, "Third line."),
    ]
    output = render_subtitles(make_result(segments), SubtitleFormat.SRT)
    assert "00:00:00,001 --> 00:00:02,000" in output
    assert "00:00:55,000 --> 00:01:00,000" in output
    assert "01:00:00,000 --> 01:00:01,000" in output
    assert ":60" not in output
    vtt_output = render_subtitles(make_result(segments), SubtitleFormat.VTT)
    assert "00:00:55.000 --> 00:01:00.000" in vtt_output


# --- Other formats --------------------------------------------------------------------------


def test_vtt_escapes_cue_text() -> None:
    text = "Tom & Jerry <b>bold</b> a --> b"
    output = render_subtitles(make_result([make_segment(0, 0.0, 3.0, text)]), SubtitleFormat.VTT)
    body = output.split("\n", 3)[3]
    assert "&amp;" in body and "&lt;b&gt;" in body and "&lt;/b&gt;" in body
    assert "-->" not in body
    assert "<" not in body and ">" not in body
    assert body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").split() == (text.split())
    captions = webvtt.from_buffer(io.StringIO(output), strict=True).captions
    assert len(captions) == 1


def test_srt_does_not_escape() -> None:
    output = render_subtitles(make_result([make_segment(0, 0.0, 2.0, "A & B")]), SubtitleFormat.SRT)
    assert output == "1\n00:00:00,000 --> 00:00:02,000\nA & B\n"


def test_txt_is_one_segment_per_line() -> None:
    segments = [
        make_segment(0, 0.0, 1.0, " Hello there. "),
        make_segment(1, 1.0, 2.0, "   "),
        make_segment(2, 2.0, 3.0, "Second\nline"),
    ]
    assert render_subtitles(make_result(segments), SubtitleFormat.TXT) == ("Hello there.\nSecond line\n")


def test_tsv_rows() -> None:
    segments = [
        make_segment(0, 0.0005, 1.9995, " Hello\tthere. "),
        make_segment(1, 2.0, 59.9996, "Two\nlines"),
    ]
    output = render_subtitles(make_result(segments), SubtitleFormat.TSV)
    assert output == "start\tend\ttext\n1\t2000\tHello there.\n2000\t60000\tTwo lines\n"
    for row in output.splitlines():
        assert row.count("\t") == 2


def test_json_is_the_result() -> None:
    result = make_result([worded_segment(0, "Hello world.", 0.0)])
    output = render_subtitles(result, SubtitleFormat.JSON)
    assert TranscriptionResult.model_validate_json(output) == result
    assert json.loads(output)["segments"][0]["words"][0]["word"] == " Hello"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (SubtitleFormat.SRT, "application/x-subrip"),
        (SubtitleFormat.VTT, "text/vtt; charset=utf-8"),
        (SubtitleFormat.TXT, "text/plain; charset=utf-8"),
        (SubtitleFormat.TSV, "text/tab-separated-values; charset=utf-8"),
        (SubtitleFormat.JSON, "application/json"),
    ],
)
def test_media_type(fmt: SubtitleFormat, expected: str) -> None:
    assert media_type(fmt) == expected


def test_subtitle_format_values() -> None:
    assert [f.value for f in SubtitleFormat] == ["srt", "vtt", "txt", "tsv", "json"]
    assert SubtitleFormat("vtt") is SubtitleFormat.VTT
