"""``tingxie transcribe`` (run as ``python -m app.cli``) against live ``tingxie serve`` processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import srt
import webvtt

from app.cli.transcribe import ExitCode
from tests.conftest import ROOT, Clip, normalize_en
from tests.http_peer import serve_directory
from tests.server_process import free_port, server_env, start_server

pytestmark = pytest.mark.slow

JFK_PHRASE = "ask not what your country can do for you"


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    """The server's environment (its database and node id), for ``tingxie health --worker``."""


def _serve(root: Path, model_dir: Path, role: str) -> Iterator[Server]:
    port = free_port()
    env = server_env(
        root,
        model_dir,
        WHISPER__DEFAULT_MODEL="tiny.en",
        WHISPER__LOAD_MODE="lazy",
        NETWORK__ALLOWED_HOSTS='["127.0.0.1"]',
    )
    process = start_server(env, port, root / "server.log", role=role, command=("-m", "app.cli", "serve"))
    try:
        yield Server(f"http://127.0.0.1:{port}", env)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    """``tingxie serve``: the API and a processor."""
    yield from _serve(tmp_path_factory.mktemp("cli-all"), model_dir, "all")


@pytest.fixture
def server(live: Server) -> str:
    return live.url


@pytest.fixture(scope="module")
def api_only_server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    """``tingxie serve --role api``: tasks are queued but nothing runs them."""
    yield from _serve(tmp_path_factory.mktemp("cli-api"), model_dir, "api")


@pytest.fixture
def api_only(api_only_server: Server) -> str:
    return api_only_server.url


def tingxie(
    *args: str | Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_transcribes_a_file_with_a_progress_bar(server: str, clips: dict[str, Clip], tmp_path: Path) -> None:
    out = tmp_path / "jfk.srt"
    done = tingxie("transcribe", clips["jfk.flac"].path, "--server", server, "--format", "srt", "-o", out)
    assert done.returncode == ExitCode.OK, done.stderr
    cues = list(srt.parse(out.read_text(encoding="utf-8")))
    assert cues and JFK_PHRASE in normalize_en(" ".join(cue.content for cue in cues))
    assert "100%" in done.stderr, done.stderr  # the bar, fed by the task's events, reached the end
    assert f"wrote {out}" in done.stderr
    assert done.stdout == ""


def test_writes_to_standard_output_in_each_format(
    server: str, clips: dict[str, Clip], tmp_path: Path
) -> None:
    audio = clips["jfk.flac"].path
    text = tingxie("transcribe", audio, "--server", server, "--no-progress")
    assert text.returncode == ExitCode.OK, text.stderr
    assert JFK_PHRASE in normalize_en(text.stdout)
    assert "%|" not in text.stderr  # --no-progress

    as_json = tingxie("transcribe", audio, "--server", server, "--format", "json", "--no-progress")
    assert as_json.returncode == ExitCode.OK, as_json.stderr
    result = json.loads(as_json.stdout)
    assert JFK_PHRASE in normalize_en(result["text"]) and result["segments"]

    vtt_file = tmp_path / "jfk.vtt"
    vtt_file.write_text(tingxie("transcribe", audio, "--server", server, "--format", "vtt").stdout)
    assert JFK_PHRASE in normalize_en(" ".join(c.text for c in webvtt.read(str(vtt_file))))


def test_a_media_url_is_fetched_by_the_server(server: str, clips: dict[str, Clip]) -> None:
    with serve_directory(clips["jfk.flac"].path.parent) as base:
        done = tingxie("transcribe", f"{base}/jfk.flac", "--server", server, "--no-progress")
    assert done.returncode == ExitCode.OK, done.stderr
    assert JFK_PHRASE in normalize_en(done.stdout)


def test_exit_codes_tell_failures_apart(api_only: str, tmp_path: Path) -> None:
    missing = tingxie("transcribe", tmp_path / "nope.wav", "--server", api_only)
    assert missing.returncode == ExitCode.USAGE and "no such file" in missing.stderr

    not_media = tmp_path / "notes.txt"
    not_media.write_text("this is not audio\n" * 100)
    refused = tingxie("transcribe", not_media, "--server", api_only)
    assert refused.returncode == ExitCode.REJECTED, refused.stderr
    assert "415" in refused.stderr  # the problem's status and detail are shown

    unreachable = tingxie("transcribe", not_media, "--server", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == ExitCode.UNREACHABLE, unreachable.stderr

    bad_usage = tingxie("transcribe", not_media, "--format", "docx")
    assert bad_usage.returncode == ExitCode.USAGE


def test_a_cancelled_task_exits_with_task_failed(api_only: str, clips: dict[str, Clip]) -> None:
    """Nothing runs tasks on an API-only server: the CLI waits on the events until the task is cancelled."""
    cli = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "transcribe", str(clips["jfk.flac"].path), "--server", api_only],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            queued = httpx.get(f"{api_only}/api/v1/tasks", params={"status": "queued"}, timeout=5).json()
            if queued["items"]:
                break
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() < deadline, "the CLI never queued its task"
            time.sleep(0.2)
        task_id = queued["items"][0]["id"]
        assert httpx.post(f"{api_only}/api/v1/tasks/{task_id}/cancel", timeout=5).status_code == 200
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == ExitCode.TASK_FAILED, stderr
    assert f"task {task_id} cancelled" in stderr
    assert stdout == ""


def test_health_checks_a_server_and_a_worker(live: Server, api_only_server: Server) -> None:
    assert tingxie("health", "--server", live.url).returncode == ExitCode.OK
    assert tingxie("health", "--server", f"http://127.0.0.1:{free_port()}").returncode == ExitCode.UNREACHABLE
    # ``serve`` runs a processor that heartbeats under the node id; an API-only server runs none.
    assert tingxie("health", "--worker", env=live.env).returncode == ExitCode.OK
    nobody = tingxie("health", "--worker", env=api_only_server.env)
    assert nobody.returncode == ExitCode.TASK_FAILED and "no live worker" in nobody.stderr
