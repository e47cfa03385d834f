"""App-wide API key enforcement: one ASGI middleware in front of every route, mount and router.

It covers routes added by any router (and mounted sub-apps) without per-route code; only the
small allowlist below is public. The resolved principal goes to ``request.state.principal`` and
to :data:`app.services.auth.current_principal` for the services.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import PROBLEM_MEDIA_TYPE
from app.services.auth import AuthService, Principal, current_principal

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset(
    {"/", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/api/v1/health", "/dashboard"}
)
"""Answer without a key: liveness, the API documentation and the dashboard's page (a static shell
that holds no data; its script asks for a key and sends it with every API call)."""

PUBLIC_PREFIXES = ("/internal/v1/", "/dashboard/static/", "/docs/static/")
"""Node-to-node routes, which check the shared peer secret themselves, and the dashboard's static
assets (CSS, JS; files of ``app/dashboard/static`` only), and the API documentation pages'
assets (Swagger UI, ReDoc)."""


def is_public(path: str) -> bool:
    normalized = path.rstrip("/") or "/"
    return normalized in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        auth: AuthService = scope["app"].state.container.auth
        principal: Principal | None
        if is_public(scope["path"]):
            principal = None
        else:
            try:
                principal = await auth.authenticate(presented_key(scope["headers"]))
            except Exception:
                logger.exception("API key lookup failed")
                await _problem(scope, send, 503, "the API key could not be checked; try again")
                return
            if principal is None:
                await _problem(
                    scope,
                    send,
                    401,
                    "a valid API key is required (Authorization: Bearer <key> or X-API-Key: <key>)",
                )
                return
        scope.setdefault("state", {})["principal"] = principal
        token = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(token)


async def _problem(scope: Scope, send: Send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008 if status == 401 else 1011, "reason": detail})
        return
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": scope["path"],
    }
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tingxie"'))
    else:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def document_security(app: FastAPI) -> None:
    """Declare the two key headers in the OpenAPI schema (Swagger UI's Authorize button);
    public operations are marked as needing none."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API key. / API 密钥。"},
            "apiKeyHeader": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "API key. / API 密钥。",
            },
        }
        schema["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
        for path, operations in schema.get("paths", {}).items():
            if is_public(path):
                for operation in operations.values():
                    operation["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
