"""A real loopback HTTP server that answers 200 and then sends its body too slowly or forever."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Body(Enum):
    TRICKLE = "trickle"
    """One byte every ``interval`` seconds, forever: httpx's per-read timeout never fires."""
    ENDLESS = "endless"
    """64 KiB chunks as fast as the client reads them, forever (chunked encoding)."""


@dataclass
class SlowPeer:
    url: str
    requests: list[float] = field(default_factory=list)
    """When each request arrived (``time.monotonic()``)."""
    finished: list[float] = field(default_factory=list)
    """When the server saw each client go away."""

    def wait_for_request(self, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} of {count} requests arrived"
            time.sleep(0.02)


@contextmanager
def slow_peer(body: Body, *, interval: float = 0.1) -> Iterator[SlowPeer]:
    """Serve on 127.0.0.1 at a free port until the block exits."""
    stopping = threading.Event()
    state: dict[str, SlowPeer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            peer = state["peer"]
            peer.requests.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if body is Body.TRICKLE:
                self.send_header("Content-Length", str(10**9))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while not stopping.is_set():
                    if body is Body.TRICKLE:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        stopping.wait(interval)
                    else:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the client gave up: what the tests want
                pass
            finally:
                peer.finished.append(time.monotonic())
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["peer"] = SlowPeer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["peer"]
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
