"""Freed heap memory goes back to the system when the pool is idle (``app.engines.heap``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import pytest

from app.engines.heap import trim_heap


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1])


def test_trim_returns_freed_heap_memory() -> None:
    """Memory freed by another thread stays in that thread's glibc arena until trimmed."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "malloc_trim"):
        pytest.skip("the C library has no malloc_trim (not glibc)")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def churn() -> None:
        # Many blocks under the mmap threshold, so they come from the thread's arena; all but
        # the last one freed, so the arena cannot shrink from its top by itself.
        blocks = [libc.malloc(64 * 1024) for _ in range(2000)]
        for block in blocks:
            ctypes.memset(block, 1, 64 * 1024)  # resident
        for block in blocks[:-1]:
            libc.free(block)

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = _rss()
    assert trim_heap()
    released = before - _rss()
    assert released * 4096 > 50 * 2**20, f"only {released * 4096 / 2**20:.0f} MiB went back"
