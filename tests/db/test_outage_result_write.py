"""A transcript that finishes while the database is down is never stored as failed: its write is
retried through the outage, and if the outage outlasts that, the task is queued again by its
lease and completes (issue 13, low item).

Before, the result write gave up after ``PROCESSOR__OUTAGE_RETRY_SECONDS`` and fell into the
failure path, whose own write then succeeded once the database was back: a finished
transcription stored as ``failed`` with the database's connection error.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from tests.conftest import Clip, running_app, upload
from tests.db.test_outage import PrivateMariaDB
from tests.long_audio import concat_wav

pytestmark = pytest.mark.slow

OUTAGE_BUDGET_SECONDS = 6.0
RETRY_WAIT_MAX_SECONDS = 2.25
"""The longest wait between two retries (``through_outage``): the last retry may start that much
after the budget is spent."""


@pytest.fixture
def mariadb() -> Iterator[PrivateMariaDB]:
    root = Path(tempfile.mkdtemp(prefix="tingxie-result-outage-"))
    server = PrivateMariaDB(root)
    try:
        server.install()
    except (FileNotFoundError, KeyError, subprocess.CalledProcessError, RuntimeError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        message = f"cannot run a private MariaDB server: {exc}"
        if os.environ.get("TINGXIE_REQUIRE_DATABASES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _outage_retries(log: Path) -> int:
    """Retries logged by ``app.db.outages``: only the processor's essential writes go through it."""
    return sum("app.db.outages" in line for line in log.read_text().splitlines())


async def test_result_finished_during_an_outage_is_not_stored_as_failed(
    mariadb: PrivateMariaDB,
    make_settings: Callable[..., Settings],
    clips: dict[str, Clip],
    tmp_path: Path,
) -> None:
    audio = tmp_path / "jfk-x5.wav"
    concat_wav([clips["jfk.wav"].path] * 5, audio)
    settings = make_settings(
        database_url=mariadb.url,
        processor={
            "lease_seconds": 8,
            "heartbeat_interval_seconds": 1,
            "progress_interval_seconds": 0.2,
            "outage_retry_seconds": OUTAGE_BUDGET_SECONDS,
        },
    )
    log = tmp_path / "logs" / "tingxie.log"
    async with running_app(settings) as running:
        client = running.client
        created = await upload(client, audio)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        deadline = time.monotonic() + 120
        while True:
            task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
            if task["status"] == "processing" and task["progress"] > 0:
                break
            assert task["status"] in ("queued", "processing"), task
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.05)

        # The database goes away while the task decodes; the decode ends during the outage.
        before = _outage_retries(log)
        await asyncio.to_thread(mariadb.stop)
        deadline = time.monotonic() + 120
        while _outage_retries(log) == before:  # the result write meets the outage
            assert time.monotonic() < deadline, "the task never tried to store its result"
            await asyncio.sleep(0.1)
        # The outage outlasts the result write's retries; then the database comes back.
        await asyncio.sleep(OUTAGE_BUDGET_SECONDS + RETRY_WAIT_MAX_SECONDS + 1)
        await asyncio.to_thread(mariadb.start)

        done = (await client.get(f"/api/v1/tasks/{task_id}", params={"wait": 120})).json()
        assert done["status"] == "completed", done
        assert "country" in done["result"]["text"]
        # The first run gave its result up (the database outlasted the budget); its lease lapsed
        # and the second run stored the transcript.
        assert done["attempts"] == 2, done
