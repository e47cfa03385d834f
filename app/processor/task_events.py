"""In-process signals that a task changed (claimed, progressed, finished), for waiting clients."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


class TaskEvents:
    """Wakes waiters when a task on this node changes or finishes.

    Changes made by other nodes are not signalled here; waiters bound each wait so
    they re-read the database periodically.
    """

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._finish_listeners: list[Callable[[str], None]] = []
        self._closing = False

    @property
    def closing(self) -> bool:
        """The server is shutting down: waiters stop waiting and answer with what they have."""
        return self._closing

    def close(self) -> None:
        """Wake every waiter and subscriber for good (shutdown): long polls answer at once and
        live-event streams end, so that open connections do not hold the server up."""
        self._closing = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def on_finished(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(task_id)`` whenever a task on this node finishes (e.g. to send its callback)."""
        self._finish_listeners.append(listener)

    def changed(self, task_id: str) -> None:
        """The task's row changed (status or progress): wake its waiters and subscribers."""
        for event in self._waiters.get(task_id, ()):
            event.set()

    def finished(self, task_id: str) -> None:
        for listener in self._finish_listeners:
            listener(task_id)
        self.changed(task_id)

    @contextmanager
    def subscribe(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set at each change of ``task_id`` until the block exits; clear it before
        each read so no change between the read and the next wait is missed."""
        event = asyncio.Event()
        self._waiters[task_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[task_id]

    async def wait(self, task_id: str, timeout: float) -> None:
        """Return when ``task_id`` changes here or ``timeout`` seconds pass."""
        if self._closing:
            return
        with self.subscribe(task_id) as event, suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
