"""Platform detection of real-shaped links (no network), share text and canonical Douyin URLs."""

from __future__ import annotations

import pytest

from app.media.platforms import (
    canonical_url,
    detect_platform,
    is_short_link,
    platform_of_extractor,
)
from app.media.ytdlp import clean_message
from app.schemas.link import extract_link

CASES: list[tuple[str, str, bool]] = [
    # TikTok
    ("https://www.tiktok.com/@scout2015/video/6718335390845095173", "tiktok", False),
    (
        "https://tiktok.com/@user.name_1/video/7106594312292453675?is_from_webapp=1&sender_device=pc",
        "tiktok",
        False,
    ),
    ("https://m.tiktok.com/v/6718335390845095173.html", "tiktok", False),
    ("https://www.tiktok.com/embed/v2/6718335390845095173", "tiktok", False),
    ("https://vm.tiktok.com/ZMeAbCdEf/", "tiktok", True),
    ("https://vt.tiktok.com/ZSRq1a2b3/", "tiktok", True),
    ("HTTPS://WWW.TIKTOK.COM/@Someone/video/7106594312292453675", "tiktok", False),
    # Douyin
    ("https://www.douyin.com/video/7312345678901234567", "douyin", False),
    ("https://www.douyin.com/discover?modal_id=7312345678901234567", "douyin", False),
    ("https://www.douyin.com/user/MS4wLjABAAAA?modal_id=7312345678901234567", "douyin", False),
    ("https://www.iesdouyin.com/share/video/7312345678901234567/?region=CN&mid=1", "douyin", False),
    ("https://v.douyin.com/iRNBho6u/", "douyin", True),
    ("http://v.douyin.com/ieFtzS8p", "douyin", True),
    # YouTube
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtube", False),
    (
        "https://youtube.com/watch?v=dQw4w9WgXcQ&list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs&index=2",
        "youtube",
        False,
    ),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", "youtube", False),
    ("https://www.youtube.com/shorts/aqz-KE-bpKQ", "youtube", False),
    ("https://music.youtube.com/watch?v=dQw4w9WgXcQ", "youtube", False),
    ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", "youtube", False),
    ("https://youtu.be/dQw4w9WgXcQ?si=abcdef", "youtube", True),
    ("https://www.youtube.com/live/jfKfPfyJRdk", "youtube", False),
    # Bilibili
    ("https://www.bilibili.com/video/BV1GJ411x7h7/?spm_id_from=333.788", "bilibili", False),
    ("https://www.bilibili.com/video/av170001", "bilibili", False),
    ("https://m.bilibili.com/video/BV1GJ411x7h7", "bilibili", False),
    ("https://www.bilibili.com/bangumi/play/ep374717", "bilibili", False),
    ("https://b23.tv/BV1GJ411x7h7", "bilibili", True),
    ("https://b23.tv/a1B2c3D", "bilibili", True),
    ("https://bili2233.cn/a1B2c3D", "bilibili", True),
    ("https://www.bilibili.tv/en/video/2009586617", "bilibili", False),
    # Others and generic
    ("https://v.kuaishou.com/abc123", "kuaishou", True),
    ("https://www.xiaohongshu.com/explore/64f1a2b3000000001f03a1b2", "xiaohongshu", False),
    ("http://xhslink.com/a/AbCdEf", "xiaohongshu", True),
    ("https://vimeo.com/76979871", "vimeo", False),
    ("https://x.com/user/status/1234567890123456789", "twitter", False),
    ("https://example.com/media/talk.mp4", "generic", False),
    ("http://127.0.0.1:8000/page.html", "generic", False),
    ("https://notyoutube.com/watch?v=dQw4w9WgXcQ", "generic", False),
    ("https://youtube.com.evil.example/watch?v=x", "generic", False),
    ("https://tiktok.com.cn.example.org/@a/video/1", "generic", False),
]


@pytest.mark.parametrize(("url", "platform", "short"), CASES)
def test_platform_detection(url: str, platform: str, short: bool) -> None:
    match = detect_platform(url)
    assert (match.platform, match.short_link) == (platform, short)
    assert is_short_link(url) is short


def test_share_text_and_canonical_douyin_urls() -> None:
    share = "7.43 复制打开抖音，看看【某某的作品】我们的家 # 日常 https://v.douyin.com/iRNBho6u/ Ab@C.yt 01/02 Dlp:/"
    assert extract_link(share) == "https://v.douyin.com/iRNBho6u/"
    assert extract_link("【标题】https://b23.tv/a1B2c3D，快来看") == "https://b23.tv/a1B2c3D"
    assert extract_link("see https://youtu.be/dQw4w9WgXcQ.") == "https://youtu.be/dQw4w9WgXcQ"
    assert extract_link("no link here") is None
    canonical = "https://www.douyin.com/video/7312345678901234567"
    assert canonical_url("https://www.iesdouyin.com/share/video/7312345678901234567/?region=CN") == canonical
    assert canonical_url("https://www.douyin.com/discover?modal_id=7312345678901234567") == canonical
    assert canonical_url(canonical) == canonical
    other = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&modal_id=1234567890"
    assert canonical_url(other) == other


def test_extractor_keys_map_to_platforms() -> None:
    assert platform_of_extractor("TikTok") == "tiktok"
    assert platform_of_extractor("BiliBili") == "bilibili"
    assert platform_of_extractor("YoutubeTab") == "youtube"
    assert platform_of_extractor("Generic") is None
    assert platform_of_extractor("HTML5MediaEmbed") is None
    assert platform_of_extractor("Dailymotion") == "dailymotion"


def test_ytdlp_messages_lose_colour_codes_and_prefix() -> None:
    coloured = "\x1b[0;31mERROR:\x1b[0m [generic] Unsupported URL: \x1b[1mhttp://x.example/\x1b[0m"
    assert clean_message(coloured) == "[generic] Unsupported URL: http://x.example/"
    assert clean_message("") == "yt-dlp could not resolve the link"
