"""Subtitle building and rendering for transcription results.

The module turns a :class:`~app.schemas.result.TranscriptionResult` into the
download formats the service offers (SubRip, WebVTT, plain text, TSV and JSON).

Subtitle cues are built for reading, not just copied from the decoder's
segments:

* every cue wraps into at most ``max_lines`` lines of at most ``max_line_chars``
  characters, and lasts at most ``max_duration`` seconds;
* word timestamps are used where a segment has them, otherwise the segment's
  time is shared among its pieces in proportion to their lengths;
* text without spaces (Chinese, Japanese) is split between characters, never
  before closing punctuation or after opening punctuation;
* cue breaks prefer sentence ends, then clause ends (commas) in a cue that is
  already more than half full, and the pieces of a segment are kept balanced;
* the two lines of a cue are balanced too;
* cues are in order, never overlap and last at least one millisecond;
* a cue never holds two speakers: segments of different speakers never join, and
  a diarized cue names its speaker (``<v A>`` in WebVTT, ``A: `` in SubRip).

Times are converted to whole milliseconds once, rounding halves up on the
decimal value of the float, and every timestamp is formatted from that integer.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import NamedTuple, assert_never

from app.schemas.result import Segment, TranscriptionResult, Word

__all__ = [
    "Cue",
    "CueLimits",
    "SubtitleFormat",
    "build_cues",
    "format_timestamp",
    "media_type",
    "render_subtitles",
    "to_milliseconds",
    "wrap_lines",
]


class SubtitleFormat(StrEnum):
    """The output formats a transcription can be rendered to."""

    SRT = "srt"
    VTT = "vtt"
    TXT = "txt"
    TSV = "tsv"
    JSON = "json"


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: a time span and the wrapped lines shown during it."""

    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None

    @property
    def text(self) -> str:
        """The cue's lines joined with newlines."""
        return "\n".join(self.lines)


@dataclass(frozen=True)
class CueLimits:
    """Readability limits every built cue respects.

    Attributes:
        max_line_chars: Most characters on one line.
        max_lines: Most lines in one cue.
        max_duration: Longest time, in seconds, a cue stays on screen.
    """

    max_line_chars: int = 42
    max_lines: int = 2
    max_duration: float = 7.0

    def __post_init__(self) -> None:
        """Reject limits no cue could satisfy."""
        if self.max_line_chars < 1:
            raise ValueError("max_line_chars must be at least 1")
        if self.max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        if not (math.isfinite(self.max_duration) and self.max_duration >= 0.001):
            raise ValueError("max_duration must be a finite number of seconds >= 0.001")


# --- Characters -------------------------------------------------------------

# Scripts written without spaces between words: a line may break between any
# two of their characters.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31FF),  # Bopomofo, Kanbun, Katakana extensions
    (0x3200, 0x4DBF),  # enclosed CJK, CJK compatibility, extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half-width and full-width forms
    (0x20000, 0x3FFFF),  # extensions B and later
)

# Characters that must not start a line: closing punctuation, Japanese small
# kana and the prolonged sound mark. Written without a space before them, they
# stick to what precedes them.
_NO_LINE_START = frozenset(
    ",.!?;:%)]}»›…‥”’"
    "、。，．！？：；）」』】〕〉》〗〙〛｝］｠｡｣､・ー～"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ"
)
# Characters that must not end a line: opening punctuation sticks to what follows.
_NO_LINE_END = frozenset("([{«‹“‘「『（【〔〈《〖〘〚｛［｟｢")

_SENTENCE_END = frozenset(".?!。？！．｡…")
_CLAUSE_END = frozenset(",，、､;；")
_CLOSERS = "\"'”’)]}»›」』）】〕〉》〗〙〛｝］｠｣"

# --- Cue packing costs --------------------------------------------------------

