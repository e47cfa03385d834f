"""Tasks from media links: a real page on a local HTTP server resolved by yt-dlp's generic extractor."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import pytest_asyncio

from app.errors import Invalid, TooLarge
from app.media.platforms import detect_platform
from app.services.link_service import LinkService, UrlCheck
from config.settings import LinksSettings
from tests.conftest import Clip, RunningApp, normalize_en, running_app, wait_done
from tests.http_peer import serve_directory
from tests.live_server import module_settings
from tests.media_samples import encode_mp4
from tests.speaker_samples import CONVERSATIONS, conversation

pytestmark = pytest.mark.asyncio(loop_scope="module")

PAGE = """<!doctype html>
<html><head><title>Speeches</title>
<script type="application/ld+json">{ld}</script>
</head><body><h1>Inaugural address</h1></body></html>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Clip]) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    encode_mp4(clips["jfk.flac"].path, root / "jfk.mp4")
    talk = conversation(CONVERSATIONS[2]).write_wav(root / "talk.wav")
    encode_mp4(talk, root / "talk.mp4")
    (root / "empty.html").write_text("<!doctype html><title>Nothing</title><p>No media here.</p>")
    with serve_directory(root) as base:
        ld = {
            "@context": "https://schema.org",
            "@type": "VideoObject",
            "name": "Inaugural address",
            "author": {"@type": "Person", "name": "John F. Kennedy"},
            "duration": "PT11S",
            "uploadDate": "1961-01-20",
            "thumbnailUrl": f"{base}/thumb.jpg",
            "contentUrl": f"{base}/jfk.mp4",
        }
        (root / "jfk.html").write_text(PAGE.format(ld=json.dumps(ld)))
        talk_ld = {**ld, "name": "Two speakers", "duration": "PT15S", "contentUrl": f"{base}/talk.mp4"}
        (root / "talk.html").write_text(PAGE.format(ld=json.dumps(talk_ld)))
        yield base


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AsyncIterator[RunningApp]:
    settings = module_settings(tmp_path_factory.mktemp("links"), model_dir, whisper={"warmup": False})
    async with running_app(settings) as running:
        yield running


