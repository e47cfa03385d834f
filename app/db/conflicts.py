"""Retry transactions that lost a lock conflict (deadlock or serialization failure)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

P = ParamSpec("P")
R = TypeVar("R")

_MYSQL_CONFLICTS = {1213, 1205}  # deadlock, lock wait timeout
_POSTGRES_CONFLICTS = {"40P01", "40001"}  # deadlock_detected, serialization_failure


def is_conflict(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CONFLICTS:
        return True
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return code in _POSTGRES_CONFLICTS or "deadlock" in str(original).lower()


def retry_on_conflict(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Re-run the whole transaction a few times with jittered backoff when it lost a conflict."""
    wrapped: Callable[P, Awaitable[R]] = retry(
        retry=retry_if_exception(is_conflict),
        stop=stop_after_attempt(8),
        wait=wait_random_exponential(multiplier=0.005, max=0.2),
        reraise=True,
    )(function)
    return wrapped
