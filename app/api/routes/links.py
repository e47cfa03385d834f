"""/api/v1/tasks/from-link: tasks from TikTok, Douyin, YouTube, Bilibili and other media links."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import LinkServiceDep, SpeakerServiceDep
from app.api.problems import problem_responses
from app.schemas.link import LinkTaskCreate
from app.schemas.task import TaskOut

router = APIRouter(prefix="/api/v1/tasks", tags=["links"])


@router.post(
    "/from-link",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task from a media link / 从媒体链接创建任务",
    description=(
        "Give a TikTok, Douyin, YouTube or Bilibili link, a short link (`v.douyin.com`, `vm.tiktok.com`, "
        "`b23.tv`, `youtu.be`, ...) or any page yt-dlp supports. The server detects the platform, "
        "resolves the media with yt-dlp (audio-only formats preferred), downloads it under the size "
        "limit and queues the task. The task's `platform` and `link` hold the platform metadata "
        "(title, author, duration, page URL, thumbnail). A link yt-dlp cannot resolve gets 422 with "
        "yt-dlp's message; every request yt-dlp makes (redirects included) passes the SSRF guard. One "
        "API key may have `LINKS__MAX_CONCURRENT_PER_KEY` links resolving at once; more get 429.\n\n"
        "提交抖音、TikTok、YouTube、B站链接、短链（v.douyin.com、vm.tiktok.com、b23.tv、youtu.be 等）或 yt-dlp "
        "支持的任意页面。服务器识别平台，用 yt-dlp 解析媒体（优先纯音频格式），在大小限制内下载并创建任务。"
        "任务的 platform 与 link 字段保存平台信息（标题、作者、时长、页面地址、封面）。yt-dlp 无法解析的链接返回 "
        "422，并附带 yt-dlp 的错误信息；yt-dlp 的每个请求（包括重定向）都经过 SSRF 检查。同一 API 密钥同时解析的链接数"
        "超过 `LINKS__MAX_CONCURRENT_PER_KEY` 时返回 429。"
    ),
    responses=problem_responses(400, 413, 415, 422, 429),
)
async def create_task_from_link(
    service: LinkServiceDep, speakers: SpeakerServiceDep, body: LinkTaskCreate
) -> TaskOut:
    return await service.create(
        body.url, body.task_spec(await speakers.with_references(body, body.decode_options()))
    )
