"""Workflow use cases: CRUD of documents, starting runs (API and triggers), reading, cancelling runs.

Workflows and runs belong to the API key that created them, like tasks: another key's workflow or
run answers 404; admins see all. Runs started by triggers belong to the workflow's key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from app.db.models import Task, Workflow, WorkflowRun, WorkflowStep, new_id, utcnow
from app.db.task_repository import TaskRepository
from app.db.workflow_repository import ACTIVE, RunStatus, StepStatus, WorkflowRepository
from app.errors import Conflict, DomainError, Gone, Invalid, NotFound
from app.media.storage import AsyncReader, MediaStorage, StoredMedia
from app.net.url_guard import BlockedUrlError, UrlGuard
from app.processor.task_events import TaskEvents
from app.schemas.task import TaskOut, TaskStatus
from app.schemas.workflow import (
    ComponentOut,
    RunOut,
    RunPage,
    WorkflowOut,
    WorkflowPage,
)
from app.services.auth import Principal, creator_key, owner_filter, visible_to
from app.services.link_service import LinkService
from app.services.mappers import run_out, workflow_out
from app.services.task_service import TaskService, display_name
from app.workflows.components import ComponentRegistry
from app.workflows.definition import CronTrigger, EventName, InputKind, WorkflowDocument
from app.workflows.runner import SYSTEM, WorkflowRunner
from app.workflows.triggers import (
    Scheduler,
    cron_triggers,
    event_triggers,
    link_matches,
    slot_key,
    task_matches,
)
from app.workflows.validation import InvalidWorkflowError, Issue, Loc, validate
from config.settings import WorkflowsSettings

logger = logging.getLogger(__name__)


def _page(total: int, limit: int, offset: int, count: int) -> int | None:
    return offset + count if offset + count < total else None


class WorkflowService:
    def __init__(
        self,
        *,
        settings: WorkflowsSettings,
        repository: WorkflowRepository,
        task_repository: TaskRepository,
        tasks: TaskService,
        links: LinkService,
        storage: MediaStorage,
        events: TaskEvents,
        components: ComponentRegistry,
        runner: WorkflowRunner | None,
        guard: UrlGuard | None = None,
    ) -> None:
        self._settings = settings
        self._guard = guard
        self._repository = repository
        self._task_repository = task_repository
        self._tasks = tasks
        self._links = links
        self._storage = storage
        self._events = events
        self.components = components
        self.runner = runner
        self.scheduler = Scheduler(
            tick_seconds=settings.schedule_tick_seconds,
            load=self._cron_workflows,
            fire=self.fire_cron,
            catch_up=self.catch_up_events,
        )
        self._background: set[asyncio.Task[None]] = set()

    @property
    def repository(self) -> WorkflowRepository:
        return self._repository

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, *, identity: str | None) -> None:
        self._events.on_finished(self._task_finished)
        self._links.on_submitted(self.link_submitted)
        if self.runner is not None:
            await self.runner.start(identity=identity)
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        if self.runner is not None:
            await self.runner.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until the trigger work started by task and link events so far is done."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- scoping --------------------------------------------------------------------------------

    async def _workflow(self, workflow_id: str, principal: Principal | None) -> Workflow:
        workflow = await self._repository.get(workflow_id)
        if workflow is None or not visible_to(workflow.api_key_id, principal):
            raise NotFound(f"workflow {workflow_id} does not exist")
        return workflow

    async def _run(self, run_id: str, principal: Principal | None) -> WorkflowRun:
        run = await self._repository.get_run(run_id)
        if run is None or not visible_to(run.api_key_id, principal):
            raise NotFound(f"workflow run {run_id} does not exist")
        return run

    # --- workflows ------------------------------------------------------------------------------

    def check(self, document: WorkflowDocument) -> dict[str, Any]:
        """Validate (422 naming every issue) and return the document as stored."""
        validate(document, components=self.components, max_steps=self._settings.max_steps)
        definition: dict[str, Any] = document.model_dump(mode="json", by_alias=True)
        return definition

    async def check_urls(self, document: WorkflowDocument) -> None:
        """422 for a literal webhook or scheduled-input URL that the SSRF guard would refuse
        whatever DNS says (a loopback or private address, another scheme): refused now rather
        than by every attempt of every run. Host names are resolved when the URL is used."""
        if self._guard is None:
            return
        literal: list[tuple[Loc, str | None, str]] = []
        for index, step in enumerate(document.steps):
            url = step.with_.get("url")
            if step.uses == "webhook" and isinstance(url, str) and "${" not in url:
                literal.append((["steps", index, "with", "url"], step.id, url))
        for index, trigger in enumerate(document.triggers):
            if isinstance(trigger, CronTrigger):
                for field in ("file_url", "link"):
                    url = getattr(trigger.input, field)
                    if url is not None:
                        literal.append((["triggers", index, "input", field], None, url))
        issues = []
        for loc, step_id, url in literal:
            try:
                await self._guard.check(url, resolve=False)
            except BlockedUrlError as exc:
                issues.append(Issue(loc, exc.detail, "url_not_allowed", step_id))
        if issues:
            raise InvalidWorkflowError(issues)

    async def create(self, document: WorkflowDocument, principal: Principal | None = None) -> WorkflowOut:
        definition = self.check(document)
        await self.check_urls(document)
        workflow = Workflow(
            id=new_id(),
            name=document.name,
            definition=definition,
            trigger_kinds=self._kinds(document),
            enabled=document.enabled,
            api_key_id=creator_key(principal),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        await self._repository.add(workflow)
        logger.info("created workflow %s (%s, %d step(s))", workflow.id, workflow.name, len(document.steps))
        return workflow_out(workflow)

    @staticmethod
    def _kinds(document: WorkflowDocument) -> str:
        return "," + ",".join(sorted(document.trigger_kinds())) + ","

    async def get(self, workflow_id: str, principal: Principal | None = None) -> WorkflowOut:
        return workflow_out(await self._workflow(workflow_id, principal))

    async def search(self, *, limit: int, offset: int, principal: Principal | None = None) -> WorkflowPage:
        rows, total = await self._repository.search(
            api_key_id=owner_filter(principal), limit=limit, offset=offset
        )
        return WorkflowPage(
            items=[workflow_out(row) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=_page(total, limit, offset, len(rows)),
        )

    async def replace(
        self, workflow_id: str, document: WorkflowDocument, principal: Principal | None = None
    ) -> WorkflowOut:
        """Replace the document; runs already started keep the version they started with."""
        await self._workflow(workflow_id, principal)
        definition = self.check(document)
        await self.check_urls(document)
        workflow = await self._repository.replace(
            workflow_id,
            name=document.name,
            definition=definition,
            trigger_kinds=self._kinds(document),
            enabled=document.enabled,
        )
        if workflow is None:
            raise NotFound(f"workflow {workflow_id} does not exist")
        return workflow_out(workflow)

    async def delete(self, workflow_id: str, principal: Principal | None = None) -> None:
        """Delete the workflow with its runs (409 while runs are active: cancel them first)."""
        await self._workflow(workflow_id, principal)
        active = await self._repository.count_active(workflow_id)
        if active:
            raise Conflict(f"workflow {workflow_id} has {active} active run(s); cancel them first")
        for name in await self._repository.delete(workflow_id):
            self._storage.remove(name)
        logger.info("deleted workflow %s", workflow_id)

    def list_components(self) -> list[ComponentOut]:
        return [
            ComponentOut(name=c.name, path=c.path, outputs=sorted(c.outputs), description=c.description)
            for c in self.components.all()
        ]

    # --- runs -----------------------------------------------------------------------------------

    async def start_run(
        self,
        workflow_id: str,
        *,
        upload: AsyncReader | None,
        upload_name: str | None,
        file_url: str | None,
        link: str | None,
        task_id: str | None,
        params: str | None,
        principal: Principal | None = None,
    ) -> RunOut:
        """Start a run with one input (an upload, a URL, a link or a task); 404, 413, 415, 422, 503."""
        workflow = await self._workflow(workflow_id, principal)
        document = WorkflowDocument.model_validate(workflow.definition)
        given = [
            kind
            for kind, value in (
                (InputKind.upload, upload),
                (InputKind.url, file_url),
                (InputKind.link, link),
                (InputKind.task, task_id),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise Invalid("give at most one of `file`, `file_url`, `link` or `task_id`")
        values = self._params(document, params)
        kind = given[0] if given else InputKind.none
        if kind not in document.input.kinds:
            accepted = ", ".join(k.value for k in document.input.kinds)
            raise Invalid(f"this workflow accepts {accepted} input, not {kind.value}")
        await self._tasks.admit()
        run_input, stored = await self._prepare(
            kind,
            upload=upload,
            upload_name=upload_name,
            file_url=file_url,
            link=link,
            task_id=task_id,
            principal=principal,
        )
        run_input["params"] = values
        try:
            run = await self._insert_run(
                workflow, run_input, stored.name if stored else None, trigger="manual", fire_key=None
            )
        except BaseException:
            if stored is not None:
                self._storage.remove(stored.name)
            raise
        assert run is not None
        loaded = await self._repository.load(run.id)
        return run_out(*loaded) if loaded is not None else run_out(run)

    @staticmethod
    def _params(document: WorkflowDocument, raw: str | None) -> dict[str, Any]:
        values = dict(document.input.params)
        if raw is None or not raw.strip():
            return values
        try:
            given = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise Invalid(f"`params` is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise Invalid("`params` must be a JSON object")
        unknown = sorted(set(given) - set(values))
        if unknown:
            raise Invalid(
                f"unknown parameter(s) {', '.join(unknown)}; declared: {', '.join(values) or 'none'}"
            )
        values.update(given)
        return values

    async def _prepare(
        self,
        kind: InputKind,
        *,
        upload: AsyncReader | None = None,
        upload_name: str | None = None,
        file_url: str | None = None,
        link: str | None = None,
        task_id: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[dict[str, Any], StoredMedia | None]:
        """The run's input and its media (stored once for the run; the caller owns it)."""
        run_input: dict[str, Any] = {"kind": kind.value}
        stored: StoredMedia | None = None
        try:
            if kind is InputKind.upload:
                assert upload is not None
                stored = await self._tasks.store_upload(upload)
                run_input["file_name"] = display_name(upload_name)
            elif kind is InputKind.url:
                assert file_url is not None
                stored = await self._tasks.download(file_url)
                run_input["url"] = file_url
            elif kind is InputKind.link:
                assert link is not None
                fetched = await self._links.fetch(link)
                stored = fetched.stored
                run_input.update(
                    url=link,
                    file_name=fetched.file_name,
                    platform=fetched.link.platform,
                    link=fetched.link.model_dump(mode="json"),
                )
            elif kind is InputKind.task:
                assert task_id is not None
                task = await self._tasks.get_row(task_id, principal)
                run_input.update(self._task_input(task))
                if task.media_path is not None and self._storage.path_of(task.media_path).is_file():
                    stored = await self._storage.copy(task.media_path)
            if stored is not None:
                info = await self._tasks.probe(stored.path)
                run_input["duration"] = info.duration
        except BaseException:
            if stored is not None:
                self._storage.remove(stored.name)
            raise
        return run_input, stored

    @staticmethod
    def _task_input(task: Task) -> dict[str, Any]:
        return {
            "task_id": task.id,
            "file_name": task.file_name,
            "url": task.link_url or task.file_url,
            "platform": task.platform,
            "link": (
                {"title": task.link_title, "author": task.link_author, "webpage_url": task.link_webpage_url}
                if task.link_url
                else None
            ),
        }

    async def _insert_run(
        self,
        workflow: Workflow,
        run_input: dict[str, Any],
        media: str | None,
        *,
        trigger: str,
        fire_key: str | None,
    ) -> WorkflowRun | None:
        """Insert the run and its steps (with the firing row, if any); None when that key already fired."""
        now = utcnow()
        document = WorkflowDocument.model_validate(workflow.definition)
        run = WorkflowRun(
            id=new_id(),
            workflow_id=workflow.id,
            definition=workflow.definition,
            status=RunStatus.pending.value,
            trigger=trigger,
            input=run_input,
            input_media=media,
            artifacts=[],
            api_key_id=workflow.api_key_id,
            next_check_at=now,
            created_at=now,
            updated_at=now,
        )
        steps = [
            WorkflowStep(
                run_id=run.id,
                step_id=step.id,
                position=position,
                uses=step.uses,
                status=StepStatus.pending.value,
                attempts=0,
                history=[],
            )
            for position, step in enumerate(document.steps)
        ]
        if not await self._repository.create_run(run, steps, fire_key=fire_key):
            return None
        logger.info("run %s of workflow %s started (%s)", run.id, workflow.id, trigger)
        if self.runner is not None:
            self.runner.wake()
        return run

    async def get_run(self, run_id: str, principal: Principal | None = None) -> RunOut:
        await self._run(run_id, principal)
        loaded = await self._repository.load(run_id)
        if loaded is None:
            raise NotFound(f"workflow run {run_id} does not exist")
        return run_out(*loaded)

    async def search_runs(
        self, workflow_id: str | None, *, limit: int, offset: int, principal: Principal | None = None
    ) -> RunPage:
        if workflow_id is not None:
            await self._workflow(workflow_id, principal)
        rows, total = await self._repository.search_runs(
            workflow_id=workflow_id, api_key_id=owner_filter(principal), limit=limit, offset=offset
        )
        return RunPage(
            items=[run_out(row) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=_page(total, limit, offset, len(rows)),
        )

    async def cancel_run(self, run_id: str, principal: Principal | None = None) -> RunOut:
        """Cancel an active run (409 once it ended): its queued or running tasks are cancelled and no
        further step starts."""
        run = await self._run(run_id, principal)
        running = await self._repository.cancel(run_id)
        if running is None:
            current = await self._run(run_id, principal)
            raise Conflict(
                f"workflow run {run_id} is {current.status}; only pending or running runs can be cancelled",
            )
        for step in running:
            reused = bool((step.history or [{}])[-1].get("reused"))
            if step.task_id is not None and not reused:
                with suppress(DomainError):  # already finished or deleted
                    await self._tasks.cancel(step.task_id, SYSTEM)
        self._storage.remove(run.input_media)
        await self._repository.forget_input_media(run_id)
        logger.info("run %s cancelled by request", run_id)
        return await self.get_run(run_id, principal)

    async def delete_run(self, run_id: str, principal: Principal | None = None) -> None:
        run = await self._run(run_id, principal)
        if run.status in ACTIVE:
            raise Conflict(f"workflow run {run_id} is {run.status}; cancel it first")
        deleted = await self._repository.delete_run(run_id)
        if deleted is None:
            raise Conflict(f"workflow run {run_id} is active; cancel it first")
        for name in [deleted.input_media, *(deleted.artifacts or [])]:
            self._storage.remove(name)

    async def artifact(
        self, run_id: str, step_id: str, principal: Principal | None = None
    ) -> tuple[str, str]:
        """(path, file name) of a step's media artifact (extract_audio); 404/410 otherwise."""
        await self._run(run_id, principal)
        loaded = await self._repository.load(run_id)
        row = next((row for row in loaded[1] if row.step_id == step_id), None) if loaded else None
        if row is None:
            raise NotFound(f"run {run_id} has no step {step_id}")
        name = (row.output or {}).get("audio")
        if row.status != StepStatus.completed.value or not isinstance(name, str):
            raise NotFound(f"step {step_id} of run {run_id} has no artifact")
        try:
            path = self._storage.path_of(name)
        except ValueError:
            raise NotFound(f"step {step_id} of run {run_id} has no artifact") from None
        if not path.is_file():
            raise Gone("the artifact is no longer retained")
        return str(path), f"{run_id}-{step_id}.{(row.output or {}).get('format', 'media')}"

    async def media_paths(self) -> set[str]:
        return await self._repository.media_paths()

    # --- input of scheduled runs (called by the runner) -----------------------------------------

    async def prepare_pending(self, run: WorkflowRun) -> tuple[dict[str, Any], str | None]:
        source = run.input.get("pending_source") or {}
        kind = InputKind(source.get("kind", "none"))
        prepared, stored = await self._prepare(kind, file_url=source.get("file_url"), link=source.get("link"))
        prepared["params"] = run.input.get("params", {})
        return prepared, stored.name if stored is not None else None

    # --- triggers -------------------------------------------------------------------------------

    async def _cron_workflows(self) -> list[tuple[Workflow, list[tuple[int, CronTrigger]]]]:
        return [
            (workflow, triggers)
            for workflow in await self._repository.with_trigger("cron")
            if (triggers := cron_triggers(workflow.definition))
        ]

    async def fire_cron(self, workflow: Workflow, index: int, trigger: CronTrigger, slot: datetime) -> bool:
        """Start the run of one schedule slot, unless some node already did (then False)."""
        key = slot_key(index, slot)
        if await self._repository.fired(workflow.id, key):
            return False
        document = WorkflowDocument.model_validate(workflow.definition)
        params = dict(document.input.params)
        params.update(trigger.input.params)
        if trigger.input.file_url:
            source: dict[str, Any] = {"kind": "url", "file_url": trigger.input.file_url}
        elif trigger.input.link:
            source = {"kind": "link", "link": trigger.input.link}
        else:
            source = {"kind": "none"}
        run_input: dict[str, Any] = {"kind": source["kind"], "params": params, "slot": slot.isoformat()}
        if source["kind"] != "none":
            run_input["pending_source"] = source
        run = await self._insert_run(workflow, run_input, None, trigger="cron", fire_key=key)
        return run is not None

    def _task_finished(self, task_id: str) -> None:
        """``TaskEvents.on_finished`` listener: wake the run waiting on the task, fire event triggers."""
        self._spawn(self._after_task(task_id))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_task(self, task_id: str) -> None:
        try:
            if await self._repository.wake_for_task(task_id) and self.runner is not None:
                self.runner.wake()
            task = await self._task_repository.get(task_id)
            if task is None or task.status != TaskStatus.completed.value or task.workflow_run_id is not None:
                return  # tasks of workflow steps never fire triggers (no loops)
            await self._fire_events(EventName.task_completed, task, url=None)
        except Exception:
            logger.exception("workflow handling of finished task %s failed", task_id)

    async def link_submitted(self, url: str, task: TaskOut) -> None:
        """``LinkService`` listener: start the runs of workflows whose link pattern matches.

        Returns at once: the matching runs in the background (see :meth:`idle`), its patterns in a
        worker thread, so the request that submitted the link never waits for it."""
        self._spawn(self._after_link(url, task.id))

    async def _after_link(self, url: str, task_id: str) -> None:
        try:
            row = await self._task_repository.get(task_id)
            if row is not None:
                await self._fire_events(EventName.link_submitted, row, url=url)
        except Exception:
            logger.exception("workflow handling of the link of task %s failed", task_id)

    async def _fire_events(self, event: EventName, task: Task, *, url: str | None) -> None:
        candidates = [
            (workflow, event_triggers(workflow.definition, event.value))
            for workflow in await self._repository.with_trigger(event.value)
            # a workflow sees only its own key's tasks
            if workflow.api_key_id is None or workflow.api_key_id == task.api_key_id
        ]
        if event is EventName.link_submitted and url:
            # URL patterns (RE2, linear time, length-capped) still run off the event loop.
            matched = await asyncio.to_thread(
                lambda: [w for w, triggers in candidates if any(link_matches(t, url) for _, t in triggers)]
            )
        else:
            matched = [w for w, triggers in candidates if any(task_matches(t, task) for _, t in triggers)]
        for workflow in matched:
            await self._start_for_task(workflow, task, event)

    async def catch_up_events(self, now: datetime | None = None, *, limit: int = 100) -> int:
        """Fire ``task.completed`` triggers whose live event was lost (the node that finished the task
        stopped before firing): tasks completed within ``WORKFLOWS__EVENT_CATCHUP_SECONDS``, and not
        before the workflow was created or last changed, that match and have not fired it. Up to
        ``limit`` tasks per workflow and call; returns how many runs this node started."""
        lookback = self._settings.event_catchup_seconds
        if lookback <= 0:
            return 0
        now = now or utcnow()
        event = EventName.task_completed
        started = 0
        for workflow in await self._repository.with_trigger(event.value):
            triggers = event_triggers(workflow.definition, event.value)
            if not triggers:
                continue
            tasks = await self._repository.unfired_completed_tasks(
                workflow.id,
                event=event.value,
                since=max(workflow.updated_at, now - timedelta(seconds=lookback)),
                api_key_id=workflow.api_key_id,
                matches=[trigger.match for _index, trigger in triggers],
                limit=limit,
            )
            for task in tasks:
                if await self._start_for_task(workflow, task, event):
                    logger.warning(
                        "run for task %s of workflow %s started by the catch-up (its event was lost)",
                        task.id,
                        workflow.id,
                    )
                    started += 1
        return started

    async def _start_for_task(self, workflow: Workflow, task: Task, event: EventName) -> bool:
        """Start the workflow's run for ``task``; False when the event already fired it (any node)."""
        try:
            document = WorkflowDocument.model_validate(workflow.definition)
        except ValidationError:
            return False
        run_input: dict[str, Any] = {"kind": InputKind.task.value, **self._task_input(task)}
        run_input["params"] = dict(document.input.params)
        run_input["event"] = event.value
        stored: StoredMedia | None = None
        if task.media_path is not None and self._storage.path_of(task.media_path).is_file():
            stored = await self._storage.copy(task.media_path)
        try:
            run = await self._insert_run(
                workflow,
                run_input,
                stored.name if stored else None,
                trigger=event.value,
                fire_key=f"{event.value}:{task.id}",
            )
        except BaseException:
            if stored is not None:
                self._storage.remove(stored.name)
            raise
        if run is None and stored is not None:
            self._storage.remove(stored.name)
        return run is not None
