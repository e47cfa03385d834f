"""``tingxie transcribe``: send a file or a link to a running server and write its transcript.

A local file is uploaded; a TikTok/Douyin/YouTube/Bilibili/... page goes to ``/tasks/from-link``
and any other http(s) URL is fetched by the server as ``file_url``. A progress bar follows the
task's server-sent events (``/tasks/{id}/events``) on standard error, and the result, rendered by
the server as txt, srt, vtt or json, goes to ``-o OUT`` or standard output.

This module talks HTTP only: it imports neither the models nor the database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
from httpx_sse import SSEError, connect_sse
from tqdm import tqdm

from app.media.platforms import GENERIC, detect_platform
from config.settings import Settings

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ExitCode(IntEnum):
    """What ``tingxie transcribe`` exits with, so scripts can tell failures apart."""

    OK = 0
    TASK_FAILED = 1
    """The server ran the task and it failed, or it was cancelled or deleted meanwhile."""
    USAGE = 2
    """Bad arguments or a local file that cannot be read (argparse exits with 2 too)."""
    UNREACHABLE = 3
    """No connection to the server, or it broke off."""
    REJECTED = 4
    """The server refused the request (4xx: a bad key, an unsupported file, a limit)."""
    SERVER_ERROR = 5
    """The server answered 5xx (e.g. 503 when it is over capacity)."""
    INTERRUPTED = 130
    """Ctrl-C: the task keeps running on the server; its id was printed."""


class CommandError(Exception):
    """Ends the command with ``code`` after printing ``message`` to standard error."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="transcribe a file or link through a running server",
        description=(
            "Upload FILE (or submit URL) to a Tingxie server, show its progress and write the result. "
            "Exit codes: 0 done, 1 the task failed, 2 usage, 3 server unreachable, 4 request refused "
            "(4xx), 5 server error (5xx), 130 interrupted."
        ),
    )
    parser.add_argument("source", metavar="FILE_OR_URL", help="a media file, a media URL or a platform link")
    parser.add_argument(
        "--server",
        default=os.environ.get("TINGXIE_SERVER", DEFAULT_SERVER),
        help=f"server base URL (default: $TINGXIE_SERVER or {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("TINGXIE_API_KEY"), help="API key (default: $TINGXIE_API_KEY)"
    )
    parser.add_argument("--model", help="model name (default: the server's)")
    parser.add_argument("--language", help="spoken language code, e.g. en or zh (default: detected)")
    parser.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    parser.add_argument("--priority", choices=("high", "normal", "low"), default="normal")
    parser.add_argument("--format", choices=("txt", "srt", "vtt", "json"), default="txt")
    parser.add_argument("-o", "--output", type=Path, help="write the result here (default: standard output)")
    parser.add_argument("--diarize", action="store_true", help="label who spoke when")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each server response (default: 60)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    timeout = httpx.Timeout(args.timeout, read=None)  # the event stream is quiet between keep-alives
    task_id: str | None = None
    try:
        with httpx.Client(base_url=args.server.rstrip("/"), headers=headers, timeout=timeout) as client:
            task = _submit(client, args)
            task_id = task["id"]
            print(f"task {task_id} queued", file=sys.stderr)
            final = _follow(client, task, show=not args.no_progress)
            if final.get("status") != "completed":
                error = final.get("error") or final.get("status")
                raise CommandError(ExitCode.TASK_FAILED, f"task {task_id} {final.get('status')}: {error}")
            _write(_fetch(client, task_id, args.format), args.output)
    except CommandError as exc:
        print(f"tingxie: {exc}", file=sys.stderr)
        return exc.code
    except httpx.TransportError as exc:
        print(f"tingxie: cannot reach {args.server}: {exc}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    except KeyboardInterrupt:
        if task_id is not None:
            print(f"\ntingxie: interrupted; task {task_id} goes on on the server", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return ExitCode.OK


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"task_type": args.task, "priority": args.priority}
    if args.model:
        options["model"] = args.model
    if args.language:
        options["language"] = args.language
    if args.diarize:
        options["diarize"] = True
    return options


def _as_form(options: dict[str, Any]) -> dict[str, str]:
    return {
        key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in options.items()
    }


def _submit(client: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    source: str = args.source
    options = _options(args)
    if source.startswith(("http://", "https://")):
        if detect_platform(source).platform != GENERIC:
            return _json(client.post("/api/v1/tasks/from-link", json={"url": source, **options}))
        return _json(client.post("/api/v1/tasks", data={**_as_form(options), "file_url": source}))
    path = Path(source)
    if not path.is_file():
        raise CommandError(ExitCode.USAGE, f"{source}: no such file (or give an http(s) URL)")
    upload_timeout = httpx.Timeout(args.timeout, write=None)  # a large file may take long to send
    try:
        with path.open("rb") as media:
            return _json(
                client.post(
                    "/api/v1/tasks",
                    data=_as_form(options),
                    files={"file": (path.name, media)},
                    timeout=upload_timeout,
                )
            )
    except OSError as exc:
        raise CommandError(ExitCode.USAGE, f"{source}: {exc.strerror}") from exc


def _follow(client: httpx.Client, task: dict[str, Any], *, show: bool) -> dict[str, Any]:
    """Follow the task's events until its ``end`` event; return the final task."""
    with _progress_bar(show) as bar:
        bar.set_postfix_str(task["status"])
        try:
            with connect_sse(client, "GET", f"/api/v1/tasks/{task['id']}/events") as events:
                _raise_for_status(events.response)
                for event in events.iter_sse():
                    if not event.data:  # the stream's opening ``retry:`` line
                        continue
                    data = json.loads(event.data)
                    if event.event == "end":
                        if data.get("status") == "completed":
                            bar.update(100 - bar.n)
                        return dict(data)
                    if "progress" in data:
                        bar.update(max(0, int(data["progress"]) - bar.n))
                    if "status" in data:
                        bar.set_postfix_str(data["status"])
        except (SSEError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the stream broke off: ask for the task itself below
    return _json(client.get(f"/api/v1/tasks/{task['id']}", params={"wait": 600}, timeout=None))


@contextlib.contextmanager
def _progress_bar(show: bool) -> Iterator[tqdm]:
    bar: tqdm = tqdm(
        total=100,
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{percentage:3.0f}%|{bar}| {elapsed} {postfix}",
    )
    try:
        yield bar
    finally:
        bar.close()


def _fetch(client: httpx.Client, task_id: str, fmt: str) -> bytes:
    response = client.get(f"/api/v1/tasks/{task_id}/subtitles", params={"format": fmt})
    _raise_for_status(response)
    return response.content


def _write(body: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(body)
    except OSError as exc:
        raise CommandError(ExitCode.USAGE, f"{output}: {exc.strerror}") from exc
    print(f"wrote {output}", file=sys.stderr)


def _json(response: httpx.Response) -> dict[str, Any]:
    _raise_for_status(response)
    body: dict[str, Any] = response.json()
    return body


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    _fail(response)


def _fail(response: httpx.Response) -> NoReturn:
    """Turn an error response (RFC 9457 problem details where the server sent them) into a CommandError."""
    detail = response.text.strip()
    with contextlib.suppress(ValueError):
        problem = response.json()
        if isinstance(problem, dict):
            detail = str(problem.get("detail") or problem.get("title") or detail)
    code = ExitCode.SERVER_ERROR if response.status_code >= 500 else ExitCode.REJECTED
    raise CommandError(
        code, f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}"
    )
