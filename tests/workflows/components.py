"""Custom workflow components used by the tests (registered by module path)."""

from __future__ import annotations

import asyncio
from typing import Any

CALLS: list[dict[str, Any]] = []
"""Every call of :func:`word_stats` in this process."""


def word_stats(text: str, top: int = 3) -> dict[str, Any]:
    """Count words and list the longest ones."""
    CALLS.append({"text": text, "top": top})
    words = [word.strip(".,!?;:").lower() for word in text.split()]
    longest = sorted({word for word in words if word}, key=lambda word: (-len(word), word))[:top]
    return {"words": len(words), "longest": longest}


word_stats.outputs = ("words", "longest")  # type: ignore[attr-defined]


async def shout(text: str) -> dict[str, str]:
    """Upper-case the text (an async component)."""
    await asyncio.sleep(0)
    return {"loud": text.upper()}


shout.outputs = ("loud",)  # type: ignore[attr-defined]


def no_outputs(text: str) -> dict[str, str]:
    return {"text": text}


NOT_CALLABLE = 42
