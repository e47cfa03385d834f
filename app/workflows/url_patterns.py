"""The URL patterns of ``link.submitted`` triggers: RE2 regexes (linear time) and globs.

``url_regex`` is compiled by RE2, whose matching time is linear in the URL whatever the pattern,
so a pattern such as ``(a+)+$`` cannot stall a node (Python's ``re`` backtracks exponentially on
it). RE2 has no backreferences or lookaround; such patterns are refused when the workflow is saved.
Both kinds of pattern are capped at :data:`MAX_URL_PATTERN_CHARS`.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from typing import Any

import re2

MAX_URL_PATTERN_CHARS = 1000
"""Longest ``url`` glob or ``url_regex`` a trigger may hold."""
MAX_PROGRAM_BYTES = 1 << 20
"""Memory RE2 may use for one compiled pattern (its default is 8 MiB): a pattern whose program needs
more is refused."""


class UrlPatternError(ValueError):
    """A pattern that cannot be used: too long, or not a regex RE2 accepts."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # refusals are reported to the caller, not on stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


def _check_length(pattern: str) -> None:
    if len(pattern) > MAX_URL_PATTERN_CHARS:
        raise UrlPatternError(f"the pattern is longer than {MAX_URL_PATTERN_CHARS} characters")


@lru_cache(maxsize=512)
def compile_url_regex(pattern: str) -> Any:
    """The compiled RE2 program of ``pattern``; :class:`UrlPatternError` says why when it has none."""
    _check_length(pattern)
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise UrlPatternError(
            f"not a regex this server accepts ({reason}); url_regex uses RE2 syntax: no "
            "backreferences or lookaround"
        ) from None


def check_url_glob(pattern: str) -> None:
    _check_length(pattern)


def regex_matches(pattern: str, url: str) -> bool:
    """Whether ``pattern`` is found in ``url`` (like ``re.search``), in time linear in ``url``."""
    return compile_url_regex(pattern).search(url) is not None


def glob_matches(pattern: str, url: str) -> bool:
    check_url_glob(pattern)
    return fnmatch.fnmatchcase(url, pattern)
