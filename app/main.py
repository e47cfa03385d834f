"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api.auth import ApiKeyMiddleware, document_security
from app.api.body_limit import BodyLimitMiddleware
from app.api.problems import install_problem_handlers
from app.api.routes import (
    batches,
    health,
    internal,
    keys,
    legacy_chatgpt,
    legacy_platforms,
    legacy_whisper,
    links,
    media,
    metrics,
    models,
    openai_audio,
    speakers,
    stats,
    summaries,
    tasks,
    workers,
    workflow_components,
    workflow_runs,
    workflows,
)
from app.api.routes.api_docs import mount_api_docs
from app.api.routes.dashboard import mount_dashboard
from app.api.stream_slots import StreamSlots
from app.api.upload_precheck import UploadPrecheckMiddleware
from app.container import Container
from app.logging_setup import configure_logging
from app.schemas.worker import NodeRole
from config.settings import Settings

DESCRIPTION = """
**Tingxie (听写)** turns audio and video into text with Whisper models on your own hardware.
Create a task from an upload or a URL, then read the result or download subtitles.

**听写** 在自有硬件上使用 Whisper 模型把音视频转成文字。通过上传文件或 URL 创建任务，然后读取结果或下载字幕。

Errors are RFC 9457 problem details (`application/problem+json`). / 错误以 RFC 9457 problem+json 返回。
"""

FORM_OVERHEAD_BYTES = 1024 * 1024
"""Room for multipart boundaries and text fields on top of the media size limit."""


def create_app(
    settings: Settings | None = None, *, start_processor_paused: bool = False, role: NodeRole = "all"
) -> FastAPI:
    """The HTTP app. ``role="api"`` serves only the API: no processor, no models."""
    settings = settings or Settings()
    if role == "api":
        settings = settings.model_copy(
            update={"processor": settings.processor.model_copy(update={"enabled": False})}
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.logging)
        container = await Container.start(settings, start_processor_paused=start_processor_paused, role=role)
        app.state.container = container
        try:
            yield
        finally:
            await container.stop()

    app = FastAPI(
        title="Tingxie 听写",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served offline by mount_api_docs
        redoc_url=None,
        lifespan=lifespan,
        max_body_size=settings.storage.max_upload_bytes + FORM_OVERHEAD_BYTES,
    )
    install_problem_handlers(app)
    app.state.stream_slots = StreamSlots(settings.limits.max_streams_per_key)
    # App-wide: covers every router and mount, present and future, except a small public allowlist.
    app.add_middleware(ApiKeyMiddleware)
    # Acts when an upload route first reads its body (after routing and the key check): refuses
    # the upload before it is spooled.
    app.add_middleware(UploadPrecheckMiddleware)
    # Outside the key check: an oversized body is refused before anything else is done with it.
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.limits.max_json_body_bytes,
        upload_limit=settings.storage.max_upload_bytes + FORM_OVERHEAD_BYTES,
    )
    if settings.auth.enabled:
        document_security(app)
    app.include_router(tasks.router)
    app.include_router(summaries.router)
    app.include_router(links.router)
    app.include_router(media.router)
    app.include_router(models.router)
    app.include_router(workers.router)
    app.include_router(health.router)
    app.include_router(internal.router)
    app.include_router(legacy_chatgpt.router)
    app.include_router(batches.router)
    app.include_router(openai_audio.router)
    app.include_router(legacy_whisper.router)
    app.include_router(legacy_platforms.router)
    app.include_router(keys.router)
    app.include_router(stats.router)
    app.include_router(metrics.router)
    app.include_router(workflows.router)
    app.include_router(workflow_runs.router)
    app.include_router(workflow_components.router)
    mount_api_docs(app)
    app.include_router(speakers.router)
    mount_dashboard(app)
    return app
