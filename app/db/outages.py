"""Ride out a database outage: recognise lost connections and retry them for a bounded time.

Conflicts (deadlocks) are retried inside the repository (``app.db.conflicts``). A lost or
refused connection is different: the server is restarting or unreachable, and the right move
is to wait for it, for as long as the work is worth, instead of failing the task. With
``pool_pre_ping`` each retry starts on a fresh connection once the server is back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_MYSQL_DISCONNECTS = {
    1053,  # server shutdown in progress
    1927,  # connection was killed
    2002,  # can't connect through socket
    2003,  # can't connect to server
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection (system error)
    4031,  # disconnected by the server because of inactivity
}
_POSTGRES_DISCONNECT_CLASSES = ("08", "57P")  # connection exception; operator intervention (shutdown)


def is_disconnect(exc: BaseException) -> bool:
    """True when ``exc`` means the database connection is gone or cannot be made."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        original = exc.orig
        args = getattr(original, "args", ())
        if args and isinstance(args[0], int) and args[0] in _MYSQL_DISCONNECTS:
            return True
        code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if isinstance(code, str) and code.startswith(_POSTGRES_DISCONNECT_CLASSES):
            return True
        return isinstance(original, OSError) or "connection" in type(original).__name__.lower()
    # Drivers raise plain socket errors while (re)connecting.
    return isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, OSError) and exc.errno is not None and not isinstance(exc, FileNotFoundError)
    )


def _log_wait(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    logger.warning(
        "database unavailable (%s: %s); retry %d after %.1fs",
        type(error).__name__ if error else "?",
        str(error).splitlines()[0][:200] if error else "",
        state.attempt_number,
        state.seconds_since_start or 0.0,
    )


async def through_outage(
    budget_seconds: float, function: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Await ``function(*args, **kwargs)``, retrying lost connections for up to ``budget_seconds``.

    Only for idempotent calls: a fenced write (``TaskRepository.update_owned``) is, since a
    replay sets the same values under the same fencing token.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_disconnect),
        stop=stop_after_delay(budget_seconds),
        wait=wait_exponential_jitter(multiplier=0.25, max=2.0, jitter=0.25),
        before_sleep=_log_wait,
        reraise=True,
    )
    result: R = await retrying(function, *args, **kwargs)
    return result
