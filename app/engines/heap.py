"""Handing freed heap memory back to the operating system.

CTranslate2 allocates a window's activations with ``malloc`` from the thread that decodes it,
and glibc keeps what is freed in that thread's arena for reuse. A model instance with two
workers (the express lane) then holds two sets of activations at rest: 48 MiB more for
``base`` than one worker, after a single transcription on each. ``malloc_trim`` returns the
free pages of every arena; the pool calls it when its last lease ends (``bench/memory.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

logger = logging.getLogger(__name__)


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows): nothing to trim
        return None
    return libc


def trim_heap() -> bool:
    """Return the free memory of the C heap to the operating system (blocking: a few
    milliseconds). ``False`` where the C library has no ``malloc_trim``."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
