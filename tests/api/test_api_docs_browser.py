"""Swagger UI (``/``) and ReDoc (``/redoc``) in headless Chromium, with every request that would
leave 127.0.0.1 blocked and recorded: the pages must render the operations from assets the app
ships, on a host without internet access.

Skips when Chromium is missing, unless ``TINGXIE_REQUIRE_BROWSER=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.server_process import free_port, server_env, start_server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TINGXIE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LOOPBACK = {"127.0.0.1"}


def _require_chromium() -> None:
    if not Path(CHROMIUM).is_file():
        message = f"Chromium not found at {CHROMIUM}"
        if os.environ.get("TINGXIE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_swagger_ui_and_redoc_render_offline(tmp_path: Path) -> None:
    """API keys are on: the documentation pages and their assets are public, the rest is not."""
    _require_chromium()
    from playwright.sync_api import Route, expect, sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(
        tmp_path, tmp_path / "models", AUTH__ENABLED="true", AUTH__ADMIN_KEY="docs-admin-key-0123456789"
    )
    left_loopback: list[str] = []
    loaded: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")):
            route.continue_()
        elif urlsplit(url).hostname in LOOPBACK:
            loaded.append(url)
            route.continue_()
        else:
            left_loopback.append(url)
            route.abort()

    with ExitStack() as stack:
        server = start_server(env, port, tmp_path / "server.log", role="api")
        stack.callback(_stop, server)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        stack.callback(browser.close)
        context = browser.new_context()
        context.route("**/*", guard)
        page = context.new_page()

        page.goto(f"{base}/")
        create = page.locator(".opblock-post", has_text="/api/v1/tasks").first
        expect(create).to_be_visible(timeout=30_000)
        expect(create).to_contain_text("Create a task / 创建任务")
        assert page.locator(".opblock").count() > 50

        page.goto(f"{base}/redoc")
        heading = page.get_by_role("heading", name="Create a task / 创建任务")
        expect(heading).to_be_visible(timeout=60_000)
        expect(page.locator("body")).to_contain_text("/api/v1/tasks")

    assert left_loopback == []
    assert f"{base}/docs/static/swagger-ui-bundle.js" in loaded
    assert f"{base}/docs/static/redoc.standalone.js" in loaded
