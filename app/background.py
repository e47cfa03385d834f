"""BackgroundLoop: how a component runs its work in the background, from ``start`` to ``stop``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

Step = Callable[[], Awaitable[bool | None]]
"""One round of a loop's work; ``True`` when more is ready at once (no wait before the next)."""


class BackgroundLoop:
    """Runs ``step`` again and again as one named asyncio task, between ``start`` and ``stop``.

    After a step the loop waits ``interval`` seconds, or less when ``wake`` is called; a step that
    returns ``True`` is followed by the next at once. ``wait_first`` waits once before the first
    step. A step that raises is logged (``failure``, on ``log``) and the loop goes on; ``stop``
    cancels the task and waits until it has ended.
    """

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        interval: float,
        failure: str,
        log: logging.Logger,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._failure = failure
        self._log = log
        self._wait_first = wait_first
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Run the next step now instead of after the rest of the wait."""
        self._wake.set()

    async def _run(self) -> None:
        if self._wait_first:
            await self._pause()
        while True:
            self._wake.clear()
            try:
                again = await self._step()
            except Exception:
                self._log.exception(self._failure)
                again = False
            if not again:
                await self._pause()

    async def _pause(self) -> None:
        # asyncio.timeout, unlike wait_for on 3.11, never swallows a cancellation.
        with suppress(TimeoutError):
            async with asyncio.timeout(self.interval):
                await self._wake.wait()
