"""Request body limits: a small one for JSON (and every other non-upload route), the upload limit
for routes that take a multipart form.

An ASGI middleware in front of the routes answers 413 problem+json before anything is parsed:
at once when ``Content-Length`` declares too much, and as soon as the bytes counted from a streamed
(chunked) body pass the limit, so an oversized body is never held in memory nor spooled to disk.
Which routes are upload routes is read from the matched route (a form body), not from the
request's ``Content-Type``: a multipart body sent to a JSON route gets the JSON limit.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from fastapi import params
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_MEDIA_TYPE


class BodyTooLargeError(HTTPException):
    """A request body passed its limit; rendered as 413 problem+json by the app's handlers."""

    def __init__(self, limit: int) -> None:
        # Close the connection after the answer: the rest of the body is never read.
        super().__init__(
            413,
            f"the request body exceeds the limit of {limit} bytes for this route",
            headers={"Connection": "close"},
        )
        self.limit = limit


def is_upload_route(route: APIRoute) -> bool:
    """Whether ``route`` reads a form body (multipart uploads)."""
    return route.body_field is not None and isinstance(route.body_field.field_info, params.Form)


class BodyLimitMiddleware:
    """Enforces ``json_limit`` on every route except form routes, which get ``upload_limit``.

    The route is known once the router has matched it (``scope["route"]``), which is before the
    route reads its first byte: the limit is chosen at the first ``receive``. A declared length
    over both limits is refused before the request goes any further.
    """

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self._json_limit = json_limit
        self._upload_limit = upload_limit

    def _limit_for(self, scope: Scope) -> int:
        route = scope.get("route")
        if isinstance(route, APIRoute) and is_upload_route(route):
            return self._upload_limit
        return self._json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > max(self._json_limit, self._upload_limit):
            await _send_problem(scope, send, BodyTooLargeError(min(self._json_limit, self._upload_limit)))
            return
        limit: int | None = None
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal limit, received
            if limit is None:
                limit = self._limit_for(scope)
                if declared is not None and declared > limit:
                    raise BodyTooLargeError(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as exc:
            # Normally the app's handlers answer it; this covers a body read outside a route.
            if started:
                raise
            await _send_problem(scope, send, exc)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_problem(scope: Scope, send: Send, exc: BodyTooLargeError) -> None:
    body = {
        "type": "about:blank",
        "title": HTTPStatus.REQUEST_ENTITY_TOO_LARGE.phrase,
        "status": 413,
        "detail": exc.detail,
        "instance": scope["path"],
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
