"""Chinese script choices and the language tags that imply one."""

from __future__ import annotations

from enum import StrEnum


class ChineseScript(StrEnum):
    """Script of Chinese output. / 中文输出的字形。"""

    original = "original"
    """As the engine wrote it (Whisper mixes Simplified and Traditional)."""
    simplified = "simplified"
    traditional = "traditional"
    """OpenCC standard Traditional characters."""
    taiwan = "taiwan"
    """Traditional with Taiwan variants and phrases (软件 → 軟體)."""
    hongkong = "hongkong"
    """Traditional with Hong Kong variants."""


CHINESE_LANGUAGES = frozenset({"zh", "yue"})
"""Language codes whose output the script option converts: Mandarin and Cantonese."""

LANGUAGE_TAGS: dict[str, ChineseScript] = {
    "zh-hans": ChineseScript.simplified,
    "zh-cn": ChineseScript.simplified,
    "zh-sg": ChineseScript.simplified,
    "zh-hant": ChineseScript.taiwan,
    "zh-tw": ChineseScript.taiwan,
    "zh-hk": ChineseScript.hongkong,
    "zh-mo": ChineseScript.hongkong,
}
"""Language tags (compared lower-case, ``_`` read as ``-``) that mean ``zh`` plus a script."""


def split_language_tag(language: str) -> tuple[str, ChineseScript | None]:
    """``zh-Hans`` → ``("zh", simplified)``; any other code comes back unchanged with ``None``."""
    script = LANGUAGE_TAGS.get(language.strip().lower().replace("_", "-"))
    return ("zh", script) if script is not None else (language, None)
