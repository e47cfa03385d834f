"""In-process signal that a task has finished, for long-polling clients."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress


class TaskEvents:
    """Wakes waiters when a task on this node finishes.

    Tasks finished by other nodes are not signalled here; waiters bound each wait so
    they re-read the database periodically.
    """

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(task_id)`` whenever a task on this node finishes."""
        self._listeners.append(listener)

    def finished(self, task_id: str) -> None:
        for listener in self._listeners:
            listener(task_id)
        for event in self._waiters.pop(task_id, set()):
            event.set()

    async def wait(self, task_id: str, timeout: float) -> None:
        """Return when ``task_id`` finishes here or ``timeout`` seconds pass."""
        event = asyncio.Event()
        self._waiters[task_id].add(event)
        try:
            with suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[task_id]
