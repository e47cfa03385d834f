"""The durable workflow engine: claims due runs and advances their steps, on any number of nodes.

State lives in the database only. A pass over a run (under a lease + fencing token, see
:class:`~app.db.workflow_repository.WorkflowRepository`) walks the steps in topological order:

* a step whose needs are all ``completed``/``skipped`` starts, unless its condition is false
  (``skipped``) or its retry back-off has not passed;
* ``transcribe``/``translate`` steps queue a real task. The task id is generated and written to the
  step row *before* the task is inserted with that id, so a crash in between finds the id and
  creates the task then (an existing id is never inserted twice). The step completes when a later
  pass sees the task finished: a local task ending marks the run due at once, and runs waiting
  on tasks are re-read every ``recheck_seconds`` (tasks finished on other nodes);
* inline steps run in the pass. Their completion is a fenced write; a node that dies in the middle
  leaves the step ``running`` and the next holder runs it again under the same attempt number.
  Pure steps (subtitles) give the same result; webhooks are therefore *at least once*, always with
  the same ``Idempotency-Key: <run id>:<step id>``.

Steps that completed are never run again: their outputs are stored and read back by later steps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from app.background import BackgroundLoop
from app.db.models import Task, WorkflowRun, WorkflowStep, new_id, utcnow
from app.db.task_repository import TaskRepository
from app.db.workflow_repository import ACTIVE, RunClaim, RunStatus, StepStatus, WorkflowRepository
from app.errors import DomainError
from app.media.storage import MediaStorage
from app.schemas.task import DecodeOptions, MediaSource, TaskPriority, TaskSpec, TaskStatus, TaskType
from app.services.auth import Principal
from app.services.task_service import TaskService
from app.workflows.catalog import BUILTINS, StepKind
from app.workflows.components import ComponentRegistry
from app.workflows.conditions import ExpressionError, parse, resolve
from app.workflows.definition import StepSpec, WorkflowDocument
from app.workflows.steps import InlineSteps, StepCall, StepFailedError
from app.workflows.validation import InvalidWorkflowError, ValidatedWorkflow, validate
from config.settings import WorkflowsSettings

logger = logging.getLogger(__name__)

SYSTEM = Principal(key_id=None, name="workflow runner", is_admin=True)
"""The runner reads and cancels tasks of any key (runs are scoped when they are created)."""

InputPreparer = Callable[[WorkflowRun], Awaitable[tuple[dict[str, Any], str | None]]]
"""Downloads a scheduled run's ``file_url``/``link`` input: returns (input, media name)."""
OwnerResolver = Callable[[str | None], Awaitable[Principal]]
"""The principal of a run's ``api_key_id`` (see :meth:`app.services.auth.AuthService.owner`)."""


class _LostClaimError(Exception):
    """The run was cancelled or taken over: stop this pass without writing anything more."""


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def run_owner(run: WorkflowRun) -> Principal:
    """Whom the tasks a run queues belong to: the run's key."""
    return Principal(key_id=run.api_key_id, name="workflow", is_admin=False)


def own_media(run: WorkflowRun, name: Any) -> str:
    """``name`` when it is the run's own media (its input or an artifact of its steps).

    A step's ``media`` input is a storage name; any other name (another run's artifact, another
    key's upload) does not exist for this run, whoever owns it.
    """
    if not isinstance(name, str) or not name:
        raise StepFailedError("the step has no media (the run's input has none, or it is gone)")
    if name != run.input_media and name not in (run.artifacts or []):
        raise StepFailedError(f"media {name} does not exist")
    return name


def transcript_output(task: Task) -> dict[str, Any]:
    result = task.result or {}
    return {
        "text": result.get("text", ""),
        "language": task.language,
        "language_probability": task.language_probability,
        "duration": result.get("duration", task.duration),
        "result": result,
        "task_id": task.id,
    }


