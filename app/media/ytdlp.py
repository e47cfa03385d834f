"""Resolve a media link to one downloadable format and its metadata with yt-dlp (no download)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yt_dlp.utils import YoutubeDLError

from app.net.url_guard import UrlGuard
from app.net.ytdlp_guard import GuardedYoutubeDL, ResolveBudget

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_DIRECT_PROTOCOLS = ("http", "https")


class LinkResolveError(Exception):
    """yt-dlp could not resolve the link (unsupported URL, removed video, no usable format...)."""


@dataclass(frozen=True)
class ResolvedMedia:
    media_url: str
    """URL of the chosen format, a plain http(s) file."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers to send when downloading it (yt-dlp's ``http_headers`` plus its cookies)."""
    ext: str | None = None
    format_id: str | None = None
    extractor_key: str | None = None
    media_id: str | None = None
    title: str | None = None
    author: str | None = None
    duration: float | None = None
    webpage_url: str | None = None
    thumbnail: str | None = None
    filesize: int | None = None
    """Size yt-dlp declares for the format, if any."""


def clean_message(message: str) -> str:
    """yt-dlp's message without colour codes and the ``ERROR:`` prefix."""
    text = _ANSI.sub("", message).strip()
    text = re.sub(r"^ERROR:\s*", "", text)
    return text or "yt-dlp could not resolve the link"


class _Logger:
    """Routes yt-dlp's output to logging instead of the console."""

    def debug(self, message: str) -> None:
        logger.debug("yt-dlp: %s", clean_message(message))

    def info(self, message: str) -> None:
        logger.debug("yt-dlp: %s", clean_message(message))

    def warning(self, message: str) -> None:
        logger.info("yt-dlp: %s", clean_message(message))

    def error(self, message: str) -> None:
        logger.info("yt-dlp: %s", clean_message(message))


def ytdlp_options(*, format: str, socket_timeout: float, cookies_file: Path | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "format": format,
        "noplaylist": True,
        "playlist_items": "1",  # a page with several media yields its first one only
        "skip_download": True,
        "socket_timeout": socket_timeout,
        "retries": 1,
        "extractor_retries": 1,
        "cachedir": False,
        "no_color": True,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": _Logger(),
        "check_formats": False,
    }
    if cookies_file is not None:
        options["cookiefile"] = str(cookies_file)
    return options


def resolve_media(
    url: str,
    *,
    format: str,
    socket_timeout: float,
    cookies_file: Path | None = None,
    guard: UrlGuard | None = None,
    budget: ResolveBudget | None = None,
) -> ResolvedMedia:
    """Ask yt-dlp for ``url``'s metadata and the format ``format`` selects. Blocking; run it in a thread.

    Every request yt-dlp makes (redirects, meta refreshes, API calls) connects through ``guard``
    (none: unchecked); ``budget`` bounds the time it may spend (see :mod:`app.net.ytdlp_guard`).
    """
    options = ytdlp_options(format=format, socket_timeout=socket_timeout, cookies_file=cookies_file)
    try:
        with GuardedYoutubeDL(options, guard=guard or UrlGuard(enabled=False), budget=budget) as ydl:
            info = ydl.extract_info(url, download=False)
            if info is None:
                raise LinkResolveError("yt-dlp found nothing at this link")
            info = _first_entry(info)
            chosen = _chosen_format(info)
            media_url = chosen.get("url")
            if not media_url:
                raise LinkResolveError("yt-dlp found no downloadable format at this link")
            protocol = str(chosen.get("protocol") or "")
            if protocol not in _DIRECT_PROTOCOLS:
                raise LinkResolveError(
                    f"the selected format ({chosen.get('format_id')}) is delivered over {protocol!r}; "
                    "only plain http(s) files are downloaded"
                )
            headers = {str(k): str(v) for k, v in (chosen.get("http_headers") or {}).items()}
            cookie = ydl.cookiejar.get_cookie_header(media_url)
            if cookie:
                headers["Cookie"] = cookie
    except YoutubeDLError as exc:
        raise LinkResolveError(clean_message(str(exc))) from exc
    return ResolvedMedia(
        media_url=str(media_url),
        headers=headers,
        ext=_text(chosen.get("ext")),
        format_id=_text(chosen.get("format_id")),
        extractor_key=_text(info.get("extractor_key")),
        media_id=_text(info.get("id"), 255),
        title=_text(info.get("title") or info.get("fulltitle"), 4000),
        author=_text(
            info.get("uploader")
            or info.get("creator")
            or info.get("channel")
            or info.get("artist")
            or info.get("uploader_id"),
            255,
        ),
        duration=_number(info.get("duration")),
        webpage_url=_text(info.get("webpage_url") or info.get("original_url")),
        thumbnail=_text(info.get("thumbnail")),
        filesize=_integer(chosen.get("filesize") or chosen.get("filesize_approx")),
    )


def _first_entry(info: dict[str, Any]) -> dict[str, Any]:
    """A playlist result (a page holding several media) is reduced to its first entry."""
    for _ in range(3):
        if info.get("_type") not in ("playlist", "multi_video"):
            return info
        entries = [entry for entry in info.get("entries") or [] if entry]
        if not entries:
            raise LinkResolveError("the link holds no media")
        info = entries[0]
    raise LinkResolveError("the link nests playlists too deeply")


def _chosen_format(info: dict[str, Any]) -> dict[str, Any]:
    """The format yt-dlp selected; for a merged selection, its audio part."""
    requested = info.get("requested_formats")
    if requested:
        with_audio = [f for f in requested if f.get("acodec") not in (None, "none")]
        chosen: dict[str, Any] = (with_audio or requested)[0]
        return chosen
    return info


def _text(value: Any, limit: int = 8192) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] or None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
