"""Loopback servers that record every request, and a DNS answer that changes (rebinding), for SSRF tests.

The guard in tests allowlists ``127.0.0.1`` only; ``127.0.0.2`` (also loopback on Linux) stands
for an internal service it must never reach.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

INTERNAL_HOST = "127.0.0.2"
"""A loopback address the tests' guard does not allow: an "internal" service."""


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Reply | Callable[[], Reply]


@dataclass
class RecordingServer:
    base_url: str
    port: int
    hits: list[tuple[str, str, str]] = field(default_factory=list)
    """(method, path, Host header) of every request received."""


@contextmanager
def recording_server(
    host: str = "127.0.0.1", routes: dict[str, Route] | None = None
) -> Iterator[RecordingServer]:
    """Serve ``routes`` (path -> reply, or a function giving one) on ``host``; other paths get 404.
    Every request is recorded before it is answered."""
    routes = routes or {}
    state: dict[str, RecordingServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state["server"].hits.append((self.command, self.path, self.headers.get("Host", "")))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            route = routes.get(self.path)
            reply = route() if callable(route) else route
            if reply is None:
                reply = Reply(404, b"not found")
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state["server"] = RecordingServer(base_url=f"http://{host}:{port}", port=port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Rebinding:
    """``name`` resolves to ``first`` for the first ``honest_answers`` lookups, then to ``then``.

    It patches ``socket.getaddrinfo``, which both the guard and the HTTP clients (through the
    event loop's resolver) use: what a DNS server with a zero TTL can do to the server.
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, name: str, first: str, then: str, honest_answers: int = 1
    ) -> None:
        self.name = name
        self.lookups = 0
        lock = threading.Lock()
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            shown = host.decode() if isinstance(host, bytes) else host
            if shown != name:
                return real(host, port, *args, **kwargs)
            with lock:
                self.lookups += 1
                address = first if self.lookups <= honest_answers else then
            return real(address, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
