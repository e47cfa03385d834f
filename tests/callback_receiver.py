"""A real local webhook receiver for callback tests: fails the first N requests, then accepts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str
    fail_first: int
    fail_status: int = 500
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} of {count} callbacks arrived"
            await asyncio.sleep(0.05)
        return list(self.requests)


@contextmanager
def callback_receiver(
    fail_first: int = 0, fail_status: int = 500, port: int = 0, host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    """Serve on ``host`` at ``port`` (a free one by default); every POST is recorded with its headers
    and body."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = state["receiver"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                number = len(receiver.requests)
            failing = number <= receiver.fail_first
            reply = f"receiver says no ({number})" if failing else "ok, thanks"
            self.send_response(receiver.fail_status if failing else 200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    state["receiver"] = Receiver(f"http://{host}:{server.server_address[1]}", fail_first, fail_status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def verified_payload(received: Received, secret: str) -> dict[str, Any]:
    """What a receiver does, written independently of the service's code."""
    timestamp = received.headers["x-tingxie-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256)
    signature = received.headers["x-tingxie-signature"]
    assert signature.startswith("sha256=")
    assert hmac.compare_digest(signature.removeprefix("sha256="), expected.hexdigest())
    assert abs(time.time() - int(timestamp)) < 300
    assert received.headers["content-type"] == "application/json"
    payload: dict[str, Any] = json.loads(received.body)
    return payload
