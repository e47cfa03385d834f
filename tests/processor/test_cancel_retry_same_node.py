"""Cancel and retry a running task on the same node while its first run is still going: the new
run keeps its lease renewed and completes once (issue 13, point 11).

The first run is held inside a real step of its own (fetching the media from a peer node, here a
loopback server the test controls), so the order of events is exact: the second run is claimed and
registered first, then the first run ends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import update

from app.db.models import Task
from config.settings import Settings
from tests.conftest import Clip, running_app, upload
from tests.long_audio import concat_wav

pytestmark = pytest.mark.slow

PEER_SECRET = "peer-secret-for-tests"


@dataclass
class MediaPeer:
    """Serves ``/internal/v1/media/<name>`` from ``directory``; the first request waits for
    ``release`` and is then refused (the first run fails where it stands)."""

    url: str
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    async def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} of {count} requests arrived"
            await asyncio.sleep(0.02)


@contextmanager
def media_peer(directory: Path) -> Iterator[MediaPeer]:
    state: dict[str, MediaPeer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = state["peer"]
            peer.requests.append(self.path)
            if len(peer.requests) == 1:
                peer.release.wait(60)
                self.send_error(503)
                return
            assert self.headers["Authorization"] == f"Bearer {PEER_SECRET}"
            data = (directory / self.path.rsplit("/", 1)[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["peer"] = MediaPeer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["peer"]
    finally:
        state["peer"].release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_cancel_and_retry_while_the_first_run_is_still_going(
    make_settings: Callable[..., Settings], tmp_path: Path, clips: dict[str, Clip]
) -> None:
    long_audio = tmp_path / "long.wav"
    concat_wav([clips["jfk.wav"].path] * 6, long_audio)
    settings = make_settings(
        storage={"peer_secret": PEER_SECRET},
        processor={
            "max_concurrent_tasks": 2,
            # A lease that lapses well before the second run ends, unless it is renewed.
            "lease_seconds": 5,
            "heartbeat_interval_seconds": 0.5,
            "progress_interval_seconds": 0.2,
            "max_attempts": 5,
        },
    )
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    async with running_app(settings, paused=True) as running:
        client, container = running.client, running.container
        assert container.processor is not None
        created = await upload(client, long_audio)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        with media_peer(peer_dir) as peer:
            # The media lives on "another node": the worker fetches it from the peer.
            task = await container.repositories.tasks.get(task_id)
            assert task is not None and task.media_path is not None
            container.storage.path_of(task.media_path).rename(peer_dir / task.media_path)
            async with container.engine.begin() as connection:
                await connection.execute(update(Task).where(Task.id == task_id).values(media_node=peer.url))
            container.processor.resume()

            await peer.wait_for(1)  # the first run is fetching, held by the peer
            cancelled = await client.post(f"/api/v1/tasks/{task_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            retried = await client.post(f"/api/v1/tasks/{task_id}/retry")
            assert retried.status_code == 200, retried.text
            await peer.wait_for(2)  # the second run is claimed and fetching
            peer.release.set()  # now the first run ends (its fetch is refused)

            done = (await client.get(f"/api/v1/tasks/{task_id}", params={"wait": 180})).json()
        assert done["status"] == "completed", done
        # Attempt 2 ran to the end: its lease was renewed all along, it was never reaped and redone.
        assert done["attempts"] == 2, done
        assert len(peer.requests) == 2, peer.requests
        assert "country" in done["result"]["text"]
        log = (tmp_path / "logs" / "tingxie.log").read_text()
        assert "reaper:" not in log and "lost the lease" not in log
