"""The dashboard in headless Chromium against a real ``start.py`` server with API keys on: key prompt,
upload, complete, transcript.

Skips when Chromium is missing, unless ``TINGXIE_REQUIRE_BROWSER=1`` (set by ``.ci/run``).
Screenshots are saved to ``test-artifacts/dashboard.png`` and ``dashboard-key.png`` (the key
prompt; git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import ROOT, Clip, normalize_en
from tests.server_process import free_port, server_env, start_server

pytestmark = pytest.mark.slow

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("TINGXIE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
ADMIN_KEY = "dashboard-admin-key-for-tests-0123456789"
WRONG_KEY = "tx_not-a-valid-key"


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


@contextmanager
def server_and_browser(env: dict[str, str], port: int, log: Path) -> Iterator[Browser]:
    """``start.py`` on ``port`` and headless Chromium, started at the same time (the server's
    imports, migrations and model load overlap the browser's start); both stop afterwards."""
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        starting = stack.enter_context(ThreadPoolExecutor(max_workers=1)).submit(start_server, env, port, log)
        stack.callback(_stop, starting)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        stack.callback(browser.close)
        starting.result()
        yield browser


def test_dashboard_asks_for_the_key_then_uploads_and_shows_the_transcript(
    tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    """One scenario with ``AUTH__ENABLED=true``: the page shell loads without a key, the first 401
    opens the key prompt, a wrong key is refused, an admin key created through the API then works for
    every call the page makes (upload included), and it is kept in and cleared from localStorage.
    A plain key sees its own (no) tasks, and a note instead of the admin-only stats and workers."""
    _require_chromium()
    from playwright.sync_api import Request, expect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(
        tmp_path,
        model_dir,
        WHISPER__DEFAULT_MODEL="tiny.en",
        WHISPER__CPU_THREADS="2",
        WHISPER__WARMUP="false",
        PROCESSOR__NODE_ID="dashboard-node",
        PROCESSOR__POLL_INTERVAL_SECONDS="0.2",
        AUTH__ENABLED="true",
        AUTH__ADMIN_KEY=ADMIN_KEY,
    )
    requested: list[str] = []
    api_calls: list[tuple[str, str, str | None]] = []  # method, path and query, X-API-Key
    console_errors: list[str] = []
    with server_and_browser(env, port, tmp_path / "server.log") as browser:
        created = httpx.post(
            f"{base}/api/v1/keys",
            json={"name": "dashboard", "is_admin": True},  # stats and workers need an admin key
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        plain = httpx.post(
            f"{base}/api/v1/keys",
            json={"name": "viewer"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )
        assert plain.status_code == 201, plain.text

        def on_request(request: Request) -> None:
            requested.append(request.url)
            if request.url.startswith(f"{base}/api/"):
                path = request.url.removeprefix(base)
                api_calls.append((request.method, path, request.headers.get("x-api-key")))

        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("request", on_request)
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{base}/dashboard")
        expect(page).to_have_title("Tingxie 听写 · Dashboard")

        # No key yet: the API answers 401 and the page asks for a key instead of failing silently.
        dialog = page.get_by_test_id("key-dialog")
        expect(dialog).to_be_visible(timeout=15_000)
        expect(page.get_by_test_id("key-message")).to_contain_text("requires an API key (401)")
        expect(page.get_by_test_id("refreshed")).to_have_text("API key required 需要 API 密钥")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-key.png"))
        page.get_by_test_id("key-input").fill(WRONG_KEY)
        page.get_by_test_id("key-save").click()
        expect(page.get_by_test_id("key-message")).to_contain_text("rejected (401)")
        expect(dialog).to_be_visible()
        page.get_by_test_id("key-input").fill(key)
        page.get_by_test_id("key-save").click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_test_id("key-button")).to_have_text("API key 密钥 ✓")

        expect(page.locator("#workers-body")).to_contain_text("dashboard-node", timeout=15_000)
        expect(page.locator("#upload-model")).to_contain_text("tiny.en (default 默认)")

        page.set_input_files("#upload-file", str(clips["jfk.flac"].path))
        page.click("#upload-submit")
        expect(page.get_by_test_id("upload-status")).to_contain_text("Queued", timeout=30_000)
        expect(page.get_by_test_id("task-status")).to_have_text("completed", timeout=120_000)

        transcript = page.get_by_test_id("transcript")
        expect(transcript).not_to_have_text("…")
        assert "ask not what your country can do for you" in normalize_en(transcript.inner_text())
        # With keys on, the player cannot send the key itself: the page fetched the media with it.
        page.wait_for_function(
            "() => { const p = document.getElementById('tv-player'); return p.readyState >= 1 && p.duration > 0; }",
            timeout=15_000,
        )
        assert (page.get_by_test_id("player").get_attribute("src") or "").startswith("blob:")
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

        # Every API call sent a key: none before one was entered, then the wrong one, then the
        # right one on every call from its first use on, for each endpoint the page uses.
        calls = list(api_calls)
        sent = [header for _, _, header in calls]
        assert set(sent) == {None, WRONG_KEY, key}, calls
        first = sent.index(key)
        assert sent.index(None) < sent.index(WRONG_KEY) < first
        assert all(header == key for header in sent[first:]), calls[first:]
        used = {
            (method, re.sub(r"/tasks/[0-9a-f]{32}", "/tasks/{id}", path)) for method, path, _ in calls[first:]
        }
        assert {
            ("GET", "/api/v1/stats"),
            ("GET", "/api/v1/workers"),
            ("GET", "/api/v1/models"),
            ("GET", "/api/v1/tasks?limit=15"),
            ("POST", "/api/v1/tasks"),
            ("GET", "/api/v1/tasks/{id}"),
            ("GET", "/api/v1/tasks/{id}/media"),
            ("GET", "/api/v1/tasks/{id}/subtitles?format=srt"),
            ("GET", "/api/v1/tasks/{id}/subtitles?format=vtt"),
        } <= used, used

        # The task really completed on the server, for that key; the page needed nothing from elsewhere.
        assert httpx.get(f"{base}/api/v1/tasks", timeout=10).status_code == 401
        tasks = httpx.get(f"{base}/api/v1/tasks", headers={"X-API-Key": key}, timeout=10).json()
        assert [(t["file_name"], t["status"]) for t in tasks["items"]] == [("jfk.flac", "completed")]
        # (``blob:`` URLs are the page's own: the media it fetched with the key.)
        assert requested and all(url.startswith((base, f"blob:{base}/")) for url in requested), requested
        # Only the expected 401s were logged (Chromium reports each failed resource load).
        unexpected = [m for m in console_errors if "status of 401 (Unauthorized)" not in m]
        assert unexpected == [], console_errors

        # The key stays in localStorage across a reload, and "Clear" removes it.
        page.reload()
        expect(page.locator("#recent-body")).to_contain_text("jfk.flac", timeout=15_000)
        expect(dialog).to_be_hidden()
        assert page.evaluate("localStorage.getItem('tingxie.apiKey')") == key
        page.get_by_test_id("key-button").click()
        page.get_by_test_id("key-clear").click()
        assert page.evaluate("localStorage.getItem('tingxie.apiKey')") is None
        expect(page.get_by_test_id("key-message")).to_contain_text("requires an API key (401)")
        expect(page.get_by_test_id("key-button")).to_have_text("API key 密钥")
        expect(page.get_by_test_id("admin-note")).to_be_hidden()

        # A plain key: its own tasks (none), and a note where the admin-only views were.
        page.get_by_test_id("key-input").fill(plain.json()["key"])
        page.get_by_test_id("key-save").click()
        expect(page.get_by_test_id("admin-note")).to_be_visible(timeout=15_000)
        expect(page.locator("#workers-body")).to_have_text("Needs an admin key 需要管理员密钥")
        expect(page.locator("#t-completed")).to_have_text("–")
        expect(page.locator("#recent-body")).to_contain_text("No tasks yet", timeout=15_000)
        expect(page.get_by_test_id("refreshed")).to_contain_text("Updated")


def test_task_view_plays_the_media_follows_it_in_the_transcript_and_downloads(
    tmp_path: Path, model_dir: Path, clips: dict[str, Clip]
) -> None:
    """Without keys the player streams the media route itself: the cue under the playhead is
    highlighted, clicking a cue seeks there, and SRT/VTT/TXT download from the task view."""
    _require_chromium()
    import srt
    import webvtt
    from playwright.sync_api import expect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(
        tmp_path,
        model_dir,
        WHISPER__DEFAULT_MODEL="tiny.en",
        WHISPER__WARMUP="false",
        PROCESSOR__POLL_INTERVAL_SECONDS="0.2",
    )
    audio = clips["jfk.flac"].path
    with server_and_browser(env, port, tmp_path / "server.log") as browser:
        with audio.open("rb") as handle:
            created = httpx.post(f"{base}/api/v1/tasks", files={"file": (audio.name, handle)}, timeout=30)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        task = httpx.get(f"{base}/api/v1/tasks/{task_id}", params={"wait": 120}, timeout=130).json()
        assert task["status"] == "completed", task
        segments = task["result"]["segments"]
        assert len(segments) >= 2, segments

        page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page.goto(f"{base}/dashboard")
        page.locator(f"#recent-body tr[data-task-id='{task_id}']").click()
        expect(page.get_by_test_id("task-status")).to_have_text("completed", timeout=15_000)
        cue_items = page.get_by_test_id("transcript").locator("li")
        expect(cue_items).to_have_count(len(segments))
        assert "ask not what your country can do for you" in normalize_en(
            page.get_by_test_id("transcript").inner_text()
        )

        # The player has the media (its real duration), streamed from the media route.
        player = page.get_by_test_id("player")
        page.wait_for_function(
            "() => { const p = document.getElementById('tv-player'); return p.readyState >= 1 && p.duration > 0; }",
            timeout=15_000,
        )
        assert player.get_attribute("src") == f"/api/v1/tasks/{task_id}/media"
        duration = page.evaluate("document.getElementById('tv-player').duration")
        assert abs(duration - clips["jfk.flac"].duration) < 0.5, duration

        # The cue under the playhead is the highlighted one, and only that one.
        second = segments[1]
        middle = (second["start"] + second["end"]) / 2
        page.evaluate(f"document.getElementById('tv-player').currentTime = {middle}")
        expect(page.locator("#tv-transcript li.current")).to_have_count(1)
        expect(cue_items.nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
        # Clicking the first cue moves the playhead to its start.
        cue_items.nth(0).click()
        expect(cue_items.nth(0)).to_have_class(re.compile(r"\bcurrent\b"))
        position = page.evaluate("document.getElementById('tv-player').currentTime")
        assert segments[0]["start"] <= position < segments[0]["end"], position

        # Downloads: each format, named after the file, with the transcript in it.
        texts = {}
        for fmt in ("srt", "vtt", "txt"):
            with page.expect_download() as download_info:
                page.locator(f"button[data-download={fmt}]").click()
            download = download_info.value
            assert download.suggested_filename == f"jfk.{fmt}"
            target = tmp_path / download.suggested_filename
            download.save_as(target)
            texts[fmt] = target.read_text(encoding="utf-8")
        cues = list(srt.parse(texts["srt"]))
        assert len(cues) >= 2 and "ask not what your country" in normalize_en(
            " ".join(c.content for c in cues)
        )
        vtt = tmp_path / "jfk.vtt"
        assert "ask not what your country" in normalize_en(" ".join(c.text for c in webvtt.read(str(vtt))))
        assert "ask not what your country" in normalize_en(texts["txt"])
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-player.png"), full_page=True)


def test_a_diarized_upload_shows_its_speakers_in_the_task_view(tmp_path: Path, model_dir: Path) -> None:
    """The upload form's speaker option reaches the task: the task view says diarization is on,
    shows one chip per speaker, and labels each cue with its speaker."""
    _require_chromium()
    from playwright.sync_api import expect

    from tests.speaker_samples import CONVERSATIONS, conversation

    talk = conversation(CONVERSATIONS[2])
    audio = talk.write_wav(tmp_path / "two-speakers.wav")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(
        tmp_path,
        model_dir,
        WHISPER__DEFAULT_MODEL="tiny.en",
        WHISPER__WARMUP="false",
        PROCESSOR__POLL_INTERVAL_SECONDS="0.2",
    )
    with server_and_browser(env, port, tmp_path / "server.log") as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(f"{base}/dashboard")
        page.set_input_files("#upload-file", str(audio))
        page.check("#upload-diarize")
        page.click("#upload-submit")
        expect(page.get_by_test_id("upload-status")).to_contain_text("Queued", timeout=30_000)
        expect(page.get_by_test_id("task-status")).to_have_text("completed", timeout=180_000)

        expect(page.get_by_test_id("task-speakers")).to_contain_text("on")
        chips = page.get_by_test_id("speaker-chips").locator(".speaker")
        expect(chips).to_have_count(len(talk.speakers))
        labels = sorted(chips.all_inner_texts())
        cues = page.get_by_test_id("transcript").locator("li")
        cue_labels = [item.locator(".speaker").inner_text() for item in cues.all()]
        assert cue_labels and set(cue_labels) == set(labels), (cue_labels, labels)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-speakers.png"), full_page=True)
