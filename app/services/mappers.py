"""ORM rows (and the model pool's state) → the response schemas the API returns: one home for
every mapper, so schemas stay plain data and the services share one shape per resource."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.db.models import (
    ApiKey,
    Batch,
    CallbackAttempt,
    CallbackDelivery,
    Summary,
    Task,
    Workflow,
    WorkflowRun,
    WorkflowStep,
)
from app.db.workflow_repository import StepStatus
from app.engines.model_pool import AsyncModelPool, ModelInstance, ModelKey
from app.schemas.api_key import ApiKeyOut
from app.schemas.batch import BatchOut, BatchTaskOut
from app.schemas.callback import CallbackAttemptOut, CallbackDeliveryOut, CallbackState, CallbackStatus
from app.schemas.chinese import ChineseScript
from app.schemas.model import InstanceOut, InstanceState, ModelOut, PoolOut
from app.schemas.result import TranscriptionResult
from app.schemas.summary import SummaryOut, SummaryStatus
from app.schemas.task import (
    DecodeOptions,
    LinkMetadata,
    MediaSource,
    TaskOut,
    TaskPriority,
    TaskStatus,
    TaskType,
)
from app.schemas.workflow import RunOut, StepAttemptOut, StepOut, WorkflowOut


def task_out(task: Task, *, include_result: bool = True, callback: CallbackDelivery | None = None) -> TaskOut:
    return TaskOut(
        id=task.id,
        status=TaskStatus(task.status),
        priority=TaskPriority.from_rank(task.priority),
        task_type=TaskType(task.task_type),
        engine=task.engine,
        model=task.model,
        options=DecodeOptions.model_validate(task.options),
        chinese_script=ChineseScript(task.chinese_script) if task.chinese_script else None,
        source=MediaSource(task.source),
        file_name=task.file_name,
        file_url=task.file_url,
        file_size=task.file_size,
        duration=task.duration,
        platform=task.platform,
        callback_url=task.callback_url,
        progress=task.progress,
        language=task.language,
        language_probability=task.language_probability,
        error=task.error,
        processing_time=task.processing_time,
        worker_id=task.worker_id,
        attempts=task.attempts,
        media_available=task.media_path is not None,
        created_at=task.created_at,
        updated_at=task.updated_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
        link=(
            LinkMetadata(
                platform=task.platform or "generic",
                original_url=task.link_url,
                webpage_url=task.link_webpage_url,
                media_id=task.link_media_id,
                title=task.link_title,
                author=task.link_author,
                duration=task.link_duration,
                thumbnail=task.link_thumbnail,
            )
            if task.link_url is not None
            else None
        ),
        result=(
            TranscriptionResult.model_validate(task.result)
            if include_result and task.result is not None
            else None
        ),
        callback=callback_status(callback) if callback is not None else None,
    )


def callback_status(delivery: CallbackDelivery) -> CallbackStatus:
    return CallbackStatus(
        delivery_id=delivery.id,
        event=delivery.event,
        url=delivery.url,
        status=CallbackState(delivery.status),
        attempts=delivery.attempts,
        next_attempt_at=(
            delivery.next_attempt_at if delivery.status == CallbackState.pending.value else None
        ),
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        last_attempt_at=delivery.last_attempt_at,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def delivery_out(delivery: CallbackDelivery, attempts: list[CallbackAttempt]) -> CallbackDeliveryOut:
    return CallbackDeliveryOut(
        **callback_status(delivery).model_dump(),
        history=[
            CallbackAttemptOut(
                number=attempt.number,
                status_code=attempt.status_code,
                response_snippet=attempt.response_snippet,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                attempted_at=attempt.attempted_at,
            )
            for attempt in attempts
        ],
    )


def batch_out(batch: Batch, tasks: Sequence[Task]) -> BatchOut:
    counts = dict.fromkeys(TaskStatus, 0)
    items: list[BatchTaskOut] = []
    progress = 0.0
    for task in tasks:
        status = TaskStatus(task.status)
        counts[status] += 1
        progress += 100.0 if status.finished else task.progress
        text = task.result.get("text") if status is TaskStatus.completed and task.result else None
        items.append(
            BatchTaskOut(
                id=task.id,
                file_name=task.file_name,
                status=status,
                progress=100.0 if status.finished else task.progress,
                duration=task.duration,
                language=task.language,
                error=task.error,
                text=text.strip() if isinstance(text, str) else None,
            )
        )
    return BatchOut(
        id=batch.id,
        created_at=batch.created_at,
        total=batch.total,
        counts=counts,
        progress=round(progress / len(tasks), 2) if tasks else 100.0,
        finished=all(TaskStatus(task.status).finished for task in tasks),
        tasks=items,
    )


def summary_out(summary: Summary) -> SummaryOut:
    return SummaryOut(
        id=summary.id,
        task_id=summary.task_id,
        status=SummaryStatus(summary.status),
        model=summary.model,
        prompt=summary.prompt,
        language=summary.language,
        content=summary.content,
        chunk_count=summary.chunk_count,
        error=summary.error,
        prompt_tokens=summary.prompt_tokens,
        completion_tokens=summary.completion_tokens,
        total_tokens=summary.total_tokens,
        processing_time=summary.processing_time,
        created_at=summary.created_at,
    )


def workflow_out(workflow: Workflow) -> WorkflowOut:
    return WorkflowOut(
        id=workflow.id,
        name=workflow.name,
        enabled=workflow.enabled,
        definition=workflow.definition,
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def step_out(row: WorkflowStep) -> StepOut:
    seconds = (
        round((row.completed_at - row.started_at).total_seconds(), 3)
        if row.started_at is not None and row.completed_at is not None
        else None
    )
    return StepOut(
        id=row.step_id,
        uses=row.uses,
        status=row.status,
        attempts=row.attempts,
        task_id=row.task_id,
        output=row.output,
        error=row.error,
        next_attempt_at=row.next_attempt_at if row.status == StepStatus.pending.value else None,
        started_at=row.started_at,
        completed_at=row.completed_at,
        seconds=seconds,
        history=[
            StepAttemptOut(
                number=int(entry.get("number", 0)),
                outcome=str(entry.get("outcome", "")),
                started_at=_moment(entry.get("started_at")),
                finished_at=_moment(entry.get("finished_at")),
                seconds=entry.get("seconds"),
                error=entry.get("error"),
                task_id=entry.get("task_id"),
                resumed=int(entry.get("resumed", 0)),
            )
            for entry in row.history or []
        ],
    )


def run_out(run: WorkflowRun, steps: list[WorkflowStep] | None = None) -> RunOut:
    return RunOut(
        id=run.id,
        workflow_id=run.workflow_id,
        status=run.status,
        trigger=run.trigger,
        input={key: value for key, value in run.input.items() if key != "pending_source"},
        error=run.error,
        created_at=run.created_at,
        started_at=run.started_at,
        completed_at=run.completed_at,
        steps=[step_out(row) for row in steps] if steps is not None else None,
    )


def api_key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        is_admin=key.is_admin,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


def _instance_out(instance: ModelInstance) -> InstanceOut:
    return InstanceOut(
        id=instance.id,
        device=instance.device.name,
        state=instance.state,
        busy=instance.running > 0,
        leases=instance.leases,
        threads=instance.threads,
        idle_seconds=round(time.monotonic() - instance.last_used, 1),
        memory_bytes=instance.memory_bytes,
        loaded_at=datetime.fromtimestamp(instance.loaded_at, UTC) if instance.loaded_at else None,
    )


def model_out(pool: AsyncModelPool, key: ModelKey, *, allowed_models: list[str]) -> ModelOut:
    instances = pool.instances(key)
    ready = [i for i in instances if i.state is InstanceState.ready]
    busy = sum(1 for i in ready if i.running > 0)
    return ModelOut(
        name=key.model,
        engine=key.engine,
        default=key == pool.default_key,
        allowed=key.model in allowed_models,
        desired=pool.desired(key),
        loaded=len(ready),
        busy=busy,
        idle=len(ready) - busy,
        memory_bytes=sum(i.memory_bytes or 0 for i in instances),
        last_error=pool.failures.get(key),
        instances=[_instance_out(i) for i in instances],
    )


def pool_out(pool: AsyncModelPool, *, allowed_models: list[str], instances_per_device: int) -> PoolOut:
    keys = pool.keys()
    keys.extend(key for key in pool.failures if key not in keys)
    return PoolOut(
        devices=[device.name for device in pool.devices],
        instances_per_device=instances_per_device,
        max_size=pool.max_size,
        cpu_threads=pool.cpu_threads,
        models=[model_out(pool, key, allowed_models=allowed_models) for key in keys],
    )