_CUE_COST = 1.0  # each cue: fewer cues are better
_UNFILLED_COST = 1.0  # times (1 - fill) ** 2: balanced, well-filled cues are better
_PLAIN_BREAK_COST = 2.0  # a cue ending mid-sentence: worse than one more cue
_CLAUSE_BREAK_COST = 0.3  # a cue ending after a comma while more than half full
# In line wrapping, times width ** 2: lets a line break move a few characters
# off balance to land after punctuation.
_SENTENCE_LINE_BONUS = 0.1
_CLAUSE_LINE_BONUS = 0.05
_MAX_JOIN_GAP = 1.0  # seconds of silence across which segments may share a cue
_TIME_EPSILON = 1e-9


class _Atom(NamedTuple):
    """The smallest unit of text a line may not break inside."""

    text: str
    space_before: bool


class _Token(NamedTuple):
    """A timed unit of a segment's text; ``text`` carries its leading space."""

    text: str
    start: float
    end: float


class _Draft(NamedTuple):
    """A cue before final timing fixes and line wrapping."""

    start: float
    end: float
    text: str
    speaker: str | None = None


def _is_cjk(char: str) -> bool:
    """Whether ``char`` belongs to a script written without spaces."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_combining(char: str) -> bool:
    """Whether ``char`` is a combining mark that must stay with its base."""
    return unicodedata.combining(char) != 0 or unicodedata.category(char) in ("Mn", "Mc", "Me")


def _hard_split(text: str, width: int) -> list[str]:
    """Split ``text`` into as few near-equal chunks of at most ``width`` characters.

    A chunk never starts with a combining mark unless that is unavoidable.
    """
    chunks: list[str] = []
    rest = text
    while len(rest) > width:
        parts = -(-len(rest) // width)
        cut = -(-len(rest) // parts)
        while cut > 1 and _is_combining(rest[cut]):
            cut -= 1
        chunks.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        chunks.append(rest)
    return chunks


def _split_atoms(text: str) -> list[_Atom]:
    """Split text into the units between which a line may break."""
    texts: list[str] = []
    spaces: list[bool] = []
    kinds: list[str] = []  # "word", "cjk" or "open"
    pending_space = False
    for char in text:
        if char.isspace():
            pending_space = True
            continue
        if texts and not pending_space:
            kind = kinds[-1]
            if kind == "open":
                texts[-1] += char
                if char not in _NO_LINE_END:
                    kinds[-1] = "cjk" if _is_cjk(char) else "word"
                continue
            if char in _NO_LINE_START or (kind == "word" and not _is_cjk(char)):
                texts[-1] += char
                continue
        if char in _NO_LINE_END:
            kinds.append("open")
        else:
            kinds.append("cjk" if _is_cjk(char) else "word")
        texts.append(char)
        spaces.append(pending_space and len(texts) > 1)
        pending_space = False
    return [_Atom(text, space) for text, space in zip(texts, spaces, strict=True)]


def _atoms(text: str, width: int) -> list[_Atom]:
    """Split text into breakable units, hard-splitting any longer than ``width``."""
    atoms: list[_Atom] = []
    for atom in _split_atoms(text):
        if len(atom.text) <= width:
            atoms.append(atom)
            continue
        for index, chunk in enumerate(_hard_split(atom.text, width)):
            atoms.append(_Atom(chunk, atom.space_before and index == 0))
    return atoms


def _line_count(atoms: Sequence[_Atom], width: int) -> int:
    """The fewest lines of at most ``width`` characters the atoms wrap into.

    Every atom must be at most ``width`` characters long.
    """
    if not atoms:
        return 0
    lines = 1
    length = 0
    for atom in atoms:
        added = len(atom.text) + (1 if atom.space_before and length else 0)
        if length and length + added > width:
            lines += 1
            length = len(atom.text)
        else:
            length += added
    return lines


def _join_atoms(atoms: Sequence[_Atom]) -> str:
    """Join atoms into one line, dropping the leading space of the first."""
    parts = [atoms[0].text]
    parts.extend((" " + atom.text) if atom.space_before else atom.text for atom in atoms[1:])
    return "".join(parts)


def _balanced_lines(atoms: Sequence[_Atom], width: int, count: int) -> list[str]:
    """Wrap atoms into exactly ``count`` lines of at most ``width`` characters.

    Minimises the sum of the squared line lengths, which balances the lines,
    less a bonus for a line ending at a sentence or clause end, which allows a
    little imbalance to break there; of equally good wraps the one with the
    shorter top line wins. ``count`` must be
    at least the greedy line count, so a wrap exists.
    """
    size = len(atoms)
    prefix = [0] * (size + 1)
    for index, atom in enumerate(atoms):
        prefix[index + 1] = prefix[index] + len(atom.text) + (1 if atom.space_before else 0)

    def length(first: int, stop: int) -> int:
        return prefix[stop] - prefix[first] - (1 if atoms[first].space_before else 0)

    def bonus_after(text: str) -> float:
        if _ends_with(text, _SENTENCE_END):
            return _SENTENCE_LINE_BONUS * width * width
        if _ends_with(text, _CLAUSE_END):
            return _CLAUSE_LINE_BONUS * width * width
        return 0.0

    best = [[math.inf] * (size + 1) for _ in range(count + 1)]
    back = [[0] * (size + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for line in range(1, count + 1):
        for stop in range(line, size + 1):
            for first in range(stop - 1, line - 2, -1):
                chars = length(first, stop)
                if chars > width:
                    break
                cost = best[line - 1][first] + chars * chars
                if stop < size:
                    cost -= bonus_after(atoms[stop - 1].text)
                if cost <= best[line][stop]:
                    best[line][stop] = cost
                    back[line][stop] = first
    lines: list[str] = []
    stop = size
    for line in range(count, 0, -1):
        first = back[line][stop]
        lines.append(_join_atoms(atoms[first:stop]))
        stop = first
    lines.reverse()
    return lines


def wrap_lines(text: str, limits: CueLimits = CueLimits()) -> tuple[str, ...]:
    """Wrap text into the fewest, balanced lines of at most ``max_line_chars``.

    Words longer than a line are hard-split. The result may have more than
    ``max_lines`` lines when the text is too long for one cue.
    """
    atoms = _atoms(text, limits.max_line_chars)
    if not atoms:
        return ()
    count = _line_count(atoms, limits.max_line_chars)
    return tuple(_balanced_lines(atoms, limits.max_line_chars, count))


def _fits_text(text: str, limits: CueLimits) -> bool:
    """Whether text wraps into at most ``max_lines`` lines."""
    atoms = _atoms(text, limits.max_line_chars)
    return _line_count(atoms, limits.max_line_chars) <= limits.max_lines


def _ends_with(text: str, marks: frozenset[str]) -> bool:
    """Whether text, ignoring closing quotes and brackets, ends with one of ``marks``."""
    core = text.rstrip().rstrip(_CLOSERS)
    return bool(core) and core[-1] in marks


def _join_text(first: str, second: str) -> str:
    """Join two pieces of text with a space, or without one between CJK characters."""
    if first and second and _is_cjk(first[-1]) and _is_cjk(second[0]):
        return first + second
    return f"{first} {second}"


# --- Tokens -------------------------------------------------------------------


def _word_tokens(words: Sequence[Word], width: int) -> list[_Token]:
    """Turn word timestamps into tokens, in order, with no word longer than a line."""
    tokens: list[_Token] = []
    previous_start = -math.inf
    for word in words:
        core = word.word.strip()
        if not core:
            continue
        start = max(word.start, previous_start)
        end = max(word.end, start)
        previous_start = start
        lead = " " if word.word[:1].isspace() else ""
        if len(core) <= width:
            tokens.append(_Token(lead + core, start, end))
            continue
        position = 0
        for index, chunk in enumerate(_hard_split(core, width)):
            chunk_start = start + (end - start) * position / len(core)
            position += len(chunk)
            chunk_end = start + (end - start) * position / len(core)
            if chunk.strip():
                tokens.append(_Token((lead if index == 0 else "") + chunk, chunk_start, chunk_end))
    return tokens


def _text_tokens(text: str, start: float, end: float, width: int) -> list[_Token]:
    """Split untimed text into tokens sharing ``start``..``end`` by character count."""
    atoms = _atoms(text, width)
    total = sum(len(atom.text) for atom in atoms)
    duration = max(end - start, 0.0)
    tokens: list[_Token] = []
    position = 0
    for index, atom in enumerate(atoms):
        token_start = start + duration * position / total
        position += len(atom.text)
        token_end = start + duration if index == len(atoms) - 1 else (start + duration * position / total)
        text_with_space = (" " + atom.text) if atom.space_before else atom.text
        tokens.append(_Token(text_with_space, token_start, token_end))
    return tokens


def _segment_tokens(segment: Segment, limits: CueLimits) -> list[_Token]:
    """The tokens of one segment, from its words when it has any."""
    if segment.words:
        tokens = _word_tokens(segment.words, limits.max_line_chars)
        if tokens:
            return tokens
    return _text_tokens(segment.text, segment.start, segment.end, limits.max_line_chars)


# --- Packing --------------------------------------------------------------------


def _pack(tokens: Sequence[_Token], limits: CueLimits) -> list[tuple[int, int]]:
    """Split one segment's tokens into cue spans ``(first, stop)``.

    Every span wraps into the line limits and lasts at most ``max_duration``
    (a single token always forms a valid span). Among all such splits the one
    with the lowest cost wins: each cue costs the same, under-filled cues cost
    more (so pieces are balanced), and a break costs nothing after a sentence
    end, a little after a comma in a cue more than half full, and most elsewhere.
    """
    size = len(tokens)
    starts = [token.start for token in tokens]
    ends = [token.end for token in tokens]
    capacity = limits.max_line_chars * limits.max_lines

    def fits(first: int, stop: int) -> bool:
        if stop - first == 1:
            return True
        if max(ends[first:stop]) - starts[first] > limits.max_duration + _TIME_EPSILON:
            return False
        return _fits_text("".join(token.text for token in tokens[first:stop]), limits)

    # Dropping tokens from either end never makes a span stop fitting, so the
    # earliest valid first token only moves forward as the stop moves forward.
    earliest = [0] * (size + 1)
    first = 0
    for stop in range(1, size + 1):
        while not fits(first, stop):
            first += 1
        earliest[stop] = first

    chars = [0] * (size + 1)
    for index, token in enumerate(tokens):
        chars[index + 1] = chars[index] + len(token.text)

    best = [0.0] + [math.inf] * size
    back = [0] * (size + 1)
    for stop in range(1, size + 1):
        last_text = tokens[stop - 1].text
        sentence_end = _ends_with(last_text, _SENTENCE_END)
        clause_end = _ends_with(last_text, _CLAUSE_END)
        latest_end = -math.inf
        for first in range(stop - 1, earliest[stop] - 1, -1):
            latest_end = max(latest_end, ends[first])
            length = chars[stop] - chars[first] - (1 if tokens[first].text[:1] == " " else 0)
            fill = min(1.0, max(length / capacity, (latest_end - starts[first]) / limits.max_duration))
            cost = best[first] + _CUE_COST + _UNFILLED_COST * (1.0 - fill) ** 2
            if stop < size and not sentence_end:
                cost += _CLAUSE_BREAK_COST if clause_end and fill > 0.5 else _PLAIN_BREAK_COST
            if cost < best[stop]:
                best[stop] = cost
                back[stop] = first

    spans: list[tuple[int, int]] = []
    stop = size
    while stop > 0:
        spans.append((back[stop], stop))
        stop = back[stop]
    spans.reverse()
    return spans


def _segment_drafts(segment: Segment, limits: CueLimits) -> list[_Draft]:
    """Split one segment into draft cues."""
    tokens = _segment_tokens(segment, limits)
    drafts: list[_Draft] = []
    for first, stop in _pack(tokens, limits):
        span = tokens[first:stop]
        text = "".join(token.text for token in span).strip()
        if not text:
            continue
        start = span[0].start
        end = min(max(token.end for token in span), start + limits.max_duration)
        drafts.append(_Draft(start, end, text, segment.speaker))
    return drafts


def _try_join(previous: _Draft, draft: _Draft, limits: CueLimits) -> _Draft | None:
    """The two drafts as one cue when that cue fits the limits, else None."""
    if draft.start - previous.end > _MAX_JOIN_GAP or draft.speaker != previous.speaker:
        return None
    end = max(previous.end, draft.end)
    if end - previous.start > limits.max_duration + _TIME_EPSILON:
        return None
    text = _join_text(previous.text, draft.text)
    if not _fits_text(text, limits):
        return None
    return _Draft(previous.start, end, text, previous.speaker)


def _finalize(drafts: Sequence[_Draft], limits: CueLimits) -> list[Cue]:
    """Quantise draft times to milliseconds, fix overlaps and wrap the lines."""
    max_ms = max(1, to_milliseconds(limits.max_duration))
    times = [(to_milliseconds(max(d.start, 0.0)), to_milliseconds(max(d.end, 0.0))) for d in drafts]
    cues: list[Cue] = []
    previous_end = 0
    for index, draft in enumerate(drafts):
        start_ms, end_ms = times[index]
        start_ms = max(start_ms, previous_end)
        end_ms = min(end_ms, start_ms + max_ms)
        if index + 1 < len(drafts) and times[index + 1][0] > start_ms:
            end_ms = min(end_ms, times[index + 1][0])
        end_ms = max(end_ms, start_ms + 1)
        previous_end = end_ms
        cues.append(Cue(start_ms / 1000, end_ms / 1000, wrap_lines(draft.text, limits), draft.speaker))
    return cues


def build_cues(segments: Sequence[Segment], limits: CueLimits = CueLimits()) -> list[Cue]:
    """Build readable subtitle cues from decoded segments.

    Segments with word timestamps are packed word by word; segments without
    them are split into pieces that share the segment's time by character
    count. A segment that fits entirely into the previous cue (lines and
    duration, with at most a short pause between) joins it. Segments whose
    text is blank are skipped.

    Raises:
        ValueError: if a segment or word time is not a finite number.
    """
    drafts: list[_Draft] = []
    for segment in segments:
        if not segment.text.strip():
            continue
        times = [segment.start, segment.end]
        for word in segment.words or ():
            times.extend((word.start, word.end))
        if not all(math.isfinite(value) for value in times):
            raise ValueError(f"segment {segment.id} has a time that is not finite")
        pieces = _segment_drafts(segment, limits)
        if not pieces:
            continue
        joined = _try_join(drafts[-1], pieces[0], limits) if drafts and len(pieces) == 1 else None
        if joined is not None:
            drafts[-1] = joined
        else:
            drafts.extend(pieces)
    return _finalize(drafts, limits)


# --- Timestamps -----------------------------------------------------------------


def to_milliseconds(seconds: float) -> int:
    """Convert seconds to whole milliseconds, rounding halves up.

    The float's shortest decimal form is rounded, so ``1.0005`` gives 1001
    rather than the 1000 that binary floating point arithmetic would give.
    Negative times give 0.

    Raises:
        ValueError: if ``seconds`` is not finite.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"time is not finite: {seconds!r}")
    milliseconds = (Decimal(repr(float(seconds))) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(int(milliseconds), 0)


def _format_ms(milliseconds: int, decimal_marker: str) -> str:
    """Format whole milliseconds as ``HH:MM:SS<marker>mmm`` (hours may exceed 99)."""
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_marker}{millis:03d}"


