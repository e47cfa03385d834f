"""Media files on disk: streamed uploads and downloads with a size limit, retention and sweeping."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import httpx

from app.net.url_guard import TooManyRedirectsError, UrlGuard, guarded_stream

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
_NAME_PATTERN = re.compile(r"^[0-9a-f]{32}\.media$")


class MediaTooLargeError(Exception):
    """The media exceeds the configured size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"media exceeds the limit of {limit} bytes")
        self.limit = limit


class MediaDownloadError(Exception):
    """A ``file_url`` could not be downloaded."""


class EmptyMediaError(Exception):
    """The media file is empty."""


class AsyncReader(Protocol):
    """Anything with ``async read(n)``, such as Starlette's ``UploadFile``."""

    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class StoredMedia:
    name: str
    """Server-generated file name inside the storage directory."""
    path: Path
    size: int


class MediaStorage:
    """Owns the media directory. File names are generated here; user-supplied names never reach a path."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        http: httpx.AsyncClient,
        guard: UrlGuard | None = None,
        max_redirects: int = 5,
        peer_http: httpx.AsyncClient | None = None,
    ) -> None:
        """``http`` downloads user-supplied URLs (give it a :func:`~app.net.pinned.guarded_client`);
        ``peer_http`` (default: ``http``) fetches media from other nodes of the cluster."""
        self.root = root
        self.max_bytes = max_bytes
        self._http = http
        self._peer_http = peer_http or http
        self._guard = guard
        self._max_redirects = max_redirects
        self.root.mkdir(parents=True, exist_ok=True)

    def path_of(self, name: str) -> Path:
        if not _NAME_PATTERN.match(name):
            raise ValueError(f"invalid media name {name!r}")
        return self.root / name

    async def save_stream(self, chunks: AsyncIterator[bytes], name: str | None = None) -> StoredMedia:
        """Write ``chunks`` to a new file (a generated name unless given), enforcing the size limit."""
        name = name or f"{uuid.uuid4().hex}.media"
        self.path_of(name)  # validates a given name
        final = self.root / name
        partial = final.with_name(name + ".part")
        size = 0
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise MediaTooLargeError(self.max_bytes)
                    await out.write(chunk)
            if size == 0:
                raise EmptyMediaError("the media file is empty")
            partial.replace(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredMedia(name=name, path=final, size=size)

    async def save_upload(self, read: AsyncReader) -> StoredMedia:
        """Copy an upload (anything with ``async read(n)``) into storage in chunks."""

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await read.read(CHUNK_SIZE):
                yield chunk

        return await self.save_stream(chunks())

    async def download(self, url: str, *, headers: Mapping[str, str] | None = None) -> StoredMedia:
        """Stream ``url`` into storage; a declared or actual size over the limit gives 413.

        Redirects are followed one hop at a time; the URL and every ``Location`` pass the SSRF
        guard (``BlockedUrlError``, 422) before anything is requested from them. ``headers`` are
        sent with the request (e.g. the ones yt-dlp gives for a media link's format).
        """
        try:
            async with guarded_stream(
                self._http,
                "GET",
                url,
                self._guard,
                max_redirects=self._max_redirects,
                headers=dict(headers) if headers else None,
            ) as response:
                if response.status_code >= 400:
                    raise MediaDownloadError(f"{url} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise MediaTooLargeError(self.max_bytes)
                return await self.save_stream(response.aiter_bytes(CHUNK_SIZE))
        except TooManyRedirectsError as exc:
            raise MediaDownloadError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise MediaDownloadError(f"could not download {url}: {exc}") from exc

    async def fetch_from_peer(self, node_url: str, name: str, secret: str) -> Path:
        """Copy media ``name`` from the node that received it (authenticated by the shared secret)."""
        url = f"{node_url.rstrip('/')}/internal/v1/media/{name}"
        try:
            async with self._peer_http.stream(
                "GET", url, headers={"Authorization": f"Bearer {secret}"}
            ) as response:
                if response.status_code != 200:
                    raise MediaDownloadError(
                        f"peer {node_url} answered HTTP {response.status_code} for {name}"
                    )
                stored = await self.save_stream(response.aiter_bytes(CHUNK_SIZE), name=name)
        except httpx.HTTPError as exc:
            raise MediaDownloadError(f"could not fetch {name} from peer {node_url}: {exc}") from exc
        return stored.path

    async def copy(self, name: str) -> StoredMedia:
        """A copy of stored media ``name`` under a new generated name (each owner deletes its own copy)."""
        source = self.path_of(name)

        async def chunks() -> AsyncIterator[bytes]:
            async with await anyio.open_file(source, "rb") as handle:
                while chunk := await handle.read(CHUNK_SIZE):
                    yield chunk

        return await self.save_stream(chunks())

    def remove(self, name: str | None) -> None:
        if not name:
            return
        try:
            self.path_of(name).unlink(missing_ok=True)
        except (ValueError, OSError) as exc:
            logger.warning("could not remove media %s: %s", name, exc)

    def sweep_orphans(self, referenced: set[str], *, grace_seconds: float = 600.0) -> int:
        """Delete files no task references (partial uploads, leftovers of a crash).

        Files younger than ``grace_seconds`` are kept: another request or node may be
        between writing the file and inserting its task row.
        """
        removed = 0
        cutoff = time.time() - grace_seconds
        for entry in os.scandir(self.root):
            if not entry.is_file() or entry.name in referenced:
                continue
            if entry.name.startswith("."):
                continue
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            logger.info("swept %d orphaned media file(s) from %s", removed, self.root)
        return removed
