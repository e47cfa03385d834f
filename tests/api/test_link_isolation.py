"""Slow media links cannot starve the server: yt-dlp runs in a pool of its own, with a per-key limit.

A loopback page server holds every page request until the test releases it, the way a slow
or trickling site does. On the old code yt-dlp ran in the event loop's default executor, so
enough slow links held every thread that DNS lookups, media probing and the disk check need.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.media.ytdlp import LinkResolveError, resolve_media
from app.net.url_guard import UrlGuard
from app.net.ytdlp_guard import ResolveBudget, ResolveCancelledError
from app.services.link_resolver import LinkResolver
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


@pytest.mark.slow
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


async def test_a_timed_out_link_stops_reading_a_trickling_page() -> None:
    """The page sends a byte every 0.2 s (each read well within the socket timeout) for a minute;
    when the resolution's budget is cancelled, yt-dlp's connection is shut down at once."""
    requested = threading.Event()
    dropped = threading.Event()

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.set()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            deadline = time.monotonic() + 60
            try:
                while time.monotonic() < deadline:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    readable, _, _ = select.select([self.connection], [], [], 0.2)
                    if readable and not self.connection.recv(1):
                        break  # the client shut the connection down
                else:
                    return
            except OSError:
                pass
            dropped.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    budget = ResolveBudget(120)
    page = f"http://127.0.0.1:{server.server_address[1]}/trickle"
    guard = UrlGuard(allowed_hosts=["127.0.0.1"])

    def resolve() -> None:
        with suppress(LinkResolveError):
            resolve_media(page, format="best", socket_timeout=30, guard=guard, budget=budget)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    try:
        assert await asyncio.to_thread(requested.wait, 60), "yt-dlp never asked for the page"
        await asyncio.sleep(0.5)  # it is reading the trickle now
        budget.cancel()
        assert await asyncio.to_thread(dropped.wait, 10), "yt-dlp kept reading the page"
        await asyncio.to_thread(worker.join, 10)
        assert not worker.is_alive()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_the_resolver_cancels_the_budget_of_a_timed_out_link() -> None:
    resolver = LinkResolver(workers=1, max_concurrent_per_key=1)
    budgets: list[ResolveBudget] = []

    def resolve(budget: ResolveBudget) -> bool:
        budgets.append(budget)
        return budget.cancelled.wait(60)

    try:
        with pytest.raises(TimeoutError):
            await resolver.run(resolve, timeout=0.5)
        assert budgets and await asyncio.to_thread(budgets[0].cancelled.wait, 10)
        with pytest.raises(ResolveCancelledError):
            budgets[0].remaining()
    finally:
        resolver.close()
