"""SSRF guard: loopback, private, link-local and metadata addresses are refused, after DNS and on redirects."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.errors import Invalid
from app.net.url_guard import BlockedUrlError, UrlGuard
from config.settings import Settings
from tests.conftest import Clip, running_app


@contextmanager
def redirecting_server(targets: dict[str, str], files: dict[str, bytes]) -> Iterator[str]:
    """127.0.0.1 server: paths in ``targets`` answer 302 to their target, ``files`` are served."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path in targets:
                self.send_response(302)
                self.send_header("Location", targets[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path in files:
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[self.path])))
                self.end_headers()
                self.wfile.write(files[self.path])
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_guard_is_on_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.network.ssrf_protection is True
    assert settings.network.allowed_hosts == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost/a.mp3", "loopback"),
        ("http://127.0.0.1:8000/a.mp3", "loopback"),
        ("http://[::1]/a.mp3", "loopback"),
        ("http://[::ffff:127.0.0.1]/a.mp3", "loopback"),
        ("http://10.1.2.3/a.mp3", "private"),
        ("https://192.168.0.10/a.mp3", "private"),
        ("http://172.16.5.5/a.mp3", "private"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data", "cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("http://169.254.1.1/", "link-local"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "non-public"),
        ("http://240.0.0.1/", "reserved"),
        # IPv6 forms that carry an IPv4 address, which a relay or translator may reach.
        ("http://[2002:7f00:1::1]/", "6to4 address (it embeds the IPv4 address 127.0.0.1)"),
        ("http://[2002:a9fe:a9fe::]/", "6to4 address (it embeds the IPv4 address 169.254.169.254)"),
        ("http://[2002:808:808::1]/", "6to4 address"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 address (it embeds the IPv4 address 169.254.169.254)"),
        ("http://[64:ff9b:1::a00:1]/", "local-use NAT64 address"),
        ("http://[::ffff:0:7f00:1]/", "IPv4-translated address (it embeds the IPv4 address 127.0.0.1)"),
        ("http://[::7f00:1]/", "IPv4-compatible address (it embeds the IPv4 address 127.0.0.1)"),
        ("http://[::ffff:a9fe:a9fe]/", "cloud metadata"),
        ("ftp://example.com/a.mp3", "http"),
        ("http://no-such-host.invalid/a.mp3", "could not be resolved"),
    ],
)
async def test_guard_refuses(url: str, reason: str) -> None:
    with pytest.raises(BlockedUrlError) as caught:
        await UrlGuard().check(url)
    assert isinstance(caught.value, Invalid)
    assert reason in caught.value.detail, caught.value.detail


async def test_guard_allows_public_and_allowlisted_addresses() -> None:
    await UrlGuard().check("https://8.8.8.8/a.mp3")
    await UrlGuard().check("http://[2606:4700:4700::1111]/a.mp3")
    allow = UrlGuard(allowed_hosts=["127.0.0.1", "10.0.0.0/8", "LocalHost", "::1"])
    for url in ("http://127.0.0.1:9/a", "http://10.200.1.1/a", "http://localhost:1/a", "http://[::1]/a"):
        await allow.check(url)
    with pytest.raises(BlockedUrlError):
        await allow.check("http://192.168.1.1/a")
    await UrlGuard(enabled=False).check("http://169.254.169.254/")
    with pytest.raises(BlockedUrlError):  # the scheme is checked even when the guard is off
        await UrlGuard(enabled=False).check("file:///etc/passwd")


async def test_file_url_and_callback_url_are_refused_with_422(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    speech = clips["jfk.flac"].path.read_bytes()
    targets = {
        "/meta": "http://169.254.169.254/latest/meta-data",
        "/twice": "/hop",
        "/hop": "http://[fd00:ec2::254]/latest/meta-data",
        "/ok": "/speech.flac",
    }
    with redirecting_server(targets, {"/speech.flac": speech}) as base:
        port = base.rsplit(":", 1)[1]
        # Guard on, nothing allowlisted: a name that resolves to 127.0.0.1 is refused.
        strict = make_settings(network={"allowed_hosts": []})
        async with running_app(strict, paused=True) as running:
            client = running.client
            for url in (f"http://localhost:{port}/speech.flac", f"{base}/speech.flac"):
                refused = await client.post("/api/v1/tasks", data={"file_url": url})
                assert refused.status_code == 422, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
                assert "loopback address" in refused.json()["detail"], refused.text
            with clips["jfk.flac"].path.open("rb") as handle:
                refused = await client.post(
                    "/api/v1/tasks",
                    files={"file": ("jfk.flac", handle)},
                    data={"callback_url": "http://metadata.google.internal/hook"},
                )
            assert refused.status_code == 422, refused.text
            assert "cloud metadata service" in refused.json()["detail"], refused.text
            assert (await client.get("/api/v1/tasks")).json()["total"] == 0
            assert list(strict.storage.media_dir.iterdir()) == [], "a refused request left files behind"

        # 127.0.0.1 allowlisted (as make_settings does): the server passes, its redirects do not.
        open_loopback = make_settings(network={"allowed_hosts": ["127.0.0.1"]})
        async with running_app(open_loopback, paused=True) as running:
            client = running.client
            for path, address in (("/meta", "169.254.169.254"), ("/twice", "fd00:ec2::254")):
                refused = await client.post("/api/v1/tasks", data={"file_url": f"{base}{path}"})
                assert refused.status_code == 422, refused.text
                detail = refused.json()["detail"]
                assert f"{address} is a cloud metadata address" in detail, detail
            media = open_loopback.storage.media_dir
            assert [p.name for p in media.iterdir()] == [], "a refused download left files behind"
            refused = await client.post(
                "/api/v1/tasks",
                data={"file_url": f"{base}/speech.flac", "callback_url": "http://10.9.8.7/hook"},
            )
            assert refused.status_code == 422 and "private address" in refused.json()["detail"]
            assert [p.name for p in media.iterdir()] == []
            # A redirect to an allowed host is followed.
            accepted = await client.post("/api/v1/tasks", data={"file_url": f"{base}/ok"})
            assert accepted.status_code == 201, accepted.text
            assert accepted.json()["file_size"] == len(speech)