class WorkflowRunner:
    """Claims due runs (lease + fencing token) and advances them; every node may run one."""

    def __init__(
        self,
        *,
        settings: WorkflowsSettings,
        repository: WorkflowRepository,
        task_repository: TaskRepository,
        tasks: TaskService,
        storage: MediaStorage,
        steps: InlineSteps,
        components: ComponentRegistry,
        node_id: str,
        prepare_input: InputPreparer,
        resolve_owner: OwnerResolver,
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._task_repository = task_repository
        self._tasks = tasks
        self._storage = storage
        self._steps = steps
        self._components = components
        self._node_id = node_id
        self._prepare_input = prepare_input
        self._resolve_owner = resolve_owner
        self._loop = BackgroundLoop(
            "workflow-runner",
            self._round,
            interval=settings.poll_interval_seconds,
            failure="workflow round failed; retrying",
            log=logger,
        )

    def wake(self) -> None:
        self._loop.wake()

    async def start(self, *, identity: str | None = None) -> None:
        """Start advancing runs. Claims an earlier process under the same ``identity`` left behind
        (crash, kill) are taken back at once instead of lapsing with their lease."""
        if identity is not None:
            self._node_id = identity
        released = await self._repository.release_node(self._node_id)
        if released:
            logger.warning("released %d workflow run claim(s) left by a previous run of this node", released)
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _round(self) -> bool:
        """One batch of due runs; True when it was full (more may be due at once)."""
        return await self.run_once() >= self._settings.max_concurrent_runs

    async def run_once(self) -> int:
        """Claim and advance one batch of due runs; returns how many were claimed."""
        claims = await self._repository.claim_due(
            self._node_id,
            lease_seconds=self._settings.lease_seconds,
            limit=self._settings.max_concurrent_runs,
        )
        if claims:
            await asyncio.gather(*(self._advance_claimed(claim) for claim in claims))
        return len(claims)

    async def _advance_claimed(self, claim: RunClaim) -> None:
        keeper = asyncio.create_task(self._keep_lease(claim))
        next_check = utcnow() + timedelta(seconds=self._settings.recheck_seconds)
        try:
            next_check = await self.advance(claim)
        except _LostClaimError:
            logger.info("run %s: claim lost (cancelled or taken over); stopping this pass", claim.run_id)
        except asyncio.CancelledError:
            next_check = utcnow()
            raise
        except Exception:
            logger.exception("run %s: pass failed; retrying later", claim.run_id)
        finally:
            keeper.cancel()
            with suppress(Exception):
                await asyncio.shield(self._repository.release(claim, next_check_at=next_check))

    async def _keep_lease(self, claim: RunClaim) -> None:
        while True:
            await asyncio.sleep(self._settings.lease_seconds / 3)
            with suppress(Exception):
                if not await self._repository.renew(claim, self._settings.lease_seconds):
                    return

    # --- one pass over a run --------------------------------------------------------------------

    def _workflow(self, run: WorkflowRun) -> ValidatedWorkflow:
        document = WorkflowDocument.model_validate(run.definition)
        return validate(document, components=self._components, max_steps=len(document.steps))

    async def advance(self, claim: RunClaim) -> datetime:
        """One pass over the claimed run; returns when it should be looked at again."""
        recheck = utcnow() + timedelta(seconds=self._settings.recheck_seconds)
        loaded = await self._repository.load(claim.run_id)
        if loaded is None:
            return recheck
        run, rows = loaded
        if run.claim_token != claim.token or run.status not in ACTIVE:
            return recheck
        try:
            workflow = self._workflow(run)
        except (ValidationError, InvalidWorkflowError) as exc:
            await self._finish(claim, run, rows, RunStatus.failed, f"the workflow is no longer valid: {exc}")
            return recheck
        steps = {row.step_id: row for row in rows}
        # Task references resolve as the run's key would see them through the API.
        owner = await self._resolve_owner(run.api_key_id)
        if run.status == RunStatus.pending.value:
            values: dict[str, Any] = {"status": RunStatus.running.value, "started_at": utcnow()}
            if run.input.get("pending_source") and run.input_media is None:
                try:
                    prepared, media = await self._prepare_input(run)
                except DomainError as exc:
                    await self._finish(
                        claim, run, rows, RunStatus.failed, f"the input could not be fetched: {exc.detail}"
                    )
                    return recheck
                values.update(input=prepared, input_media=media)
            await self._write(claim, run=values)
            for key, value in values.items():
                setattr(run, key, value)

        wait_until: datetime | None = None

        def later(moment: datetime) -> None:
            nonlocal wait_until
            wait_until = moment if wait_until is None else min(wait_until, moment)

        changed = True
        while changed:
            changed = False
            for step_id in workflow.order:
                row = steps[step_id]
                spec = workflow.step(step_id)
                status = StepStatus(row.status)
                if status is StepStatus.running:
                    if row.task_id is not None:
                        if await self._check_task(claim, run, row, spec, owner):
                            changed = True
                        else:
                            later(recheck)
                    else:  # an inline step interrupted by a crash or shutdown: run it again
                        await self._run_inline(claim, run, row, spec, steps, workflow, resumed=True)
                        changed = True
                    continue
                if status is not StepStatus.pending:
                    continue
                if not all(StepStatus(steps[need].status).done for need in workflow.needs[step_id]):
                    continue
                if row.next_attempt_at is not None and row.next_attempt_at > utcnow():
                    later(row.next_attempt_at)
                    continue
                changed = True
                context = self._context(run, steps)
                if spec.if_ is not None:
                    try:
                        proceed = parse(spec.if_).truthy(context)
                    except ExpressionError as exc:
                        await self._set(claim, row, status=StepStatus.failed.value, error=f"condition: {exc}")
                        continue
                    if not proceed:
                        now = utcnow()
                        await self._set(
                            claim, row, status=StepStatus.skipped.value, completed_at=now, output={}
                        )
                        logger.info("run %s: step %s skipped (%s is false)", run.id, step_id, spec.if_)
                        continue
                if self._kind(spec) is StepKind.task:
                    await self._start_task(claim, run, row, spec, context, owner)
                else:
                    await self._run_inline(claim, run, row, spec, steps, workflow, resumed=False)

        failed = [row for row in rows if row.status == StepStatus.failed.value]
        if failed:
            first = failed[0]
            await self._finish(
                claim, run, rows, RunStatus.failed, f"step {first.step_id} failed: {first.error}"
            )
        elif all(StepStatus(row.status).done for row in rows):
            await self._finish(claim, run, rows, RunStatus.completed, None)
        return wait_until or recheck

    def _kind(self, spec: StepSpec) -> StepKind:
        builtin = BUILTINS.get(spec.uses)
        return builtin.kind if builtin is not None else StepKind.inline

    @staticmethod
    def _context(run: WorkflowRun, steps: dict[str, WorkflowStep]) -> dict[str, Any]:
        return {
            "input": {**run.input, "media": run.input_media},
            "steps": {
                step_id: {**(row.output or {}), "status": row.status} for step_id, row in steps.items()
            },
        }

    async def _write(
        self,
        claim: RunClaim,
        *,
        run: dict[str, Any] | None = None,
        steps: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        if not await self._repository.write(claim, run=run, steps=steps):
            raise _LostClaimError

    async def _set(
        self, claim: RunClaim, row: WorkflowStep, *, run: dict[str, Any] | None = None, **values: Any
    ) -> None:
        """Fenced write of a step's new values (and optionally the run's), mirrored on ``row``."""
        await self._write(claim, run=run, steps={row.step_id: values})
        for key, value in values.items():
            setattr(row, key, value)

    async def _begin_attempt(
        self, claim: RunClaim, row: WorkflowStep, *, resumed: bool = False, **values: Any
    ) -> int:
        now = utcnow()
        history = [dict(entry) for entry in row.history or []]
        if resumed and history:
            number = row.attempts
            history[-1]["resumed"] = int(history[-1].get("resumed", 0)) + 1
        else:
            number = row.attempts + 1
            history.append({"number": number, "started_at": _iso(now), "outcome": "running"})
        if "task_id" in values and values["task_id"] is not None:
            history[-1]["task_id"] = values["task_id"]
        await self._set(
            claim,
            row,
            status=StepStatus.running.value,
            attempts=number,
            history=history,
            started_at=row.started_at or now,
            next_attempt_at=None,
            **values,
        )
        return number

    def _closed_history(self, row: WorkflowStep, outcome: str, error: str | None) -> list[dict[str, Any]]:
        now = utcnow()
        history = [dict(entry) for entry in row.history or []]
        if history:
            entry = history[-1]
            entry["outcome"] = outcome
            entry["finished_at"] = _iso(now)
            with suppress(KeyError, ValueError):
                started = datetime.fromisoformat(entry["started_at"])
                entry["seconds"] = round((now - started).total_seconds(), 3)
            if error is not None:
                entry["error"] = error[:2000]
        return history

    async def _complete(
        self,
        claim: RunClaim,
        run: WorkflowRun,
        row: WorkflowStep,
        output: dict[str, Any],
        artifacts: list[str],
    ) -> None:
        run_values = None
        if artifacts:
            run_values = {"artifacts": [*(run.artifacts or []), *artifacts]}
        try:
            await self._set(
                claim,
                row,
                run=run_values,
                status=StepStatus.completed.value,
                output=output,
                error=None,
                completed_at=utcnow(),
                history=self._closed_history(row, "completed", None),
            )
        except _LostClaimError:
            for name in artifacts:
                self._storage.remove(name)
            raise
        if run_values is not None:
            run.artifacts = run_values["artifacts"]
        logger.info("run %s: step %s completed (attempt %d)", run.id, row.step_id, row.attempts)

    async def _attempt_failed(
        self,
        claim: RunClaim,
        run: WorkflowRun,
        row: WorkflowStep,
        spec: StepSpec,
        error: str,
        *,
        retry: bool = True,
    ) -> None:
        history = self._closed_history(row, "failed", error)
        if retry and row.attempts < spec.retry.max_attempts:
            delay = spec.retry.delay(row.attempts)
            await self._set(
                claim,
                row,
                status=StepStatus.pending.value,
                error=error[:4000],
                task_id=None,
                history=history,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
            )
            logger.warning(
                "run %s: step %s attempt %d failed (%s); retrying in %.1fs",
                run.id,
                row.step_id,
                row.attempts,
                error,
                delay,
            )
        else:
            await self._set(
                claim,
                row,
                status=StepStatus.failed.value,
                error=error[:4000],
                history=history,
                completed_at=utcnow(),
            )
            logger.warning(
                "run %s: step %s failed after %d attempt(s): %s", run.id, row.step_id, row.attempts, error
            )

    # --- inline steps ---------------------------------------------------------------------------

    async def _run_inline(
        self,
        claim: RunClaim,
        run: WorkflowRun,
        row: WorkflowStep,
        spec: StepSpec,
        steps: dict[str, WorkflowStep],
        workflow: ValidatedWorkflow,
        *,
        resumed: bool,
    ) -> None:
        number = await self._begin_attempt(claim, row, resumed=resumed)
        context = self._context(run, steps)
        try:
            inputs = resolve(spec.with_, context)
            if spec.uses == "extract_audio":
                inputs["media"] = own_media(run, inputs["media"]) if "media" in inputs else run.input_media
            call = StepCall(
                run_id=run.id,
                workflow_id=run.workflow_id,
                step_id=row.step_id,
                uses=spec.uses,
                attempt=number,
                inputs=inputs,
                default_body={
                    "input": {key: value for key, value in run.input.items() if key != "pending_source"},
                    "steps": {need: context["steps"][need] for need in sorted(workflow.needs[row.step_id])},
                },
            )
            result = await self._steps.run(call)
        except (StepFailedError, DomainError, ExpressionError) as exc:
            await self._attempt_failed(claim, run, row, spec, str(exc))
            return
        except Exception as exc:
            logger.exception("run %s: step %s raised", run.id, row.step_id)
            await self._attempt_failed(claim, run, row, spec, f"{type(exc).__name__}: {exc}")
            return
        await self._complete(claim, run, row, result.output, result.artifacts)

    # --- task steps -----------------------------------------------------------------------------

    async def _start_task(
        self,
        claim: RunClaim,
        run: WorkflowRun,
        row: WorkflowStep,
        spec: StepSpec,
        context: dict[str, Any],
        owner: Principal,
    ) -> None:
        try:
            inputs = resolve(spec.with_, context)
        except ExpressionError as exc:
            await self._begin_attempt(claim, row)
            await self._attempt_failed(claim, run, row, spec, str(exc))
            return
        reused = inputs.get("task")
        if (
            spec.uses == "transcribe"
            and reused is None
            and "media" not in inputs
            and run.input.get("kind") == "task"
        ):
            reused = run.input.get("task_id")
        if reused is not None:
            try:  # another key's task does not exist for this run (404 through the API)
                await self._tasks.get_row(str(reused), owner)
            except DomainError as exc:
                await self._begin_attempt(claim, row)
                await self._attempt_failed(claim, run, row, spec, exc.detail, retry=False)
                return
            # Reuse the input task's transcript: nothing is queued, the step waits for that task.
            await self._begin_attempt(claim, row, task_id=str(reused))
            row.history[-1]["reused"] = True
            await self._set(claim, row, history=row.history)
            return
        task_id = new_id()
        # The id is recorded first; the task is inserted with it (see _ensure_task).
        await self._begin_attempt(claim, row, task_id=task_id)
        await self._ensure_task(claim, run, row, spec, inputs)

    async def _ensure_task(
        self, claim: RunClaim, run: WorkflowRun, row: WorkflowStep, spec: StepSpec, inputs: dict[str, Any]
    ) -> None:
        """Create the task recorded on the step unless it exists; a failure fails the attempt."""
        assert row.task_id is not None
        task_id = row.task_id
        try:
            media = own_media(run, inputs.get("media") or run.input_media)
            if not self._storage.path_of(media).is_file():
                raise StepFailedError("the step has no media (the run's input has none, or it is gone)")
            language = inputs.get("language")
            options = DecodeOptions(
                language=language if isinstance(language, str) and language else None,
                chinese_script=inputs.get("chinese_script") or None,
                word_timestamps=bool(inputs.get("word_timestamps") or False),
                initial_prompt=inputs.get("initial_prompt"),
                diarize=bool(inputs.get("diarize") or False),
                num_speakers=inputs.get("num_speakers"),
                min_speakers=inputs.get("min_speakers"),
                max_speakers=inputs.get("max_speakers"),
            )
            task_spec = await self._tasks.check_request(
                TaskSpec(
                    task_type=TaskType.translate if spec.uses == "translate" else TaskType.transcribe,
                    priority=TaskPriority(inputs.get("priority") or TaskPriority.normal.value),
                    model=inputs.get("model"),
                    options=options,
                    platform=run.input.get("platform"),
                )
            )
            copy = await self._storage.copy(media)
        except (StepFailedError, DomainError, ValidationError, ValueError) as exc:
            await self._attempt_failed(claim, run, row, spec, str(exc))
            return
        kind = run.input.get("kind")
        try:
            await self._tasks.enqueue(
                copy,
                task_spec,
                source=MediaSource(kind) if kind in ("upload", "url", "link") else MediaSource.upload,
                file_name=run.input.get("file_name"),
                file_url=run.input.get("url"),
                principal=run_owner(run),
                task_id=task_id,
                workflow_run_id=run.id,
            )
        except IntegrityError:
            logger.info("run %s: task %s of step %s already exists", run.id, task_id, row.step_id)
        except DomainError as exc:
            await self._attempt_failed(claim, run, row, spec, exc.detail)
            return
        history = [dict(entry) for entry in row.history]
        history[-1]["task_created"] = True
        try:
            await self._set(claim, row, history=history)
        except _LostClaimError:
            current = await self._repository.get_run(run.id)
            if current is not None and current.status == RunStatus.cancelled.value:
                with suppress(DomainError):
                    await self._tasks.cancel(task_id, SYSTEM)
            raise
        logger.info("run %s: step %s queued task %s (attempt %d)", run.id, row.step_id, task_id, row.attempts)

    async def _check_task(
        self, claim: RunClaim, run: WorkflowRun, row: WorkflowStep, spec: StepSpec, owner: Principal
    ) -> bool:
        """Follow the step's task; True when the step moved on (completed, failed or retried)."""
        assert row.task_id is not None
        task = await self._task_repository.get(row.task_id)
        entry = (row.history or [{}])[-1]
        visible_to = owner.owner_filter
        if (
            task is not None
            and entry.get("reused")
            and visible_to is not None
            and task.api_key_id != visible_to
        ):
            await self._attempt_failed(
                claim, run, row, spec, f"task {row.task_id} does not exist", retry=False
            )
            return True
        if task is None:
            if entry.get("task_created") or entry.get("reused"):
                await self._attempt_failed(claim, run, row, spec, f"task {row.task_id} was deleted")
                return True
            # Crashed between recording the id and inserting the task: create it now.
            try:
                inputs = resolve(spec.with_, self._context(run, await self._steps_of(run)))
            except ExpressionError as exc:
                await self._attempt_failed(claim, run, row, spec, str(exc))
                return True
            await self._ensure_task(claim, run, row, spec, inputs)
            return row.status != StepStatus.running.value
        status = TaskStatus(task.status)
        if status is TaskStatus.completed:
            await self._complete(claim, run, row, transcript_output(task), [])
            return True
        if status is TaskStatus.failed:
            await self._attempt_failed(
                claim, run, row, spec, f"task {task.id} failed: {task.error}", retry=not entry.get("reused")
            )
            return True
        if status is TaskStatus.cancelled:
            await self._attempt_failed(claim, run, row, spec, f"task {task.id} was cancelled", retry=False)
            return True
        return False

    async def _steps_of(self, run: WorkflowRun) -> dict[str, WorkflowStep]:
        loaded = await self._repository.load(run.id)
        return {row.step_id: row for row in loaded[1]} if loaded is not None else {}

    # --- ending ---------------------------------------------------------------------------------

    async def _finish(
        self,
        claim: RunClaim,
        run: WorkflowRun,
        rows: list[WorkflowStep],
        status: RunStatus,
        error: str | None,
    ) -> None:
        await self._write(
            claim, run={"status": status.value, "completed_at": utcnow(), "error": error, "input_media": None}
        )
        self._storage.remove(run.input_media)
        if status is RunStatus.failed:
            # Tasks still queued or running for this run are of no use any more.
            for row in rows:
                if (
                    row.status == StepStatus.running.value
                    and row.task_id
                    and not (row.history or [{}])[-1].get("reused")
                ):
                    with suppress(DomainError):
                        await self._tasks.cancel(row.task_id, SYSTEM)
        started = run.started_at or run.created_at
        logger.info(
            "run %s of workflow %s %s in %.1fs%s",
            run.id,
            run.workflow_id,
            status.value,
            (utcnow() - started).total_seconds(),
            f": {error}" if error else "",
        )
