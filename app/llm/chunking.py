"""Deterministic token estimate and chunking of transcripts on segment and sentence boundaries."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

CHARS_PER_TOKEN = 4
"""Characters per token for alphabetic scripts; each CJK/kana/hangul character counts as one token."""

_WIDE = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？…])\s*")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：、])\s*")
_SPACE = re.compile(r"\s+")


def estimate_tokens(text: str) -> int:
    """Rough token count: one per wide (CJK) character, one per 4 other characters."""
    wide = len(_WIDE.findall(text))
    return wide + math.ceil((len(text) - wide) / CHARS_PER_TOKEN)


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [part.strip() for part in pattern.split(text) if part.strip()]


def _hard_split(text: str, max_tokens: int) -> list[str]:
    """Split text without usable separators into pieces of at most ``max_tokens``."""
    pieces: list[str] = []
    start = wide = narrow = 0
    for index, char in enumerate(text):
        is_wide = _WIDE.match(char) is not None
        next_wide, next_narrow = wide + is_wide, narrow + (not is_wide)
        if index > start and next_wide + math.ceil(next_narrow / CHARS_PER_TOKEN) > max_tokens:
            pieces.append(text[start:index])
            start, next_wide, next_narrow = index, int(is_wide), int(not is_wide)
        wide, narrow = next_wide, next_narrow
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _fit(text: str, max_tokens: int, levels: tuple[re.Pattern[str], ...]) -> list[str]:
    """Break ``text`` at the coarsest boundary (sentence, clause, word) until each piece fits."""
    if estimate_tokens(text) <= max_tokens:
        return [text]
    if not levels:
        return _hard_split(text, max_tokens)
    parts = _split(text, levels[0])
    if len(parts) <= 1:
        return _fit(text, max_tokens, levels[1:])
    return [piece for part in parts for piece in _fit(part, max_tokens, levels[1:])]


def pack(pieces: Iterable[str], max_tokens: int, *, separator: str = " ") -> list[str]:
    """Greedily join consecutive pieces while the estimate stays within ``max_tokens``."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{separator}{piece}" if current else piece
        if current and estimate_tokens(candidate) > max_tokens:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def chunk_transcript(segments: Iterable[str], max_tokens: int) -> list[str]:
    """Chunks of at most ``max_tokens`` (estimated), cut between segments where possible.

    A segment longer than a chunk is cut between sentences, then clauses, then words, and
    only as a last resort inside a word (scripts written without spaces).
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    pieces: list[str] = []
    for segment in segments:
        text = _SPACE.sub(" ", segment).strip()
        if text:
            pieces.extend(_fit(text, max_tokens, (_SENTENCE_END, _CLAUSE_END, _SPACE)))
    return pack(pieces, max_tokens)
