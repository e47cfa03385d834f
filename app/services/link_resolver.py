"""Runs yt-dlp resolutions in a bounded thread pool of their own, with a per-API-key limit.

yt-dlp is blocking and can take long (slow or trickling pages). Run in the event loop's
default executor, a handful of slow links would hold every thread that DNS lookups, media
probing and the disk check need, stalling unrelated requests; and ``wait_for`` cannot stop a
thread, so a timed-out resolution ran on. Here resolutions get their own ``resolve_workers``
threads, each one carries a :class:`~app.net.ytdlp_guard.ResolveBudget` (deadline and cancel
flag) that makes yt-dlp stop making requests once its time is up, and one API key may have at
most ``max_concurrent_per_key`` resolutions running (or queued) at once; more get 429. A key's
slot is freed when its resolution has really ended, not when the request gave up waiting.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.errors import RateLimited
from app.net.ytdlp_guard import ResolveBudget
from app.services.auth import current_principal

T = TypeVar("T")


class LinkResolver:
    def __init__(self, *, workers: int, max_concurrent_per_key: int, retry_after_seconds: int = 5) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yt-dlp")
        self._max_per_key = max_concurrent_per_key
        self._retry_after = retry_after_seconds
        self._lock = threading.Lock()  # slots are freed from the worker threads
        self._running: dict[str, int] = {}
        self._budgets: set[ResolveBudget] = set()

    def running(self, key: str) -> int:
        """Resolutions of ``key`` running or queued now."""
        with self._lock:
            return self._running.get(key, 0)

    async def run(self, resolve: Callable[[ResolveBudget], T], *, timeout: float) -> T:
        """``resolve(budget)`` in the pool; raises ``TimeoutError`` after ``timeout`` seconds (and
        cancels the budget, so yt-dlp stops at its next request) and 429 past the caller's limit.

        The caller is the API key of the current request; work started outside a request
        (workflow runs) has no per-key limit, only the pool's size.
        """
        principal = current_principal.get()
        key = (principal.key_id or principal.name) if principal is not None else None
        budget = ResolveBudget(timeout)
        self._acquire(key, budget)
        try:
            future = self._executor.submit(resolve, budget)
        except BaseException:
            self._release(key, budget)
            raise
        future.add_done_callback(lambda _done: self._release(key, budget))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except BaseException:
            budget.cancel()  # a queued resolution is dropped with the future; a running one stops
            raise

    def _acquire(self, key: str | None, budget: ResolveBudget) -> None:
        with self._lock:
            if key is None:
                self._budgets.add(budget)
                return
            running = self._running.get(key, 0)
            if self._max_per_key and running >= self._max_per_key:
                raise RateLimited(
                    f"this API key already has {running} media link(s) resolving, the most allowed "
                    f"at once ({self._max_per_key}); try again when one has finished",
                    title="Too many media links at once",
                    headers={"Retry-After": str(self._retry_after)},
                )
            self._running[key] = running + 1
            self._budgets.add(budget)

    def _release(self, key: str | None, budget: ResolveBudget) -> None:
        with self._lock:
            self._budgets.discard(budget)
            if key is None:
                return
            left = self._running.get(key, 0) - 1
            if left > 0:
                self._running[key] = left
            else:
                self._running.pop(key, None)

    def close(self) -> None:
        """Stop every resolution at its next request and drop the queued ones (no waiting)."""
        with self._lock:
            budgets = list(self._budgets)
        for budget in budgets:
            budget.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
