"""Logging: a rotating file in ``log_files/`` (safe across processes) and the console.

Every record carries ``task_id`` from a context variable, so each line about a task names it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from concurrent_log_handler import ConcurrentRotatingFileHandler

from config.settings import LoggingSettings

current_task_id: ContextVar[str] = ContextVar("current_task_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [task=%(task_id)s] %(name)s: %(message)s"
_HANDLER_MARK = "_tingxie_handler"


class TaskIdFilter(logging.Filter):
    """Adds ``record.task_id`` from the current context."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "task_id"):
            record.task_id = current_task_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, task_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task_id = getattr(record, "task_id", "-")
        if task_id and task_id != "-":
            entry["task_id"] = task_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


@contextmanager
def task_log_context(task_id: str) -> Iterator[None]:
    """Tag every log line emitted inside the block (and tasks it spawns) with ``task_id``."""
    token = current_task_id.set(task_id)
    try:
        yield
    finally:
        current_task_id.reset(token)


def configure_logging(settings: LoggingSettings) -> None:
    """Install the file and console handlers on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    settings.dir.mkdir(parents=True, exist_ok=True)
    formatter = JsonFormatter() if settings.format == "json" else logging.Formatter(LOG_FORMAT)
    file_handler = ConcurrentRotatingFileHandler(
        str(settings.dir / "tingxie.log"),
        maxBytes=settings.max_bytes,
        backupCount=settings.backup_count,
        encoding="utf-8",
    )
    console = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        handler.addFilter(TaskIdFilter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(settings.level)
    for noisy in ("faster_whisper", "httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
