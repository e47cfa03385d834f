"""SIGTERM stops a real server within 15 s while a live-event (SSE) client and a ``?wait=600``
long poll are open and a task is running; the task goes back to the queue (issue 13, point 8).

Before, uvicorn waited for every open connection to close before the app's shutdown ran, so one
SSE client kept the server, and its running task, up for as long as it stayed.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from tests.conftest import Clip, running_app, upload
from tests.long_audio import concat_wav
from tests.server_process import free_port, server_env, start_server

pytestmark = pytest.mark.slow


@dataclass
class OpenStream:
    """An SSE client on a thread: the events it got, and whether the server ended the stream."""

    url: str
    events: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(5, read=120)) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        self.events.append(line.removeprefix("event: "))
        except BaseException as exc:  # recorded for the test's assertions
            self.error = exc
        finally:
            self.ended.set()


@dataclass
class LongPoll:
    url: str
    response: httpx.Response | None = None
    error: BaseException | None = None
    ended: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            self.response = httpx.get(self.url, params={"wait": 600}, timeout=700)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended.set()


def _task_row(database: Path, task_id: str) -> tuple[str, int]:
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT status, attempts FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return str(row[0]), int(row[1])


@pytest.mark.parametrize(
    ("signals", "signum"),
    [(1, signal.SIGTERM), (2, signal.SIGTERM), (2, signal.SIGINT)],
    # Two SIGINTs are uvicorn's forced exit, which skips the app's own shutdown.
    ids=["sigterm", "sigterm-twice", "sigint-twice"],
)
def test_sigterm_with_open_sse_and_long_poll_exits_and_requeues(
    tmp_path: Path, model_dir: Path, clips: dict[str, Clip], signals: int, signum: signal.Signals
) -> None:
    long_audio = tmp_path / "two-minutes.wav"
    concat_wav([clips["jfk.wav"].path] * 11, long_audio)
    settings = {
        "WHISPER__DEFAULT_MODEL": "tiny.en",
        "PROCESSOR__PROGRESS_INTERVAL_SECONDS": "0",
    }
    if signals == 1:
        # One signal lets the task run on for the shutdown timeout, then hands it back.
        settings["PROCESSOR__SHUTDOWN_TIMEOUT_SECONDS"] = "2"
    # Two signals: the default 30 s timeout; the second signal hands the task back at once.
    env = server_env(tmp_path, model_dir, **settings)
    port = free_port()
    log = tmp_path / "server.out"
    base = f"http://127.0.0.1:{port}"
    process = start_server(env, port, log)
    try:
        with long_audio.open("rb") as handle:
            task_id = httpx.post(f"{base}/api/v1/tasks", files={"file": handle}, timeout=30).json()["id"]
        deadline = time.monotonic() + 60
        while True:
            task = httpx.get(f"{base}/api/v1/tasks/{task_id}").json()
            if task["status"] == "processing" and task["progress"] > 0:
                break
            assert time.monotonic() < deadline, task
            time.sleep(0.05)

        stream = OpenStream(f"{base}/api/v1/tasks/{task_id}/events?keepalive=1")
        poll = LongPoll(f"{base}/api/v1/tasks/{task_id}")
        for client in (stream, poll):
            threading.Thread(target=client.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while "status" not in stream.events:
            assert time.monotonic() < deadline and not stream.ended.is_set(), stream
            time.sleep(0.05)
        time.sleep(0.5)  # the long poll is waiting by now
        assert not poll.ended.is_set()

        stopped_at = time.monotonic()
        process.send_signal(signum)
        if signals == 2:
            time.sleep(1)
            process.send_signal(signum)
        try:
            process.wait(15 - (time.monotonic() - stopped_at))
        except subprocess.TimeoutExpired:
            pytest.fail("the server was still up 15 s after SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    # Both clients were answered, not cut off: the stream says why it ends, the poll gets the task.
    assert stream.ended.wait(5) and stream.error is None, stream
    assert stream.events[-1] == "shutdown", stream.events
    assert poll.ended.wait(5) and poll.error is None, poll
    assert poll.response is not None and poll.response.status_code == 200
    assert poll.response.json()["status"] == "processing"
    # The running task went back to the queue, ready for the next start (or another node).
    assert _task_row(tmp_path / "tingxie.db", task_id) == ("queued", 1)
    assert "returning the task to the queue" in (tmp_path / "logs" / "tingxie.log").read_text()


async def test_shutdown_answers_waiting_requests_in_process(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    """The first shutdown signal, in process: a long poll answers with the queued task, a
    synchronous OpenAI-style transcription gets 503 with ``Retry-After`` (its task is deleted,
    as when its client leaves), and a live-event stream ends with a ``shutdown`` event."""
    async with running_app(make_settings(), paused=True) as running:
        client = running.client
        created = await upload(client, clips["jfk.wav"].path)
        task_id = created.json()["id"]
        with clips["goforward.wav"].path.open("rb") as handle:
            transcription = asyncio.create_task(
                client.post("/v1/audio/transcriptions", files={"file": handle}, data={"model": "tiny.en"})
            )
            poll = asyncio.create_task(client.get(f"/api/v1/tasks/{task_id}", params={"wait": 600}))

            async def stream() -> list[str]:
                async with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
                    return [
                        line.removeprefix("event: ")
                        async for line in response.aiter_lines()
                        if line.startswith("event: ")
                    ]

            events = asyncio.create_task(stream())
            deadline = time.monotonic() + 30
            while (await client.get("/api/v1/tasks")).json()["total"] < 2:  # the transcription's task
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert not poll.done() and not transcription.done() and not events.done()

            running.container.begin_shutdown()
            async with asyncio.timeout(10):
                answered, refused, streamed = await asyncio.gather(poll, transcription, events)
        assert answered.status_code == 200 and answered.json()["status"] == "queued"
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0
        assert streamed == ["status", "shutdown"]
        listing = (await client.get("/api/v1/tasks")).json()
        assert [task["id"] for task in listing["items"]] == [task_id]