@pytest.mark.slow
async def test_link_becomes_a_transcribed_task_with_its_metadata(api: RunningApp, site: str) -> None:
    page = f"{site}/jfk.html"
    response = await api.client.post(
        "/api/v1/tasks/from-link", json={"url": page, "priority": "high", "language": "en"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["source"] == "link" and created["file_url"] == page
    assert created["platform"] == "generic"
    assert created["link"] == {
        "platform": "generic",
        "original_url": page,
        "webpage_url": page,
        "media_id": "jfk",
        "title": "Inaugural address",
        "author": "John F. Kennedy",
        "duration": 11.0,
        "thumbnail": f"{site}/thumb.jpg",
    }
    assert created["file_name"] == "Inaugural address.mp4"
    async with httpx.AsyncClient() as http:
        assert created["file_size"] == len((await http.get(f"{site}/jfk.mp4")).content)

    task = await wait_done(api.client, created["id"])
    assert task["status"] == "completed", task["error"]
    assert "ask not what your country can do for you" in normalize_en(task["result"]["text"])
    assert task["link"] == created["link"]  # read back from the database
    listed = (await api.client.get("/api/v1/tasks", params={"platform": "generic"})).json()
    assert created["id"] in [item["id"] for item in listed["items"]]


@pytest.mark.slow
async def test_a_link_task_is_diarized_when_asked(api: RunningApp, site: str) -> None:
    response = await api.client.post(
        "/api/v1/tasks/from-link", json={"url": f"{site}/talk.html", "diarize": True, "max_speakers": 3}
    )
    assert response.status_code == 201, response.text
    assert response.json()["options"]["diarize"] is True
    task = await wait_done(api.client, response.json()["id"], timeout=300)
    assert task["status"] == "completed", task["error"]
    assert task["result"]["speakers"] == ["A", "B"]
    assert {segment["speaker"] for segment in task["result"]["segments"]} == {"A", "B"}


async def test_link_without_media_is_a_clear_422(api: RunningApp, site: str) -> None:
    before = set(api.container.storage.root.iterdir())
    for url, expected in (
        (f"{site}/empty.html", "Unsupported URL"),
        (f"{site}/missing.html", "404"),
    ):
        response = await api.client.post("/api/v1/tasks/from-link", json={"url": url})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        detail = response.json()["detail"]
        assert detail.startswith("yt-dlp: ") and expected in detail, detail
        assert "\x1b" not in detail and "ERROR:" not in detail
    not_a_link = await api.client.post("/api/v1/tasks/from-link", json={"url": "ftp://example.com/a"})
    assert not_a_link.status_code == 422
    english_only = await api.client.post(
        "/api/v1/tasks/from-link", json={"url": f"{site}/jfk.html", "language": "zh"}
    )
    assert english_only.status_code == 422 and "English-only" in english_only.json()["detail"]
    assert set(api.container.storage.root.iterdir()) == before, "failed links leaked files"


async def test_legacy_platform_routes_accept_json_form_and_query(api: RunningApp, site: str) -> None:
    page = f"{site}/jfk.html"
    api.container.processor.pause()  # type: ignore[union-attr]  # no model work for these tasks
    try:
        answers = [
            await api.client.post("/api/douyin/video_task", data={"url": f"看看这个 {page} 复制此链接"}),
            await api.client.post("/api/tiktok/video_task", json={"url": page, "priority": "low"}),
            await api.client.post("/api/tiktok/video_task", params={"url": page}),
        ]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["platform"] == "generic" and body["link"]["title"] == "Inaugural address"
            task = (await api.client.get(f"/api/v1/tasks/{body['task_id']}")).json()
            assert task["link"]["original_url"] == page
            assert (await api.client.delete(f"/api/v1/tasks/{body['task_id']}")).status_code == 204
    finally:
        api.container.processor.resume()  # type: ignore[union-attr]
    missing = await api.client.post("/api/douyin/video_task", json={"title": "no url"})
    assert missing.status_code == 422 and "url" in missing.json()["detail"]
    bad = await api.client.post("/api/tiktok/video_task", json={"url": page, "priority": "urgent"})
    assert bad.status_code == 422


async def test_every_fetched_url_passes_the_check_and_limits_apply(api: RunningApp, site: str) -> None:
    container = api.container
    page = f"{site}/jfk.html"
    checked: list[str] = []

    async def record(url: str) -> None:
        checked.append(url)

    async def block_media(url: str) -> None:
        if url.endswith(".mp4"):
            raise Invalid(f"{url} is not allowed")

    def service(check: UrlCheck | None, **settings: Any) -> LinkService:
        return LinkService(
            tasks=container.tasks,
            http=container.http,
            settings=LinksSettings(**settings),
            max_bytes=container.storage.max_bytes,
            url_check=check,
        )

    container.processor.pause()  # type: ignore[union-attr]
    try:
        task = await service(record).create(page)
        assert checked == [page, f"{site}/jfk.mp4"]
        await container.tasks.delete(task.id)
        before = set(container.storage.root.iterdir())
        with pytest.raises(Invalid) as blocked:
            await service(block_media).create(page)
        assert "is not allowed" in blocked.value.detail
        with pytest.raises(Invalid) as too_long:
            await service(None, max_duration_seconds=5).create(page)
        assert "more than the limit of 5 s" in too_long.value.detail
        small = LinkService(
            tasks=container.tasks, http=container.http, settings=LinksSettings(), max_bytes=50_000
        )
        container.storage.max_bytes, saved = 50_000, container.storage.max_bytes
        try:
            with pytest.raises(TooLarge):
                await small.create(page)
        finally:
            container.storage.max_bytes = saved
        assert set(container.storage.root.iterdir()) == before
    finally:
        container.processor.resume()  # type: ignore[union-attr]


class _Redirector(BaseHTTPRequestHandler):
    """An HTTP proxy that answers short links with the redirects their hosts give."""

    routes: ClassVar[dict[str, str]] = {
        "http://b23.tv/a1B2c3D": "https://www.bilibili.com/video/BV1GJ411x7h7?share_source=copy_web",
        "http://v.douyin.com/iRNBho6u/": "http://v.douyin.com/hop2/",
        "http://v.douyin.com/hop2/": "https://www.iesdouyin.com/share/video/7312345678901234567/?region=CN",
        "http://vm.tiktok.com/ZMeLoop/": "http://vm.tiktok.com/ZMeLoop/",
    }

    def do_GET(self) -> None:
        target = self.routes.get(self.path)
        self.send_response(302 if target else 404)
        if target:
            self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_short_links_resolve_to_the_real_platform(api: RunningApp) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    checked: list[str] = []

    async def record(url: str) -> None:
        checked.append(url)

    try:
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        async with httpx.AsyncClient(proxy=proxy) as http:
            links = LinkService(
                tasks=api.container.tasks,
                http=http,
                settings=LinksSettings(max_redirects=3),
                max_bytes=api.container.storage.max_bytes,
                url_check=record,
            )
            bilibili = await links.resolve_short_link("http://b23.tv/a1B2c3D")
            assert bilibili.startswith("https://www.bilibili.com/video/BV1GJ411x7h7")
            assert detect_platform(bilibili).platform == "bilibili"
            douyin = await links.resolve_short_link("http://v.douyin.com/iRNBho6u/")
            assert douyin.startswith("https://www.iesdouyin.com/share/video/7312345678901234567")
            assert detect_platform(douyin).platform == "douyin"
            assert checked == [
                bilibili,
                "http://v.douyin.com/hop2/",
                douyin,
            ]
            with pytest.raises(Invalid, match="redirects more than 3 times"):
                await links.resolve_short_link("http://vm.tiktok.com/ZMeLoop/")
            with pytest.raises(Invalid, match="HTTP 404"):
                await links.resolve_short_link("http://b23.tv/gone")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
