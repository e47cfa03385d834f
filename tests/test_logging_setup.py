"""Logs go to a rotating file in the log directory and name the task they are about."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest

from config.settings import Settings
from tests.conftest import Clip, running_app, upload, wait_done


@pytest.mark.slow
async def test_task_lines_carry_the_task_id(
    make_settings: Callable[..., Settings], clips: dict[str, Clip]
) -> None:
    settings = make_settings()
    async with running_app(settings) as running:
        task_id = (await upload(running.client, clips["goforward.wav"].path)).json()["id"]
        await wait_done(running.client, task_id)
        assert (await running.client.delete(f"/api/v1/tasks/{task_id}")).status_code == 204
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (settings.logging.dir / "tingxie.log").read_text(encoding="utf-8")
    about_task = [line for line in text.splitlines() if task_id in line]
    assert len(about_task) >= 4, text  # queued, processing, completed, deleted
    for keyword in ("queued", "processing", "completed", "deleted"):
        assert any(keyword in line and f"[task={task_id}]" in line for line in about_task), keyword


def test_rotation_handler_is_concurrent_safe(make_settings: Callable[..., Settings]) -> None:
    from concurrent_log_handler import ConcurrentRotatingFileHandler

    from app.logging_setup import configure_logging

    settings = make_settings(logging={"max_bytes": 2048, "backup_count": 2})
    configure_logging(settings.logging)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ConcurrentRotatingFileHandler)]
    assert len(handlers) == 1
    for index in range(200):
        logging.getLogger("tingxie.test").warning("line %d with some padding to force rotation", index)
    files = sorted(p.name for p in settings.logging.dir.iterdir() if p.name.startswith("tingxie.log"))
    assert "tingxie.log" in files and "tingxie.log.1" in files
    assert len([f for f in files if f.startswith("tingxie.log.")]) <= 2


def test_json_format_writes_one_object_per_line(make_settings: Callable[..., Settings]) -> None:
    import json

    from app.logging_setup import configure_logging, task_log_context

    settings = make_settings(logging={"format": "json"})
    try:
        configure_logging(settings.logging)
        log = logging.getLogger("tingxie.json")
        log.info("plain %s", "line")
        with task_log_context("abc123"):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("it failed: 多字节")
        for handler in logging.getLogger().handlers:
            handler.flush()
        lines = (settings.logging.dir / "tingxie.log").read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        plain = next(e for e in entries if e["message"] == "plain line")
        assert plain["level"] == "INFO" and plain["logger"] == "tingxie.json"
        assert plain["time"].endswith("+00:00") and "task_id" not in plain and "exception" not in plain
        failed = next(e for e in entries if e["message"] == "it failed: 多字节")
        assert failed["level"] == "ERROR" and failed["task_id"] == "abc123"
        assert "ValueError: boom" in failed["exception"] and "Traceback" in failed["exception"]
    finally:
        configure_logging(make_settings().logging)  # back to text for the tests that follow


RECORD_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \[task="
)


async def test_text_from_requests_cannot_forge_log_lines(make_settings: Callable[..., Settings]) -> None:
    """A workflow name with a newline once wrote a second, forged ``WARNING`` line. Every control
    character in a message or its arguments is now escaped, and traceback lines are indented: each
    line at column 0 starts a real record."""
    forged = "2026-01-01 00:00:00,000 WARNING [task=-] app.api.auth: admin key accepted"
    settings = make_settings()
    async with running_app(settings) as running:
        created = await running.client.post(
            "/api/v1/workflows",
            json={
                "name": f"notes\n{forged}\r\x1b[2Jdone\u2028end",
                "steps": [{"id": "transcribe", "uses": "transcribe"}],
            },
        )
        assert created.status_code == 201, created.text
        log = logging.getLogger("tingxie.test")
        try:
            raise ValueError(f"bad input\n{forged}")
        except ValueError:
            log.exception("could not parse %r", "x\ny")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = (settings.logging.dir / "tingxie.log").read_text(encoding="utf-8").splitlines()
    for line in lines:
        assert RECORD_START.match(line) or line.startswith(" "), line
    assert not any(
        forged in line and not line.startswith(" ") and "created workflow" not in line for line in lines
    )
    (created_line,) = [line for line in lines if "created workflow" in line]
    assert f"(notes\\n{forged}\\r\\x1b[2Jdone\\u2028end, 1 step(s))" in created_line, created_line
    assert "\x1b" not in "\n".join(lines)
    traceback = lines[lines.index(next(line for line in lines if "could not parse" in line)) + 1 :]
    assert traceback[0] == "    Traceback (most recent call last):", traceback
    assert f"    {forged}" in traceback, traceback
