"""API keys: app-wide enforcement, key management, the CLI and per-key task visibility."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app import cli
from app.api.auth import is_public
from config.settings import Settings
from tests.conftest import Clip, RunningApp, upload
from tests.ops_support import app_for, settings_in

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN_KEY = "bootstrap-admin-key-for-tests-0123456789"
PEER_SECRET = "peer-secret-for-tests"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    return settings_in(
        tmp_path_factory.mktemp("auth"),
        model_dir,
        auth={"enabled": True, "admin_key": ADMIN_KEY},
        storage={"peer_secret": PEER_SECRET},
    )


def _later_routes(app: FastAPI, static_dir: Path) -> None:
    """Routes added after the app was built, as other routers will be: enforcement must cover them."""
    extra = APIRouter(prefix="/v1/extra", tags=["extra"])

    @extra.get("/thing/{thing_id}", summary="Extra / 额外")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.include_router(extra)
    app.mount("/extra-static", StaticFiles(directory=static_dir), name="extra-static")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningApp]:
    # role="api": no processor, so created tasks stay queued and no model is loaded.
    app = app_for(settings, role="api")
    static_dir = tmp_path_factory.mktemp("static")
    (static_dir / "index.html").write_text("hello")
    _later_routes(app, static_dir)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tingxie.test") as client:
            yield RunningApp(app=app, client=client)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = _bearer(ADMIN_KEY)


def _assert_401(response: httpx.Response, where: str) -> None:
    assert response.status_code == 401, f"{where}: {response.status_code} {response.text[:200]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    assert response.headers["www-authenticate"].startswith("Bearer"), where
    assert response.json()["status"] == 401, where


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, set[str]]]:
    """(path, methods) of every route, descending into included routers (FastAPI may keep them
    as lazy ``_IncludedRouter`` entries) and mounts."""
    found: list[tuple[str, set[str]]] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "")
            found += _walk(included.routes, prefix + context_prefix)
        elif isinstance(route, Mount):
            found.append((prefix + route.path + "/index.html", {"GET"}))
        elif isinstance(route, APIRoute | Route):
            found.append((prefix + _concrete(route.path), set(route.methods or {"GET"})))
        else:
            raise AssertionError(f"unexpected route type {route!r}")
    return found


async def test_every_non_public_route_answers_401_without_a_valid_key(api: RunningApp) -> None:
    checked: set[str] = set()
    for path, methods in _walk(api.app.routes):
        if is_public(path):
            continue
        for method in sorted(methods - {"HEAD"}):
            for headers in (
                {},
                _bearer("tx_not-a-key"),
                {"X-API-Key": "wrong"},
                {"Authorization": "Basic x"},
            ):
                response = await api.client.request(method, path, headers=headers)
                _assert_401(response, f"{method} {path} {headers}")
            checked.add(f"{method} {path}")
    # tasks (9), keys (3), models (3), workers, the later router and the mount
    assert {"POST /api/v1/tasks/x/cancel", "GET /v1/extra/thing/x", "GET /extra-static/index.html"} <= checked
    assert len(checked) >= 18  # tasks, keys, models, workers, the later router and the mount
    # The allowlist is small and exact: a path under a public one is not public.
    assert not is_public("/api/v1/health/extra") and not is_public("/openapi.json/x")
    # The dashboard: its page and static assets only.
    assert is_public("/dashboard/") and is_public("/dashboard/static/dashboard.css")
    assert not any(
        map(is_public, ("/dashboard/x", "/dashboardx", "/dashboard/static", "/dashboard/staticx/a"))
    )


async def test_public_paths_answer_without_a_key(api: RunningApp) -> None:
    for path in (
        "/api/v1/health",
        "/",
        "/redoc",
        "/openapi.json",
        "/docs/oauth2-redirect",
        "/dashboard",
        "/dashboard/static/dashboard.js",
    ):
        response = await api.client.get(path)
        assert response.status_code == 200, path
    # The dashboard's public static mount serves its own files, nothing from outside it.
    escape = await api.client.get("/dashboard/static/%2e%2e/%2e%2e/%2e%2e/config/settings.py")
    assert escape.status_code == 404, escape.text[:200]
    spec = (await api.client.get("/openapi.json")).json()
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    assert spec["paths"]["/api/v1/health"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/api/v1/tasks"]["get"]  # the global requirement applies
    # The peer route keeps its own secret: no API key needed, the peer secret decides.
    missing = await api.client.get("/internal/v1/media/nothing", headers=_bearer(PEER_SECRET))
    assert missing.status_code == 404
    wrong = await api.client.get("/internal/v1/media/nothing", headers=ADMIN)
    assert wrong.status_code == 401


async def test_key_management_by_admin_only(api: RunningApp) -> None:
    client = api.client
    created = await client.post("/api/v1/keys", json={"name": "alice"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    alice = created.json()
    assert alice["key"].startswith("tx_") and len(alice["key"]) > 40
    assert alice["key"].startswith(alice["prefix"]) and not alice["is_admin"]

    # Both header forms work; the later router sees the key too.
    assert (await client.get("/v1/extra/thing/1", headers=_bearer(alice["key"]))).status_code == 200
    assert (await client.get("/api/v1/tasks", headers={"X-API-Key": alice["key"]})).status_code == 200

    # Listing never shows the key; only its hash is stored.
    listing = await client.get("/api/v1/keys", headers=ADMIN)
    assert listing.status_code == 200
    entry = next(item for item in listing.json() if item["id"] == alice["id"])
    assert "key" not in entry and entry["last_used_at"] is not None
    async with api.container.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM api_keys"))).mappings().all()
    stored = next(row for row in rows if row["id"] == alice["id"])
    assert stored["key_hash"] == hashlib.sha256(alice["key"].encode()).hexdigest()
    assert all(alice["key"] not in str(value) for row in rows for value in row.values())

    # A non-admin key cannot manage keys.
    for method, path in (
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("DELETE", f"/api/v1/keys/{alice['id']}"),
    ):
        forbidden = await client.request(method, path, headers=_bearer(alice["key"]), json={"name": "x"})
        assert forbidden.status_code == 403, (method, path)

    # Revocation is immediate.
    assert (await client.delete(f"/api/v1/keys/{alice['id']}", headers=ADMIN)).status_code == 204
    _assert_401(await client.get("/api/v1/tasks", headers=_bearer(alice["key"])), "revoked")
    assert (await client.delete("/api/v1/keys/nope", headers=ADMIN)).status_code == 404
    revoked = (await client.get("/api/v1/keys", params={"include_revoked": "true"}, headers=ADMIN)).json()
    assert next(item for item in revoked if item["id"] == alice["id"])["revoked_at"] is not None


async def test_cli_creates_an_admin_key_in_the_configured_database(
    api: RunningApp, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(cli.main, ["keys", "create", "--name", "ops", "--admin"], settings)
    assert code == 0
    key = re.search(r"^key:\s+(\S+)$", capsys.readouterr().out, re.MULTILINE)
    assert key is not None
    listing = await api.client.get("/api/v1/keys", headers=_bearer(key.group(1)))
    assert listing.status_code == 200
    assert any(item["name"] == "ops" and item["is_admin"] for item in listing.json())
    await asyncio.to_thread(cli.main, ["keys", "list"], settings)
    assert "ops" in capsys.readouterr().out


async def _key(client: httpx.AsyncClient, name: str, *, admin: bool = False) -> dict[str, str]:
    response = await client.post("/api/v1/keys", json={"name": name, "is_admin": admin}, headers=ADMIN)
    assert response.status_code == 201
    return _bearer(response.json()["key"])


async def test_a_task_is_visible_only_to_its_key_and_admins(api: RunningApp, clips: dict[str, Clip]) -> None:
    client = api.client
    owner, other, admin = (
        await _key(client, "owner"),
        await _key(client, "other"),
        await _key(client, "admin2", admin=True),
    )
    path = clips["jfk.flac"].path
    with path.open("rb") as handle:
        created = await client.post("/api/v1/tasks", files={"file": (path.name, handle)}, headers=owner)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    def ids(page: Any) -> set[str]:
        return {item["id"] for item in page["items"]}

    assert task_id in ids((await client.get("/api/v1/tasks", headers=owner)).json())
    assert task_id not in ids((await client.get("/api/v1/tasks", headers=other)).json())
    assert (await client.get("/api/v1/tasks", headers=other)).json()["total"] == 0
    for headers in (admin, ADMIN):
        assert task_id in ids((await client.get("/api/v1/tasks", headers=headers)).json())
        assert (await client.get(f"/api/v1/tasks/{task_id}", headers=headers)).status_code == 200

    for method, suffix in (
        ("GET", ""),
        ("GET", "/subtitles"),
        ("GET", "/media"),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
        ("DELETE", ""),
    ):
        response = await client.request(method, f"/api/v1/tasks/{task_id}{suffix}", headers=other)
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["detail"] == f"task {task_id} does not exist"

    assert (await client.get(f"/api/v1/tasks/{task_id}/media", headers=owner)).status_code == 200
    assert (await client.delete(f"/api/v1/tasks/{task_id}", headers=owner)).status_code == 204
    assert (await client.get(f"/api/v1/tasks/{task_id}", headers=admin)).status_code == 404


async def test_upload_helper_without_key_is_refused(api: RunningApp, clips: dict[str, Clip]) -> None:
    _assert_401(await upload(api.client, clips["jfk.flac"].path), "upload")
    assert (await api.client.get("/api/v1/tasks", headers=ADMIN)).json()["total"] == 0
