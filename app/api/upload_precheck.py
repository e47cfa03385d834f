"""Refuse an upload before its body is spooled: admission first, then the model it asks for.

FastAPI parses a whole multipart form (spooling the file to a temporary file) before a route's
code runs, so the route's own checks come after the upload sits on disk. This ASGI middleware acts
when the route first reads its body, which is after routing and before any byte is read:

1. admission (queue depth, free disk of the media *and* the spool directory, memory): 503;
2. the text fields that come before the first file part (clients such as httpx, the OpenAI SDK
   and ``curl -F`` in the usual order send them first) and the query string are peeked at, and the
   model and engine they name are checked as the route would: 422 (400 on the OpenAI routes).

The peeked bytes are then handed to the route unchanged. A field that comes after the file is
checked by the route itself, after the upload, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import ProblemError, ProblemHTTPError
from app.api.routes.openai_audio import resolve_model
from app.container import Container
from app.errors import DomainError

logger = logging.getLogger(__name__)

PEEK_LIMIT_BYTES = 256 * 1024
"""At most this much of a body is read ahead looking for the fields before the file part."""

FIELD_LIMIT_BYTES = 4096
"""Longest field value kept while peeking (model names are short)."""

FieldCheck = Callable[[Container, Mapping[str, str]], None]


def _task_fields(container: Container, fields: Mapping[str, str]) -> None:
    container.tasks.check_model(fields.get("model") or None, fields.get("engine") or None)


def _openai_fields(container: Container, fields: Mapping[str, str]) -> None:
    if fields.get("model"):  # the route's own rule
        resolve_model(fields["model"], container.settings)


def _no_fields(container: Container, fields: Mapping[str, str]) -> None:
    return None


UPLOAD_CHECKS: dict[tuple[str, str], FieldCheck] = {
    ("POST", "/api/v1/tasks"): _task_fields,
    ("POST", "/api/v1/tasks/batch"): _task_fields,
    ("POST", "/api/whisper/tasks/create"): _task_fields,
    ("POST", "/v1/audio/transcriptions"): _openai_fields,
    ("POST", "/v1/audio/translations"): _openai_fields,
    ("POST", "/api/v1/media/extract-audio"): _no_fields,
    ("POST", "/api/whisper/extract_audio"): _no_fields,
    ("POST", "/api/v1/workflows/{workflow_id}/runs"): _no_fields,
    ("POST", "/api/v1/speakers"): _no_fields,
}
"""Upload routes that create work, by method and path template, and how their fields are checked."""


class _FieldPeek:
    """Text fields of a multipart body up to its first file part."""

    def __init__(self, boundary: bytes) -> None:
        self.fields: dict[str, str] = {}
        self.reached_file = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._value = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, data: bytes) -> None:
        if not self.reached_file:
            self._parser.write(data)

    def _part_begin(self) -> None:
        self._disposition = b""
        self._name = None
        self._value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" in options:
            self.reached_file = True
        elif b"name" in options:
            self._name = options[b"name"].decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name is not None and not self.reached_file and len(self._value) < FIELD_LIMIT_BYTES:
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._name is not None and not self.reached_file:
            self.fields.setdefault(self._name, self._value.decode("utf-8", "replace"))


def _boundary(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind, options = parse_options_header(value)
            if kind == b"multipart/form-data":
                boundary = options.get(b"boundary")
                return boundary if boundary else None
    return None


class UploadPrecheckMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        checked = False
        replay: list[Message] = []

        async def checking_receive() -> Message:
            nonlocal checked
            if not checked:
                checked = True
                route = scope.get("route")
                check = UPLOAD_CHECKS.get((scope["method"], getattr(route, "path", "")))
                if check is not None:
                    replay.extend(await _precheck(scope, receive, check))
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, checking_receive, send)


async def _precheck(scope: Scope, receive: Receive, check: FieldCheck) -> list[Message]:
    """Run the admission and field checks; the messages read ahead, to be replayed."""
    container: Container = scope["app"].state.container
    try:
        await container.admission.check()
    except (ProblemError, DomainError) as exc:
        raise ProblemHTTPError(exc) from exc
    except Exception:  # e.g. a lost database: the route's own checks answer it (503)
        logger.warning("upload precheck skipped: admission could not be checked", exc_info=True)
        return []
    fields = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    read: list[Message] = []
    boundary = _boundary(scope)
    if boundary is not None:
        peek = _FieldPeek(boundary)
        peeked = 0
        try:
            while not peek.reached_file and peeked < PEEK_LIMIT_BYTES:
                message = await receive()
                read.append(message)
                if message["type"] != "http.request":
                    break
                body: bytes = message.get("body", b"")
                peeked += len(body)
                peek.feed(body)
                if not message.get("more_body", False):
                    break
        except FormParserError:  # a malformed body: the route's own parser answers it
            return read
        fields.update(peek.fields)
    try:
        check(container, fields)
    except (ProblemError, DomainError) as exc:
        raise ProblemHTTPError(exc) from exc
    return read
