"""Which platform a media link belongs to, from its host name alone (no network)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

GENERIC = "generic"

# platform -> registrable domains whose hosts (and sub-domains) belong to it
_DOMAINS: dict[str, tuple[str, ...]] = {
    "tiktok": ("tiktok.com", "tiktokv.com", "tiktokcdn.com", "tiktokcdn-us.com"),
    "douyin": ("douyin.com", "iesdouyin.com", "douyinvod.com", "amemv.com"),
    "youtube": ("youtube.com", "youtu.be", "youtube-nocookie.com", "youtubekids.com"),
    "bilibili": ("bilibili.com", "b23.tv", "bili2233.cn", "bilibili.tv", "biliintl.com"),
    "kuaishou": ("kuaishou.com", "gifshow.com", "chenzhongtech.com"),
    "xiaohongshu": ("xiaohongshu.com", "xhslink.com"),
    "weibo": ("weibo.com", "weibo.cn"),
    "instagram": ("instagram.com",),
    "facebook": ("facebook.com", "fb.watch"),
    "twitter": ("twitter.com", "x.com", "t.co"),
    "vimeo": ("vimeo.com",),
    "soundcloud": ("soundcloud.com", "on.soundcloud.com"),
}

# hosts that only redirect to the real page
_SHORT_HOSTS: frozenset[str] = frozenset(
    {
        "v.douyin.com",
        "vm.tiktok.com",
        "vt.tiktok.com",
        "b23.tv",
        "bili2233.cn",
        "youtu.be",
        "v.kuaishou.com",
        "xhslink.com",
        "fb.watch",
        "t.co",
        "on.soundcloud.com",
    }
)

# yt-dlp extractor keys (lower-cased prefixes) of the known platforms, for links detected as generic
_EXTRACTOR_PREFIXES: tuple[tuple[str, str], ...] = (
    ("tiktok", "tiktok"),
    ("douyin", "douyin"),
    ("youtube", "youtube"),
    ("bilibili", "bilibili"),
    ("bili", "bilibili"),
    ("kuaishou", "kuaishou"),
    ("xiaohongshu", "xiaohongshu"),
    ("weibo", "weibo"),
    ("instagram", "instagram"),
    ("facebook", "facebook"),
    ("twitter", "twitter"),
    ("vimeo", "vimeo"),
    ("soundcloud", "soundcloud"),
)


@dataclass(frozen=True)
class PlatformMatch:
    platform: str
    """``tiktok``, ``douyin``, ``youtube``, ``bilibili``, ... or ``generic``."""
    short_link: bool
    """The host only redirects (``v.douyin.com``, ``b23.tv``, ``youtu.be``, ...)."""


def _host(url: str) -> str:
    host = (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def is_short_link(url: str) -> bool:
    return _host(url) in _SHORT_HOSTS


def detect_platform(url: str) -> PlatformMatch:
    """Classify ``url`` by its host; unknown hosts are ``generic``. Never touches the network."""
    host = _host(url)
    for platform, domains in _DOMAINS.items():
        if any(host == domain or host.endswith("." + domain) for domain in domains):
            return PlatformMatch(platform, host in _SHORT_HOSTS)
    return PlatformMatch(GENERIC, False)


def platform_of_extractor(extractor_key: str | None) -> str | None:
    """Map a yt-dlp extractor key (``TikTok``, ``BiliBili``, ``YoutubeTab``) to a platform name."""
    if not extractor_key:
        return None
    key = extractor_key.lower()
    if key in ("generic", "html5mediaembed"):
        return None
    for prefix, platform in _EXTRACTOR_PREFIXES:
        if key.startswith(prefix):
            return platform
    return key[:64]


_DOUYIN_SHARE = re.compile(r"^(?:www\.)?iesdouyin\.com$|\.iesdouyin\.com$")
_DOUYIN_VIDEO_ID = re.compile(r"/(?:share/)?(?:video|note)/(\d{8,})")


def canonical_url(url: str) -> str:
    """Rewrite share-page shapes yt-dlp does not match to the platform's canonical page URL.

    Douyin short links land on ``iesdouyin.com/share/video/<id>`` and the web app shows videos as
    ``douyin.com/...?modal_id=<id>``; both become ``https://www.douyin.com/video/<id>``.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if detect_platform(url).platform != "douyin":
        return url
    if _DOUYIN_SHARE.search(host):
        match = _DOUYIN_VIDEO_ID.search(parts.path)
        if match:
            return f"https://www.douyin.com/video/{match.group(1)}"
    modal = parse_qs(parts.query).get("modal_id")
    if modal and modal[0].isdigit():
        return f"https://www.douyin.com/video/{modal[0]}"
    return url
