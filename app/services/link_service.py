"""Tasks from media links: detect the platform, resolve with yt-dlp, download, queue."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import urljoin

import httpx

from app.errors import Invalid, TooLarge
from app.media.platforms import (
    GENERIC,
    canonical_url,
    detect_platform,
    is_short_link,
    platform_of_extractor,
)
from app.media.storage import StoredMedia
from app.media.ytdlp import LinkResolveError, ResolvedMedia, resolve_media
from app.net.url_guard import UrlGuard
from app.net.ytdlp_guard import ResolveBudget
from app.schemas.task import (
    LinkMetadata,
    MediaSource,
    TaskOut,
    TaskSpec,
)
from app.services.link_resolver import LinkResolver
from app.services.task_service import TaskService, display_name
from config.settings import LinksSettings

logger = logging.getLogger(__name__)

UrlCheck = Callable[[str], Awaitable[None]]
"""Raises (e.g. :class:`~app.errors.Invalid`) for a URL the server must not fetch (SSRF guard)."""

LinkListener = Callable[[str, TaskOut], Awaitable[None]]
"""Told of each task created from a link: (the link as given, the task)."""

_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class FetchedLink:
    """A link's media downloaded into storage, with the platform metadata."""

    stored: StoredMedia
    link: LinkMetadata
    file_name: str | None


class LinkService:
    def __init__(
        self,
        *,
        tasks: TaskService,
        http: httpx.AsyncClient,
        settings: LinksSettings,
        max_bytes: int,
        url_check: UrlCheck | None = None,
        guard: UrlGuard | None = None,
        resolver: LinkResolver | None = None,
    ) -> None:
        """``url_check`` checks the link, the short-link hops and the media URL; ``guard`` is applied
        to every connection yt-dlp opens (none: yt-dlp's requests are not checked). ``resolver``
        runs yt-dlp (default: a pool of its own sized by ``settings``)."""
        self._tasks = tasks
        self._http = http
        self._settings = settings
        self._max_bytes = max_bytes
        self._url_check = url_check
        self._guard = guard
        self._resolver = resolver or LinkResolver(
            workers=settings.resolve_workers, max_concurrent_per_key=settings.max_concurrent_per_key
        )
        self._listeners: list[LinkListener] = []

    def close(self) -> None:
        """Stop running resolutions at their next request and free the resolver's threads."""
        self._resolver.close()

    def on_submitted(self, listener: LinkListener) -> None:
        """Call ``listener(url, task)`` after each task created from a link (workflow event triggers);
        a failing listener is logged and never fails the request."""
        self._listeners.append(listener)

    async def create(
        self,
        url: str,
        spec: TaskSpec | None = None,
    ) -> TaskOut:
        """Resolve ``url`` and queue a task for its media (``spec``: what to do with it, by default a
        plain transcription); problems: 413, 415, 422."""
        spec = await self._tasks.check_request(spec or TaskSpec())
        fetched = await self.fetch(url)
        task = await self._tasks.enqueue(
            fetched.stored,
            replace(spec, platform=fetched.link.platform),
            source=MediaSource.link,
            file_name=fetched.file_name,
            file_url=url,
            link=fetched.link,
        )
        for listener in self._listeners:
            try:
                await listener(url, task)
            except Exception:
                logger.exception("a link listener failed for %s", url)
        return task

    async def fetch(self, url: str) -> FetchedLink:
        """Resolve ``url`` (short links, canonical form, platform, yt-dlp) and download its media into
        storage; problems: 413, 422. The caller owns the stored file."""
        await self._check(url)
        page_url = await self.resolve_short_link(url) if is_short_link(url) else url
        canonical = canonical_url(page_url)
        if canonical != page_url:
            await self._check(canonical)
            page_url = canonical
        detected = detect_platform(page_url).platform
        resolved = await self._resolve(page_url)
        platform = detected
        if platform == GENERIC:
            platform = platform_of_extractor(resolved.extractor_key) or GENERIC
        limit = self._settings.max_duration_seconds
        if limit and resolved.duration is not None and resolved.duration > limit:
            raise Invalid(f"the media lasts {resolved.duration:g} s, more than the limit of {limit:g} s")
        if resolved.filesize is not None and resolved.filesize > self._max_bytes:
            raise TooLarge(f"the media exceeds the limit of {self._max_bytes} bytes")
        await self._check(resolved.media_url)
        stored = await self._tasks.download(resolved.media_url, headers=resolved.headers)
        link = LinkMetadata(
            platform=platform,
            original_url=url,
            webpage_url=resolved.webpage_url or page_url,
            media_id=resolved.media_id,
            title=resolved.title,
            author=resolved.author,
            duration=resolved.duration,
            thumbnail=resolved.thumbnail,
        )
        logger.info("link %s resolved on %s: %r by %r", url, platform, link.title, link.author)
        return FetchedLink(stored=stored, link=link, file_name=_file_name(resolved))

    async def resolve_short_link(self, url: str) -> str:
        """Follow the redirects of a short link (``v.douyin.com``, ``b23.tv``, ...) until it leaves the
        short-link hosts; every hop passes the URL check. The target page itself is not fetched."""
        current = url
        for _ in range(self._settings.max_redirects):
            try:
                async with self._http.stream(
                    "GET",
                    current,
                    follow_redirects=False,
                    timeout=self._settings.socket_timeout_seconds,
                ) as response:
                    location: str | None = response.headers.get("location")
                    status = response.status_code
            except httpx.HTTPError as exc:
                raise Invalid(f"could not resolve the short link {url}: {exc}") from exc
            if status not in _REDIRECTS or not location:
                if status >= 400:
                    raise Invalid(f"the short link {url} answered HTTP {status}")
                return current
            current = urljoin(current, location)
            await self._check(current)
            if not is_short_link(current):
                return current
        raise Invalid(f"the short link {url} redirects more than {self._settings.max_redirects} times")

    async def _resolve(self, url: str) -> ResolvedMedia:
        def resolve(budget: ResolveBudget) -> ResolvedMedia:
            return resolve_media(
                url,
                format=self._settings.format,
                socket_timeout=self._settings.socket_timeout_seconds,
                cookies_file=self._settings.cookies_file,
                guard=self._guard,
                budget=budget,
            )

        try:
            return await self._resolver.run(resolve, timeout=self._settings.resolve_timeout_seconds)
        except LinkResolveError as exc:
            raise Invalid(f"yt-dlp: {exc}", title="Unresolvable media link") from exc
        except TimeoutError as exc:
            raise Invalid(
                f"yt-dlp did not resolve {url} within {self._settings.resolve_timeout_seconds:g} s"
            ) from exc

    async def _check(self, url: str) -> None:
        if self._url_check is not None:
            await self._url_check(url)


def _file_name(resolved: ResolvedMedia) -> str | None:
    stem = (resolved.title or resolved.media_id or "media").replace("/", "_").replace("\\", "_")
    return display_name(f"{stem[:200]}.{resolved.ext or 'media'}")