def format_timestamp(seconds: float, decimal_marker: str = ".") -> str:
    """Format seconds as ``HH:MM:SS.mmm`` (WebVTT) or, with ``","``, as SubRip."""
    return _format_ms(to_milliseconds(seconds), decimal_marker)


# --- Rendering ------------------------------------------------------------------


def _escape_vtt(line: str) -> str:
    """Escape the characters WebVTT cue text reserves; this also breaks up ``-->``."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    """Text with tabs and line breaks replaced by spaces, stripped."""
    return " ".join(text.splitlines()).replace("\t", " ").strip()


def _speaker_label(speaker: str) -> str:
    """A speaker name fit for a cue prefix or a voice tag: one line, no markup characters."""
    return " ".join(speaker.replace(">", " ").replace("<", " ").replace("&", " ").split()) or "?"


def _render_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues separated by blank lines; a diarized cue starts with ``A: ``."""
    blocks = []
    for number, cue in enumerate(cues, start=1):
        lines = list(cue.lines)
        if cue.speaker is not None and lines:
            lines[0] = f"{_speaker_label(cue.speaker)}: {lines[0]}"
        blocks.append(
            f"{number}\n{format_timestamp(cue.start, ',')} --> {format_timestamp(cue.end, ',')}\n"
            + "".join(line + "\n" for line in lines)
        )
    return "\n".join(blocks)


