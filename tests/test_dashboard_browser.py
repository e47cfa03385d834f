"""The dashboard in headless Chromium against a real ``start.py`` server: upload, complete, transcript.

Skips when Chromium is missing, unless ``TINGXIE_REQUIRE_BROWSER=1`` (set by ``.ci/run``).
The screenshot is saved to ``test-artifacts/dashboard.png`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Clip, normalize_en
from tests.server_process import free_port, start_server

CHROMIUM = os.environ.get("TINGXIE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


def _require_chromium() -> None:
    if not Path(CHROMIUM).is_file():
        message = f"Chromium not found at {CHROMIUM}"
        if os.environ.get("TINGXIE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _stop(starting: Future[subprocess.Popen[bytes]]) -> None:
    if starting.exception() is not None:
        return
    server = starting.result()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_dashboard_uploads_and_shows_the_transcript(
    tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'tingxie.db'}",
        "STORAGE__TEMP_DIR": str(tmp_path / "media"),
        "LOGGING__DIR": str(tmp_path / "logs"),
        "WHISPER__MODEL_DIR": str(model_dir),
        "WHISPER__DEFAULT_MODEL": "tiny.en",
        "WHISPER__CPU_THREADS": "2",
        "WHISPER__WARMUP": "false",
        "PROCESSOR__NODE_ID": "dashboard-node",
        "PROCESSOR__POLL_INTERVAL_SECONDS": "0.2",
    }
    requested: list[str] = []
    console_errors: list[str] = []
    with ExitStack() as stack:
        # The server (imports, migrations, model load) and Chromium start at the same time.
        starting = stack.enter_context(ThreadPoolExecutor(max_workers=1)).submit(
            start_server, env, port, tmp_path / "server.log"
        )
        stack.callback(_stop, starting)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        stack.callback(browser.close)
        starting.result()

        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{base}/dashboard")
        expect(page).to_have_title("Tingxie 听写 · Dashboard")
        expect(page.locator("#workers-body")).to_contain_text("dashboard-node", timeout=15_000)
        expect(page.locator("#upload-model")).to_contain_text("tiny.en (default 默认)")

        page.set_input_files("#upload-file", str(clips["jfk.flac"].path))
        page.click("#upload-submit")
        expect(page.get_by_test_id("upload-status")).to_contain_text("Queued", timeout=30_000)
        expect(page.get_by_test_id("task-status")).to_have_text("completed", timeout=120_000)

        transcript = page.get_by_test_id("transcript")
        expect(transcript).not_to_have_text("…")
        assert "ask not what your country can do for you" in normalize_en(transcript.inner_text())
        subtitles = page.get_by_test_id("subtitles")
        expect(subtitles).to_contain_text("00:00:00,000 --> ")  # SRT
        page.click("button.tab[data-format=vtt]")
        expect(subtitles).to_contain_text("WEBVTT")
        expect(subtitles).to_contain_text("00:00:00.000 --> ")

        expect(page.locator("#t-completed")).to_have_text("1", timeout=15_000)
        expect(page.locator("#t-audio")).to_have_text("11.0 s")
        expect(page.locator("#recent-body")).to_contain_text("jfk.flac")
        expect(page.locator("#recent-body")).to_contain_text("completed")

        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"dashboard screenshot: {screenshot}")

        # The task really completed on the server, and the page needed nothing from elsewhere.
        tasks = httpx.get(f"{base}/api/v1/tasks", timeout=10).json()
        assert [(t["file_name"], t["status"]) for t in tasks["items"]] == [("jfk.flac", "completed")]
        assert requested and all(url.startswith(base) for url in requested), requested
        assert console_errors == []
