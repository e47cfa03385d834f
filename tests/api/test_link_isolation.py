"""Slow media links cannot starve the server: yt-dlp runs in a pool of its own, with a per-key limit.

A loopback page server holds every page request until the test releases it, the way a slow
or trickling site does. On the old code yt-dlp ran in the event loop's default executor, so
enough slow links held every thread that DNS lookups, media probing and the disk check need.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import httpx

from config.settings import Settings
from tests.conftest import Clip, running_app
from tests.net_support import RecordingServer, Reply, recording_server

NO_MEDIA = b"<!doctype html><title>Nothing</title><p>No media here.</p>"
HOLD_SECONDS = 90.0
"""Longest a slow page is held (the test releases it much sooner)."""


def slow_page(release: threading.Event) -> Callable[[], Reply]:
    def answer() -> Reply:
        release.wait(HOLD_SECONDS)
        return Reply(200, NO_MEDIA, {"Content-Type": "text/html"})

    return answer


async def wait_hits(server: RecordingServer, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(server.hits) < count:
        assert time.monotonic() < deadline, f"only {len(server.hits)} of {count} requests arrived"
        await asyncio.sleep(0.05)


async def test_slow_links_do_not_delay_an_ordinary_file_url_task(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    speech = clips["jfk.flac"].path.read_bytes()
    # One more slow link than the default executor has threads (what the old code shared).
    slow_links = min(32, (os.cpu_count() or 1) + 4) + 1
    settings = make_settings(
        links={
            "resolve_workers": 2,
            "max_concurrent_per_key": 0,
            "socket_timeout_seconds": HOLD_SECONDS + 30,
            "resolve_timeout_seconds": HOLD_SECONDS + 30,
        }
    )
    release = threading.Event()
    routes = {f"/slow/{n}": slow_page(release) for n in range(slow_links)}
    routes["/speech.flac"] = Reply(200, speech)
    with recording_server("127.0.0.1", routes) as site:
        async with running_app(settings, paused=True) as running:
            client = running.client
            links = [
                asyncio.create_task(
                    client.post(
                        "/api/v1/tasks/from-link",
                        json={"url": f"{site.base_url}/slow/{n}"},
                        timeout=HOLD_SECONDS + 60,
                    )
                )
                for n in range(slow_links)
            ]
            try:
                await wait_hits(site, 2)  # yt-dlp is waiting on slow pages
                accepted = await asyncio.wait_for(
                    client.post("/api/v1/tasks", data={"file_url": f"{site.base_url}/speech.flac"}),
                    timeout=20,  # generous: it takes well under a second when nothing starves it
                )
            finally:
                release.set()
                answers = await asyncio.gather(*links, return_exceptions=True)
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["file_size"] == len(speech)
        for answer in answers:
            assert isinstance(answer, httpx.Response), answer
            assert answer.status_code == 422 and "Unsupported URL" in answer.json()["detail"], answer.text


async def test_links_beyond_the_per_key_limit_get_429(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(links={"max_concurrent_per_key": 1, "resolve_timeout_seconds": HOLD_SECONDS})
    release = threading.Event()
    with recording_server("127.0.0.1", {"/slow": slow_page(release)}) as site:
        async with running_app(settings, paused=True) as running:
            client = running.client
            link = {"url": f"{site.base_url}/slow"}
            first = asyncio.create_task(
                client.post("/api/v1/tasks/from-link", json=link, timeout=HOLD_SECONDS + 30)
            )
            try:
                await wait_hits(site, 1)
                refused = await asyncio.wait_for(
                    client.post("/api/v1/tasks/from-link", json=link), timeout=20
                )
            finally:
                release.set()
                first_answer = await first
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) > 0
            assert "at once (1)" in refused.json()["detail"]
            assert first_answer.status_code == 422, first_answer.text
            # The slot is free again once the first resolution has ended.
            again = await client.post("/api/v1/tasks/from-link", json=link)
            assert again.status_code == 422 and "Unsupported URL" in again.json()["detail"], again.text
        assert len(site.hits) == 2  # the refused link never reached yt-dlp
