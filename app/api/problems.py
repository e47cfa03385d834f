"""RFC 9457 problem details for every error response: the one place where errors meet HTTP.

The services raise domain errors (:mod:`app.errors`); :data:`STATUS_OF` gives each kind its status.
The API layer itself raises :class:`ProblemError` with a status of its own choosing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db.outages import is_disconnect
from app.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Gone,
    Invalid,
    NotFound,
    RateLimited,
    TooLarge,
    Unavailable,
    Unsupported,
    UpstreamFailed,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5

STATUS_OF: dict[type[DomainError], int] = {
    BadRequest: 400,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    Unsupported: 415,
    Invalid: 422,
    RateLimited: 429,
    UpstreamFailed: 502,
    Unavailable: 503,
}
"""The HTTP status of each kind of domain error."""


class ProblemError(Exception):
    """Raise to answer with a problem+json body: the API layer's own errors (401, 403, ...)."""

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

    @classmethod
    def of(cls, error: DomainError) -> ProblemError:
        """The problem that answers a domain error (its kind's status; the rest as it is)."""
        status = next(STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF)
        return cls(status, error.detail, title=error.title, headers=error.headers, **error.extra)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(jsonable_encoder(extra))
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


class ProblemHTTPError(StarletteHTTPException):
    """A :class:`ProblemError` raised where FastAPI lets only HTTP exceptions through (while a
    route reads its body); rendered exactly like the problem it carries."""

    def __init__(self, error: ProblemError | DomainError) -> None:
        problem = error if isinstance(error, ProblemError) else ProblemError.of(error)
        super().__init__(problem.status, problem.detail, headers=problem.headers)
        self.problem = problem


async def _problem_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemHTTPError)
    return await _problem_error(request, exc.problem)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return await _problem_error(request, ProblemError.of(exc))


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, exc.status_code, detail, headers=headers)


def validation_summary(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary of a validation error and its errors as plain dicts (loc, msg, type)."""
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return summary or "invalid request", errors


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    summary, errors = validation_summary(exc)
    return problem_response(request, 422, summary, errors=errors)


class ProblemRenderingRoute(APIRoute):
    """A route class whose client errors are rendered by :meth:`render_problem` instead of the
    app's problem+json handlers: for API styles that wrap errors in their own shape."""

    def render_problem(
        self,
        request: Request,
        status: int,
        detail: str,
        *,
        title: str | None,
        headers: dict[str, str] | None,
        extra: dict[str, Any],
    ) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (ProblemError, ProblemHTTPError, DomainError) as caught:
                if isinstance(caught, ProblemHTTPError):
                    exc = caught.problem
                elif isinstance(caught, DomainError):
                    exc = ProblemError.of(caught)
                else:
                    exc = caught
                return self.render_problem(
                    request, exc.status, exc.detail, title=exc.title, headers=exc.headers, extra=exc.extra
                )
            except RequestValidationError as exc:
                summary, errors = validation_summary(exc)
                return self.render_problem(
                    request, 422, summary, title=None, headers=None, extra={"errors": errors}
                )
            except StarletteHTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
                headers = dict(exc.headers) if exc.headers else None
                return self.render_problem(
                    request, exc.status_code, detail, title=None, headers=headers, extra={}
                )

        return route_handler


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A lost database answers 503 + Retry-After; any other database error is a 500."""
    if is_disconnect(exc):
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            request,
            503,
            "the database is unavailable; try again shortly",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return await _unhandled_error(request, exc)


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "internal server error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(ProblemHTTPError, _problem_http_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    # Some drivers (asyncpg) raise the socket error itself when they cannot connect.
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(Exception, _unhandled_error)


PROBLEM_SCHEMA: dict[str, Any] = {
    "content": {
        PROBLEM_MEDIA_TYPE: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
            }
        }
    }
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    return {
        status: {"description": f"{HTTPStatus(status).phrase} (problem+json)", **PROBLEM_SCHEMA}
        for status in statuses
    }
