"""Per-caller cap on open live-event streams (SSE) and long polls (``?wait=N``).

Each open stream or waiting request holds one slot of its caller: the API key, or the client
address when auth is off. Past ``LIMITS__MAX_STREAMS_PER_KEY`` a new one gets 429 problem+json
with ``Retry-After``. Counts are per process (each node caps its own connections).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import PrincipalDep
from app.api.problems import ProblemError
from app.services.auth import ANONYMOUS, Principal

RETRY_AFTER_SECONDS = 5


class StreamSlots:
    def __init__(self, max_per_caller: int) -> None:
        self._max = max_per_caller
        """0: no cap."""
        self._open: Counter[str] = Counter()

    def open_count(self, caller: str) -> int:
        return self._open[caller]

    def acquire(self, caller: str) -> None:
        """Take one slot of ``caller``; 429 problem when all are held."""
        if self._max and self._open[caller] >= self._max:
            raise ProblemError(
                429,
                f"too many open event streams and long polls for this caller (limit {self._max}); "
                "close one or try again later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                limit="streams_per_key",
            )
        self._open[caller] += 1

    def release(self, caller: str) -> None:
        self._open[caller] -= 1
        if self._open[caller] <= 0:
            del self._open[caller]

    @asynccontextmanager
    async def hold(self, caller: str) -> AsyncIterator[None]:
        self.acquire(caller)
        try:
            yield
        finally:
            self.release(caller)


def caller_of(request: Request, principal: Principal) -> str:
    """Whose slots a request uses: its API key, else (auth off) its client address."""
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    if principal is ANONYMOUS:
        return f"client:{request.client.host if request.client else 'unknown'}"
    return f"admin:{principal.name}"


class StreamSlot:
    """One caller's slots, as a route sees them."""

    def __init__(self, slots: StreamSlots, caller: str) -> None:
        self.slots = slots
        self.caller = caller

    def hold(self) -> AbstractAsyncContextManager[None]:
        """Hold a slot for the ``async with`` block (a long poll); 429 when none is free."""
        return self.slots.hold(self.caller)

    def acquire(self) -> None:
        self.slots.acquire(self.caller)

    def release(self) -> None:
        self.slots.release(self.caller)


class SlotStreamingResponse(StreamingResponse):
    """A streaming response that gives its caller's slot back when it ends, fails or the client
    leaves. Take the slot (:meth:`StreamSlot.acquire`) right before building it."""

    def __init__(
        self,
        content: AsyncIterator[str],
        *,
        slot: StreamSlot,
        media_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()


def get_stream_slot(request: Request, principal: PrincipalDep) -> StreamSlot:
    slots: StreamSlots = request.app.state.stream_slots
    return StreamSlot(slots, caller_of(request, principal))


StreamSlotDep = Annotated[StreamSlot, Depends(get_stream_slot)]
"""The caller's stream slots: hold one while a long poll waits or an event stream is open."""
