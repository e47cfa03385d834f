"""The composition root: builds and owns the long-lived parts of one app instance (no
module-level singletons): its services, the repositories the routes read directly, the model
pool, the processor and the background loops."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.api_key_repository import ApiKeyRepository
from app.db.callback_repository import CallbackRepository
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_session_factory
from app.db.speaker_repository import SpeakerRepository
from app.db.stats_repository import StatsRepository
from app.db.summary_repository import SummaryRepository
from app.db.task_repository import TaskRepository
from app.db.worker_registry import WorkerRegistry
from app.db.workflow_repository import WorkflowRepository
from app.engines.factory import ModelFactory
from app.engines.model_pool import AsyncModelPool
from app.engines.model_resolver import ModelResolver
from app.llm.client import ChatClient
from app.media.janitor import MediaJanitor
from app.media.storage import MediaStorage
from app.net.pinned import guarded_client
from app.net.url_guard import UrlGuard
from app.observability.metrics import Metrics
from app.processor.task_events import TaskEvents
from app.processor.task_processor import TaskProcessor
from app.schemas.worker import NodeRole
from app.services.admission import AdmissionControl
from app.services.auth import AuthService
from app.services.callbacks import CallbackDispatcher
from app.services.link_service import LinkService
from app.services.speaker_service import SpeakerService
from app.services.summary_service import SummaryService
from app.services.task_service import TaskService
from app.workflows.components import ComponentRegistry
from app.workflows.runner import WorkflowRunner
from app.workflows.service import WorkflowService
from app.workflows.steps import InlineSteps
from config.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repositories:
    """The database access that routes (and tests) use directly, beside the services."""

    tasks: TaskRepository
    workers: WorkerRegistry
    callbacks: CallbackRepository
    stats: StatsRepository


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    http: httpx.AsyncClient
    """For node-to-node requests only; user-supplied URLs go through ``public_http``."""
    public_http: httpx.AsyncClient
    """Pinned to addresses the SSRF guard checked (see :mod:`app.net.pinned`)."""
    repositories: Repositories
    storage: MediaStorage
    pool: AsyncModelPool
    events: TaskEvents
    processor: TaskProcessor | None
    janitor: MediaJanitor
    tasks: TaskService
    guard: UrlGuard
    dispatcher: CallbackDispatcher | None
    llm: ChatClient
    summaries: SummaryService
    speakers: SpeakerService
    links: LinkService
    auth: AuthService
    admission: AdmissionControl
    metrics: Metrics
    workflows: WorkflowService
    workflow_steps: InlineSteps
    _stopping: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    @classmethod
    async def start(
        cls, settings: Settings, *, start_processor_paused: bool = False, role: NodeRole = "all"
    ) -> Container:
        """Migrate the database, sweep orphans, load the default model and start the processor."""
        # Custom workflow components are imported and checked first: a bad entry stops the start.
        components = ComponentRegistry.from_entries(settings.workflows.components)
        await asyncio.to_thread(upgrade_to_head, settings.database_url)
        engine = create_engine(settings.database_url)
        sessions = create_session_factory(engine)
        repository = TaskRepository(sessions)
        registry = WorkerRegistry(sessions)
        # Node-to-node traffic (peers' media) goes to configured, often private, addresses.
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.storage.download_timeout_seconds),
            headers={"User-Agent": "Tingxie/1.0"},
        )
        guard = UrlGuard(
            enabled=settings.network.ssrf_protection, allowed_hosts=settings.network.allowed_hosts
        )
        # User-supplied URLs (file_url, short links) connect only to addresses the guard checked.
        public_http = guarded_client(
            guard,
            timeout=httpx.Timeout(settings.storage.download_timeout_seconds),
            headers={"User-Agent": "Tingxie/1.0"},
        )
        storage = MediaStorage(
            settings.storage.media_dir,
            max_bytes=settings.storage.max_upload_bytes,
            http=public_http,
            peer_http=http,
            guard=guard,
            max_redirects=settings.network.max_redirects,
        )
        callbacks = CallbackRepository(sessions)
        max_media_seconds = settings.limits.max_media_seconds or None
        pool = AsyncModelPool(
            settings.whisper,
            ModelFactory(
                settings.whisper,
                ModelResolver(settings.whisper.model_dir),
                settings.sensevoice,
                max_audio_seconds=max_media_seconds,
            ),
        )
        events = TaskEvents()
        stats = StatsRepository(sessions)
        metrics = Metrics(stats=stats, pool=pool)
        speaker_repository = SpeakerRepository(sessions)
        processor = None
        if settings.processor.enabled:
            processor = TaskProcessor(
                settings=settings.processor,
                repository=repository,
                pool=pool,
                storage=storage,
                events=events,
                registry=registry,
                role=role,
                peer_secret=(
                    settings.storage.peer_secret.get_secret_value() if settings.storage.peer_secret else None
                ),
                delete_media_after_processing=settings.storage.delete_media_after_processing,
                metrics=metrics,
                speakers=speaker_repository,
                diarization=settings.diarization,
                max_media_seconds=max_media_seconds,
            )
        janitor = MediaJanitor(settings.storage, storage, repository)
        admission = AdmissionControl(settings.limits, settings.storage.media_dir, repository)
        dispatcher = None
        if settings.callbacks.enabled:
            dispatcher = CallbackDispatcher(
                settings=settings.callbacks,
                repository=callbacks,
                tasks=repository,
                guard=guard,
                node_id=settings.processor.node_id,
                on_failed_attempt=metrics.callback_failures.inc,
            )
            events.on_finished(dispatcher.wake)
        llm = ChatClient(settings.llm)
        tasks = TaskService(
            repository=repository,
            storage=storage,
            pool=pool,
            processor=processor,
            events=events,
            default_model=settings.whisper.default_model,
            default_engine=settings.whisper.engine,
            default_chinese_script=settings.chinese.default_script,
            media_node=settings.server.public_url if settings.storage.peer_secret else None,
            # Without a local processor every completion happens elsewhere: re-read sooner.
            poll_interval=(
                settings.processor.wait_recheck_seconds
                if processor is not None
                else min(1.0, settings.processor.wait_recheck_seconds)
            ),
            guard=guard,
            callbacks=callbacks,
            wake_callbacks=dispatcher.wake if dispatcher is not None else None,
            admission=admission,
            max_media_seconds=max_media_seconds,
        )
        summaries = SummaryService(
            settings=settings.llm,
            client=llm,
            summaries=SummaryRepository(sessions),
            tasks=tasks,
        )
        links = LinkService(
            tasks=tasks,
            http=public_http,
            settings=settings.links,
            max_bytes=settings.storage.max_upload_bytes,
            url_check=guard.check,
            guard=guard,
        )
        workflow_repository = WorkflowRepository(sessions)
        workflow_steps = InlineSteps(
            storage=storage,
            summaries=summaries,
            guard=guard,
            components=components,
            secret=settings.callbacks.secret.get_secret_value() if settings.callbacks.secret else None,
            webhook_timeout_seconds=settings.workflows.webhook_timeout_seconds,
            webhook_max_response_bytes=settings.workflows.webhook_max_response_bytes,
        )
        auth = AuthService(settings.auth, ApiKeyRepository(sessions))
        workflows = WorkflowService(
            settings=settings.workflows,
            repository=workflow_repository,
            task_repository=repository,
            tasks=tasks,
            links=links,
            storage=storage,
            events=events,
            components=components,
            runner=None,
            guard=guard,
        )
        if settings.workflows.enabled:
            workflows.runner = WorkflowRunner(
                settings=settings.workflows,
                repository=workflow_repository,
                task_repository=repository,
                tasks=tasks,
                storage=storage,
                steps=workflow_steps,
                components=components,
                node_id=settings.processor.node_id,
                prepare_input=workflows.prepare_pending,
                resolve_owner=auth.owner,
            )
        janitor.add_references(workflows.media_paths)
        container = cls(
            settings=settings,
            engine=engine,
            http=http,
            public_http=public_http,
            repositories=Repositories(tasks=repository, workers=registry, callbacks=callbacks, stats=stats),
            storage=storage,
            pool=pool,
            events=events,
            processor=processor,
            janitor=janitor,
            tasks=tasks,
            guard=guard,
            dispatcher=dispatcher,
            llm=llm,
            summaries=summaries,
            speakers=SpeakerService(speaker_repository, settings.diarization),
            links=links,
            auth=auth,
            admission=admission,
            metrics=metrics,
            workflows=workflows,
            workflow_steps=workflow_steps,
        )
        await janitor.sweep()
        janitor.start()
        if processor is not None:  # only nodes that run tasks hold models
            await pool.start()
            await processor.start(paused=start_processor_paused)
        if dispatcher is not None:
            await dispatcher.start(identity=processor.worker_id if processor is not None else None)
        await workflows.start(identity=processor.worker_id if processor is not None else None)
        return container

    def begin_shutdown(self, *, forced: bool = False) -> None:
        """The first shutdown signal: stop claiming tasks, answer long polls and end live-event
        streams at once, so that open connections do not hold the shutdown up. ``forced`` (a
        second signal): give the running tasks back to the queue now instead of letting them
        finish within ``PROCESSOR__SHUTDOWN_TIMEOUT_SECONDS``."""
        if self.processor is not None:
            if forced:
                logger.warning("second shutdown signal: handing running tasks back to the queue now")
                self.processor.hand_back()
            else:
                self.processor.pause()
        self.events.close()

    async def stop(self) -> None:
        """Stop everything; running tasks finish or go back to the queue. Safe to call again
        (and concurrently): later calls wait for the first one."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        self.begin_shutdown()
        await self.workflows.stop()
        await self.workflow_steps.aclose()
        if self.processor is not None:
            await self.processor.stop(timeout=self.settings.processor.shutdown_timeout_seconds)
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.janitor.stop()
        await self.pool.stop()
        self.links.close()
        await self.http.aclose()
        await self.public_http.aclose()
        await self.llm.aclose()
        await self.engine.dispose()
