"""Logging: a rotating file in ``log_files/`` (safe across processes) and the console.

Every record carries ``task_id`` from a context variable, so each line about a task names it.

One record is one line: control characters in the message and its arguments (a newline in a
workflow name, an ANSI escape in a file name) are written escaped (``\\n``, ``\\x1b``) by a filter
on every handler, so text from requests cannot forge log lines. Tracebacks, the only multi-line
part, are indented in the text format: a line that starts at column 0 always starts a record.
"""

from __future__ import annotations

import json
import logging
import re
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 control characters (newline, carriage return, escape, ...) and the Unicode line and
paragraph separators."""
TRACEBACK_INDENT = "    "


def escape_control(text: str) -> str:
    """``text`` with each control character written as its escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class ControlCharFilter(logging.Filter):
    """Formats the record's message with its arguments and escapes control characters in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string: the handler reports it as usual
        record.msg = escape_control(message)
        record.args = None
        return True


class TextFormatter(logging.Formatter):
    """:data:`LOG_FORMAT`, with traceback and stack lines indented under their record."""

    def format(self, record: logging.LogRecord) -> str:
        # Another handler's formatter may have cached its own (unindented) traceback text.
        cached = record.exc_text
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei: Any) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join(TRACEBACK_INDENT + escape_control(line) for line in text.splitlines())


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
    formatter = JsonFormatter() if settings.format == "json" else TextFormatter(LOG_FORMAT)
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
        handler.addFilter(ControlCharFilter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(settings.level)
    for noisy in ("faster_whisper", "httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
