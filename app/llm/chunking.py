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


def _pack_fitted(parts: list[str], max_tokens: int, levels: tuple[re.Pattern[str], ...]) -> list[str]:
    """Pack consecutive parts that fit; a part that does not fit is cut at the next finer
    boundary into chunks of its own, so chunk edges stay on the coarsest boundary possible."""
    chunks: list[str] = []
    fitting: list[str] = []
    for part in parts:
        if estimate_tokens(part) <= max_tokens:
            fitting.append(part)
            continue
        chunks.extend(pack(fitting, max_tokens))
        fitting = []
        chunks.extend(_cut(part, max_tokens, levels))
    chunks.extend(pack(fitting, max_tokens))
    return chunks


def _cut(text: str, max_tokens: int, levels: tuple[re.Pattern[str], ...]) -> list[str]:
    """Cut a too-long text at the coarsest boundary (sentence, clause, word) that splits it."""
    while levels:
        parts = _split(text, levels[0])
        levels = levels[1:]
        if len(parts) > 1:
            return _pack_fitted(parts, max_tokens, levels)
    return _hard_split(text, max_tokens)


def chunk_transcript(segments: Iterable[str], max_tokens: int) -> list[str]:
    """Chunks of at most ``max_tokens`` (estimated) of consecutive whole segments.

    A segment longer than a chunk is cut between sentences, then clauses, then words, and
    only as a last resort inside a word (scripts written without spaces).
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    texts = [_SPACE.sub(" ", segment).strip() for segment in segments]
    return _pack_fitted([text for text in texts if text], max_tokens, (_SENTENCE_END, _CLAUSE_END, _SPACE))
