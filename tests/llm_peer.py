"""A real local OpenAI-compatible chat API for tests: records every request, replies by content."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAILING_MODEL = "broken-model"
"""Requests for this model get a 400 whose message echoes the Authorization header."""


@dataclass
class Exchange:
    """One request the server received and what it answered."""

    authorization: str | None
    body: dict[str, Any]
    reply: str | None
    status: int

    @property
    def user(self) -> str:
        return str(self.body["messages"][-1]["content"])

    @property
    def system(self) -> str:
        return str(self.body["messages"][0]["content"])

    @property
    def kind(self) -> str:
        """``map`` (one part), ``reduce`` (combines partial summaries) or ``single``."""
        if "Combine these summaries" in self.user:
            return "reduce"
        if "Part " in self.user and " of the transcript" in self.user:
            return "map"
        return "single"


@dataclass
class ChatServer:
    base_url: str
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[Exchange]:
        """The exchanges since the last call."""
        with self.lock:
            taken = list(self.exchanges)
            self.exchanges.clear()
        return taken

    def take_settled(self, quiet: float = 1.0, limit: float = 10.0) -> list[Exchange]:
        """The exchanges since the last call, once none has arrived for ``quiet`` seconds: after
        a failed map step the summarizer cancels the other parts, but requests it had already
        sent still reach this server, and must not be counted by the next test."""
        taken: list[Exchange] = []
        deadline = time.monotonic() + limit
        while True:
            arrived = self.take()
            taken.extend(arrived)
            if (not arrived and taken) or time.monotonic() > deadline:
                return taken
            time.sleep(quiet)


def reply_for(kind: str, user: str) -> str:
    """Deterministic reply that depends on the input, so tests can follow map and reduce."""
    return f"{kind}-{hashlib.sha256(user.encode()).hexdigest()[:10]}"


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            authorization = self.headers.get("Authorization")
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            exchange = Exchange(authorization, body, None, 200)
            if body.get("model") == FAILING_MODEL:
                exchange.status = 400
                with server.lock:
                    server.exchanges.append(exchange)
                self._send(
                    400,
                    {
                        "error": {
                            "message": f"model {FAILING_MODEL} does not exist (credentials: {authorization})",
                            "type": "invalid_request_error",
                            "code": "model_not_found",
                        }
                    },
                )
                return
            exchange.reply = reply_for(exchange.kind, exchange.user)
            with server.lock:
                server.exchanges.append(exchange)
            prompt_tokens = sum(len(str(m["content"])) for m in body["messages"]) // 4
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(server.exchanges)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": exchange.reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": 5,
                        "total_tokens": prompt_tokens + 5,
                    },
                },
            )

    return Handler


@contextmanager
def serve_chat_api() -> Iterator[ChatServer]:
    """An OpenAI-compatible ``POST /v1/chat/completions`` on 127.0.0.1 at a free port."""
    state = ChatServer(base_url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