def _render_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: the header, then cues separated by blank lines; a diarized cue opens with ``<v A>``."""
    blocks = []
    for cue in cues:
        lines = [_escape_vtt(line) for line in cue.lines]
        if cue.speaker is not None and lines:
            lines[0] = f"<v {_speaker_label(cue.speaker)}>{lines[0]}"
        blocks.append(
            f"{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}\n"
            + "".join(line + "\n" for line in lines)
        )
    return "WEBVTT\n\n" + "\n".join(blocks)


def _render_txt(segments: Sequence[Segment]) -> str:
    """Plain transcript: one segment per line, blank segments left out; with speakers, each
    speaker's turn starts with the speaker's name (``A: ...``)."""
    out: list[str] = []
    current: str | None = None
    for segment in segments:
        line = _one_line(segment.text)
        if not line:
            continue
        if segment.speaker is not None and segment.speaker != current:
            current = segment.speaker
            line = f"{_one_line(segment.speaker)}: {line}"
        out.append(line + "\n")
    return "".join(out)


def _render_tsv(segments: Sequence[Segment]) -> str:
    """Tab-separated rows of start and end milliseconds and text."""
    rows = ["start\tend\ttext\n"]
    for segment in segments:
        text = _one_line(segment.text)
        if text:
            start = to_milliseconds(segment.start)
            end = to_milliseconds(segment.end)
            rows.append(f"{start}\t{end}\t{text}\n")
    return "".join(rows)


def render_subtitles(
    result: TranscriptionResult,
    fmt: SubtitleFormat,
    limits: CueLimits = CueLimits(),
) -> str:
    """Render a transcription in one of the download formats.

    ``limits`` shapes the cues of the SubRip and WebVTT formats; the plain
    text and TSV formats keep one segment per line, and JSON is the result
    itself.
    """
    if fmt is SubtitleFormat.SRT:
        return _render_srt(build_cues(result.segments, limits))
    if fmt is SubtitleFormat.VTT:
        return _render_vtt(build_cues(result.segments, limits))
    if fmt is SubtitleFormat.TXT:
        return _render_txt(result.segments)
    if fmt is SubtitleFormat.TSV:
        return _render_tsv(result.segments)
    if fmt is SubtitleFormat.JSON:
        return result.model_dump_json()
    assert_never(fmt)


def media_type(fmt: SubtitleFormat) -> str:
    """The HTTP media type of a rendered format."""
    if fmt is SubtitleFormat.SRT:
        return "application/x-subrip"
    if fmt is SubtitleFormat.VTT:
        return "text/vtt; charset=utf-8"
    if fmt is SubtitleFormat.TXT:
        return "text/plain; charset=utf-8"
    if fmt is SubtitleFormat.TSV:
        return "text/tab-separated-values; charset=utf-8"
    if fmt is SubtitleFormat.JSON:
        return "application/json"
    assert_never(fmt)
