"""SSRF at connection time: yt-dlp's own hops and DNS rebinding never reach an internal address.

The guard in these tests allowlists 127.0.0.1 (the "public" pages); the internal service
listens on 127.0.0.2, which the guard refuses. Each test checks that the internal service
received nothing, which on the old code (only the page URL and the final media URL checked,
a second DNS lookup when connecting) it did.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from yt_dlp.networking.exceptions import RequestError

from app.net.url_guard import BlockedUrlError, UrlGuard
from app.net.ytdlp_guard import GuardedUrllibRH, GuardedYoutubeDL
from app.workflows.steps import StepCall
from config.settings import Settings
from tests.callback_receiver import callback_receiver
from tests.conftest import Clip, running_app, upload, wait_done
from tests.net_support import INTERNAL_HOST, Rebinding, Reply, recording_server


@pytest.mark.parametrize("hop", ["redirect", "meta-refresh"])
async def test_ytdlp_follows_no_hop_to_an_internal_address(
    make_settings: Callable[..., Settings], hop: str
) -> None:
    with recording_server(INTERNAL_HOST, {"/secret": Reply(200, b"internal data")}) as internal:
        secret = f"{internal.base_url}/secret"
        page = (
            f'<!doctype html><html><head><meta http-equiv="refresh" content="0; url={secret}">'
            "<title>Moved</title></head><body>moved</body></html>"
        ).encode()
        routes = {
            "/redirect": Reply(302, headers={"Location": secret}),
            "/meta-refresh": Reply(200, page, {"Content-Type": "text/html"}),
        }
        with recording_server("127.0.0.1", routes) as public:
            async with running_app(make_settings(), paused=True) as running:
                response = await running.client.post(
                    "/api/v1/tasks/from-link", json={"url": f"{public.base_url}/{hop}"}
                )
        assert [path for _, path, _ in public.hits] == [f"/{hop}"], "the public page was not fetched"
        assert internal.hits == [], f"yt-dlp reached the internal service: {internal.hits}"
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert f"{INTERNAL_HOST} is a loopback address" in detail, detail


async def test_file_url_connects_to_the_checked_address_not_a_rebound_one(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    speech = clips["jfk.flac"].path.read_bytes()
    with recording_server(INTERNAL_HOST, {"/speech.flac": Reply(200, speech)}) as internal:
        # The guard's lookup sees 127.0.0.1 (allowed); a second lookup would see 127.0.0.2.
        rebinding = Rebinding(monkeypatch, "rebind.test", "127.0.0.1", INTERNAL_HOST)
        async with running_app(make_settings(), paused=True) as running:
            refused = await running.client.post(
                "/api/v1/tasks", data={"file_url": f"http://rebind.test:{internal.port}/speech.flac"}
            )
        assert internal.hits == [], f"the download reached the internal service: {internal.hits}"
        assert rebinding.lookups >= 1
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert f"rebind.test resolves to {INTERNAL_HOST}, which is a loopback address" in detail, detail


async def test_pinned_connection_keeps_the_host_name(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    speech = clips["jfk.flac"].path.read_bytes()
    with recording_server("127.0.0.1", {"/speech.flac": Reply(200, speech)}) as media:
        Rebinding(monkeypatch, "media.test", "127.0.0.1", "127.0.0.1")
        async with running_app(make_settings(), paused=True) as running:
            accepted = await running.client.post(
                "/api/v1/tasks", data={"file_url": f"http://media.test:{media.port}/speech.flac"}
            )
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["file_size"] == len(speech)
        assert media.hits == [("GET", "/speech.flac", f"media.test:{media.port}")]


@pytest.mark.slow
async def test_callback_connects_to_the_checked_address_not_a_rebound_one(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(callbacks={"max_attempts": 1, "poll_interval_seconds": 0.1})
    with callback_receiver(host=INTERNAL_HOST) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        # Checked when the task is created and again before delivery: both see 127.0.0.1.
        Rebinding(monkeypatch, "rebind.test", "127.0.0.1", INTERNAL_HOST, honest_answers=2)
        async with running_app(settings) as running:
            created = await upload(
                running.client,
                clips["jfk.flac"].path,
                callback_url=f"http://rebind.test:{port}/hook",
                clip_timestamps="0,3",
            )
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            assert (await wait_done(running.client, task_id))["status"] == "completed"
            deadline = time.monotonic() + 30
            while True:
                callback = (await running.client.get(f"/api/v1/tasks/{task_id}")).json()["callback"]
                if callback is not None and callback["status"] != "pending":
                    break
                assert time.monotonic() < deadline, callback
                await running.client.get("/api/v1/health")
            history = (await running.client.get(f"/api/v1/tasks/{task_id}/callback")).json()
        assert receiver.requests == [], "the callback was delivered to the internal service"
        assert callback["status"] == "failed", callback
        assert f"resolves to {INTERNAL_HOST}, which is a loopback address" in str(history), history


async def test_webhook_step_connects_to_the_checked_address_not_a_rebound_one(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    with callback_receiver(host=INTERNAL_HOST) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        Rebinding(monkeypatch, "rebind.test", "127.0.0.1", INTERNAL_HOST)
        async with running_app(make_settings(), paused=True) as running:
            call = StepCall(
                run_id="run-1",
                workflow_id="wf-1",
                step_id="notify",
                uses="webhook",
                attempt=1,
                inputs={"url": f"http://rebind.test:{port}/hook", "body": {"done": True}},
                default_body={},
            )
            with pytest.raises(BlockedUrlError) as blocked:
                await running.container.workflow_steps.run(call)
        assert receiver.requests == [], "the webhook reached the internal service"
        assert f"resolves to {INTERNAL_HOST}, which is a loopback address" in blocked.value.detail


def test_guarded_ytdlp_has_only_the_guarded_handler_and_no_proxy() -> None:
    params = {"quiet": True, "proxy": "http://proxy.example:3128"}
    with GuardedYoutubeDL(params, guard=UrlGuard()) as ydl:
        handlers = list(ydl._request_director.handlers.values())
        assert [type(handler) for handler in handlers] == [GuardedUrllibRH]
        assert ydl.proxies == {"all": "__noproxy__"}
        for url in ("ftp://127.0.0.2/media.mp3", "file:///etc/passwd"):
            with pytest.raises(RequestError):
                ydl.urlopen(url)
