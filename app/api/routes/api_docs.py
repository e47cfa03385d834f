"""Swagger UI at ``/`` and ReDoc at ``/redoc``, served from assets the app ships (no CDN).

The JavaScript, CSS and favicon come from the ``fastapi-offline`` package (Swagger UI and ReDoc
bundles), mounted at :data:`STATIC_URL`, so the pages work on a host without internet access.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

STATIC_URL = "/docs/static"
STATIC_DIR = Path(str(files("fastapi_offline") / "static"))
"""``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js`` and ``favicon.png``."""

SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
"""No badge from the public validator.swagger.io."""

REDOCLY_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's sidebar footer always loads this image from Redocly's CDN; the page is served without it."""

router = APIRouter(tags=["docs"])


@cache
def _offline_redoc_js() -> bytes:
    """The bundled ReDoc script with its one hard-wired CDN image emptied (an ``<img>`` with an
    empty ``src`` requests nothing; ReDoc then drops it, keeping the "API docs by Redocly" text)."""
    script = (STATIC_DIR / "redoc.standalone.js").read_bytes()
    return script.replace(REDOCLY_LOGO_URL.encode(), b"")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get("/", include_in_schema=False)
async def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} · API",
        oauth2_redirect_url=f"{root}{app.swagger_ui_oauth2_redirect_url}",
        swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )


@router.get("/docs/oauth2-redirect", include_in_schema=False)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} · ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )


@router.get(f"{STATIC_URL}/redoc.standalone.js", include_in_schema=False)
async def redoc_js() -> Response:
    return Response(await run_in_threadpool(_offline_redoc_js), media_type="text/javascript; charset=utf-8")


def mount_api_docs(app: FastAPI) -> None:
    """Create the app with ``docs_url=None, redoc_url=None``; this adds the offline pages. The
    router goes first so its ReDoc script route wins over the static mount's file."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="api-docs-static")
