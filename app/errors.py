"""Domain errors: what the services refuse, and why, in their own words.

They know nothing of HTTP. ``app/api/problems.py`` alone maps each kind to its status and renders
it as RFC 9457 problem details; a workflow step or the CLI reads the same ``detail``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused request. ``detail`` says why; ``title`` replaces the kind's generic title;
    ``headers`` (such as ``Retry-After``) and ``extra`` (members of the answer, such as
    ``task_status``) travel with it to the API layer."""

    def __init__(
        self,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.title = title
        self.headers = headers
        self.extra = extra


class BadRequest(DomainError):
    """The request is malformed (an empty file, a header that cannot be read)."""


class NotFound(DomainError):
    """No such thing, or it belongs to another API key."""


class Conflict(DomainError):
    """The thing is in a state that does not allow this (cancel a finished task)."""


class Gone(DomainError):
    """It existed, but is no longer kept (a task's media after retention)."""


class TooLarge(DomainError):
    """Over a size or duration limit."""


class Unsupported(DomainError):
    """The content is of a kind that cannot be processed (not audio or video)."""


class Invalid(DomainError):
    """Well-formed, but not acceptable (a model outside the allowlist, a blocked URL)."""


class UpstreamFailed(DomainError):
    """A service we depend on (a media site, the LLM API) failed."""


class Unavailable(DomainError):
    """Refused for now; try again later (backpressure, a node without the feature)."""


class RateLimited(DomainError):
    """This caller has too much under way already; try again when some of it has finished."""
