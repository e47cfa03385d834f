"""Errors that carry an HTTP status; rendered as RFC 9457 problem details by the API layer."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ProblemError(Exception):
    """Raise to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra
