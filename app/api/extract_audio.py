"""Audio extraction for the HTTP layer: upload in, streamed audio out, no temp file left behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.problems import ProblemError
from app.media.extract import (
    ExtractLimits,
    ExtractOptions,
    ExtractOptionsError,
    ExtractTooLargeError,
    extract_audio,
)
from app.media.probe import MediaTooLongError, NotMediaError, probe_media
from app.media.storage import (
    CHUNK_SIZE,
    AsyncReader,
    EmptyMediaError,
    MediaStorage,
    MediaTooLargeError,
)
from app.services.admission import AdmissionControl
from app.services.task_service import display_name
from config.settings import LimitsSettings


class TempFileStreamingResponse(StreamingResponse):
    """Streams a file in chunks and deletes it once the response ends, fails or the client leaves."""

    def __init__(self, path: Path, *, media_type: str, headers: dict[str, str] | None = None) -> None:
        self.path = path
        super().__init__(self._chunks(), media_type=media_type, headers=headers)

    async def _chunks(self) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.path, "rb") as handle:
            while chunk := await handle.read(CHUNK_SIZE):
                yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.path.unlink(missing_ok=True)


async def extracted_audio_response(
    storage: MediaStorage,
    upload: AsyncReader,
    options: ExtractOptions,
    *,
    admission: AdmissionControl,
    limits: LimitsSettings,
    upload_name: str | None = None,
) -> TempFileStreamingResponse:
    """Save ``upload`` (size limit applies), extract its audio in a thread and stream it back.

    Problems: 400 empty, 413 too large (upload, declared or decoded duration, or output size),
    415 not media, 422 impossible options, 503 over capacity (checked before the upload is saved).
    Both the upload and the produced file live in the media directory (swept if the process dies)
    and are removed here.
    """
    try:
        options = options.validated()
    except ExtractOptionsError as exc:
        raise ProblemError(422, str(exc)) from exc
    await admission.check()
    try:
        stored = await storage.save_upload(upload)
    except MediaTooLargeError as exc:
        raise ProblemError(413, f"the media exceeds the limit of {exc.limit} bytes") from exc
    except EmptyMediaError as exc:
        raise ProblemError(400, "the media file is empty") from exc
    output = storage.path_of(f"{uuid.uuid4().hex}.media")
    caps = ExtractLimits(
        max_seconds=limits.max_media_seconds or None, max_bytes=int(limits.max_extract_mb * 1024 * 1024)
    )
    try:
        # Not abandoned on cancellation: a client that leaves waits for the thread, then cleans up.
        await anyio.to_thread.run_sync(probe_media, stored.path, caps.max_seconds)
        result = await anyio.to_thread.run_sync(extract_audio, stored.path, output, options, caps)
    except NotMediaError as exc:
        raise ProblemError(415, f"the content is not audio or video: {exc}") from exc
    except MediaTooLongError as exc:
        raise ProblemError(413, str(exc), limit="duration", max_seconds=exc.limit) from exc
    except ExtractTooLargeError as exc:
        raise ProblemError(413, str(exc), limit="output_size", max_bytes=exc.limit) from exc
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    finally:
        storage.remove(stored.name)
    stem = Path(display_name(upload_name) or "audio").stem or "audio"
    file_name = f"{stem}.{result.options.extension}"
    used = result.options
    headers = {
        "Content-Disposition": (
            f'attachment; filename="{_ascii_name(file_name, result.options.extension)}"; '
            f"filename*=UTF-8''{quote(file_name, safe='')}"
        ),
        "Content-Length": str(result.size),
        "X-Audio-Sample-Rate": str(used.sample_rate),
        "X-Audio-Channels": str(used.channels),
        "X-Audio-Duration": f"{result.duration:.3f}",
    }
    if used.bit_depth is not None:
        headers["X-Audio-Bit-Depth"] = str(used.bit_depth)
    return TempFileStreamingResponse(result.path, media_type=used.media_type, headers=headers)


def _ascii_name(name: str, extension: str) -> str:
    """An ASCII fallback of ``name`` for clients that ignore ``filename*``."""
    ascii_name = "".join(ch for ch in name if 32 <= ord(ch) < 127 and ch not in '"\\')
    return ascii_name if ascii_name.strip(". ") and not ascii_name.startswith(".") else f"audio.{extension}"
