"""Chinese script conversion (Simplified / Traditional / Taiwan / Hong Kong) with OpenCC.

Conversion is phrase-level: OpenCC's dictionaries pick 头发 → 頭髮 but 发展 → 發展, which a
character table cannot. Engines (Whisper above all) mix scripts, so text is first brought to
Simplified (``t2s``) and then, for a Traditional target, converted from there; each target is
therefore reached from any mixture. Only text changes: timestamps, ids and scores are kept.
"""

from __future__ import annotations

from functools import cache

import opencc

from app.schemas.chinese import CHINESE_LANGUAGES, ChineseScript
from app.schemas.result import Segment, TranscriptionResult, Word

_STEPS: dict[ChineseScript, tuple[str, ...]] = {
    ChineseScript.simplified: ("t2s",),
    ChineseScript.traditional: ("t2s", "s2t"),
    ChineseScript.taiwan: ("t2s", "s2twp"),
    ChineseScript.hongkong: ("t2s", "s2hk"),
}
"""OpenCC configurations applied in turn for each target script."""

CHECK_CONFIG: dict[ChineseScript, str] = {
    ChineseScript.simplified: "t2s",
    ChineseScript.traditional: "s2t",
    ChineseScript.taiwan: "s2twp",
    ChineseScript.hongkong: "s2hk",
}
"""The one-step OpenCC configuration towards each script: text in that script is a fixed point of it."""


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def applies(language: str | None, script: ChineseScript | None) -> bool:
    """Whether output in ``language`` is converted for ``script``."""
    return (
        script is not None
        and script is not ChineseScript.original
        and language is not None
        and language.lower() in CHINESE_LANGUAGES
    )


def convert_text(text: str, script: ChineseScript) -> str:
    """``text`` in ``script`` (unchanged for ``original``)."""
    for config in _STEPS.get(script, ()):
        text = _converter(config).convert(text)
    return text


def residue(text: str, script: ChineseScript) -> str:
    """Characters of ``text`` that OpenCC would still change on the way to ``script`` (empty
    when the text is fully in that script)."""
    converted = _converter(CHECK_CONFIG[script]).convert(text)
    return "".join(sorted({a for a, b in zip(text, converted, strict=False) if a != b}))


def _convert_words(words: list[Word], script: ChineseScript) -> list[Word]:
    """Convert the words as one phrase-level text, split back by their lengths; when a phrase
    changed length (U盘 → 隨身碟), word by word instead."""
    joined = "".join(word.word for word in words)
    converted = convert_text(joined, script)
    if len(converted) != len(joined):
        return [word.model_copy(update={"word": convert_text(word.word, script)}) for word in words]
    out: list[Word] = []
    position = 0
    for word in words:
        end = position + len(word.word)
        out.append(word.model_copy(update={"word": converted[position:end]}))
        position = end
    return out


def convert_segment(segment: Segment, script: ChineseScript) -> Segment:
    update: dict[str, object] = {"text": convert_text(segment.text, script)}
    if segment.words:
        update["words"] = _convert_words(segment.words, script)
    return segment.model_copy(update=update)


def convert_result(result: TranscriptionResult, script: ChineseScript | None) -> TranscriptionResult:
    """``result`` with its text, segments and words in ``script`` when its language is Chinese;
    otherwise (or for ``original``) unchanged."""
    if script is None or not applies(result.language, script):
        return result
    return result.model_copy(
        update={
            "text": convert_text(result.text, script),
            "segments": [convert_segment(segment, script) for segment in result.segments],
        }
    )
