"""SQLAlchemy ORM models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh row id (32 hex digits) for tasks, batches, workflows, runs and every other table."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite and MySQL store them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware values")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Task(Base):
    """One unit of work: a media file and what to do with it."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_priority_created", "status", "priority", "created_at"),
        Index("ix_tasks_status_lease", "status", "lease_expires_at"),
        Index("ix_tasks_status_completed", "status", "completed_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(SmallInteger, default=1)
    """Rank: 0 high, 1 normal, 2 low. Lower runs first."""
    task_type: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    chinese_script: Mapped[str | None] = mapped_column(String(16), default=None)
    """Script Chinese output is converted to (``original`` leaves it as decoded); also in ``options``."""
    diarize: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Whether the task labels speakers (also in ``options``; a column for filtering and display)."""

    source: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    file_url: Mapped[str | None] = mapped_column(Text, default=None)
    media_path: Mapped[str | None] = mapped_column(String(255), default=None)
    """Server-generated file name inside the storage directory; never derived from user input."""
    media_node: Mapped[str | None] = mapped_column(Text, default=None)
    """Base URL of the node holding the media file, for workers on other nodes (None: shared storage)."""
    file_size: Mapped[int | None] = mapped_column(Integer, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)

    platform: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    """The batch the task was created in, if any."""
    callback_url: Mapped[str | None] = mapped_column(Text, default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    """The API key that created the task (None: auth off or the bootstrap admin key); only it and admins see the task."""
    workflow_run_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    """The workflow run whose step created the task (such tasks never fire workflow event triggers)."""

    link_url: Mapped[str | None] = mapped_column(Text, default=None)
    """The media link a task was created from (``POST /api/v1/tasks/from-link``), as given."""
    link_webpage_url: Mapped[str | None] = mapped_column(Text, default=None)
    """Canonical page URL of the link (short links resolved), as yt-dlp reports it."""
    link_title: Mapped[str | None] = mapped_column(Text, default=None)
    link_author: Mapped[str | None] = mapped_column(String(255), default=None)
    link_duration: Mapped[float | None] = mapped_column(Float, default=None)
    """Duration the platform declares, in seconds."""
    link_thumbnail: Mapped[str | None] = mapped_column(Text, default=None)
    link_media_id: Mapped[str | None] = mapped_column(String(255), default=None)
    """The platform's id of the video or track."""

    progress: Mapped[float] = mapped_column(Float, default=0.0)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    language_probability: Mapped[float | None] = mapped_column(Float, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    processing_time: Mapped[float | None] = mapped_column(Float, default=None)
    worker_id: Mapped[str | None] = mapped_column(String(128), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Claims so far; also the fencing token: only the current claim's writes land."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """The claiming worker must heartbeat before this, or the reaper re-queues the task."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Batch(Base):
    """Tasks created together by one ``POST /api/v1/tasks/batch``; its tasks carry its id."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    total: Mapped[int] = mapped_column(Integer)
    """Tasks created in the batch (some may have been deleted since)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    """The key that created the batch (None: the bootstrap admin key, or auth off). It decides who
    sees the batch, also once all its tasks are deleted."""


class Worker(Base):
    """A live processor (one per worker process), kept current by its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    devices: Mapped[list[str]] = mapped_column(JSON)
    running_tasks: Mapped[list[str]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class CallbackDelivery(Base):
    """Outbox of webhook deliveries: one row per task ending (or manual re-send), retried durably."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (Index("ix_callback_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    """Also the ``Idempotency-Key`` header: the same on every retry of this delivery."""
    task_id: Mapped[str] = mapped_column(String(32), index=True)
    """No foreign key (SQLite batch migrations of ``tasks`` would cascade); deleted with the task."""
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(32))
    """``task.completed`` or ``task.failed``."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, delivered or failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claim_token: Mapped[str | None] = mapped_column(String(32), default=None)
    """Fencing token of the current claim: only its holder records the attempt."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CallbackAttempt(Base):
    """One HTTP attempt of a delivery: when, the reply's status code and a snippet of its body."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response_snippet: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Summary(Base):
    """An LLM summary of a task's transcript (the API key used is never stored)."""

    __tablename__ = "summaries"
    __table_args__ = (Index("ix_summaries_task_created", "task_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(String(32), ForeignKey("tasks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    """``completed`` or ``failed``."""
    model: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(32), default=None)
    content: Mapped[str | None] = mapped_column(Text, default=None)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    total_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    processing_time: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """An API key. Only the SHA-256 of the key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Hex SHA-256 of the key (keys are 256-bit random tokens, so a fast hash is enough)."""
    prefix: Mapped[str] = mapped_column(String(16))
    """The key's first characters, to recognise it in listings."""
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Speaker(Base):
    """An enrolled voice: a name and the embedding of a short sample, visible to the key that created it."""

    __tablename__ = "speakers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[list[float]] = mapped_column(JSON)
    """The 256-d voice embedding of the sample (the sample itself is not kept)."""
    sample_seconds: Mapped[float] = mapped_column(Float)
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    """The API key that enrolled the voice (None: auth off or the bootstrap admin key)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Workflow(Base):
    """A workflow document (steps and triggers) owned by the API key that created it."""

    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The validated document, as given (aliases such as ``with`` and ``if`` kept)."""
    trigger_kinds: Mapped[str] = mapped_column(String(255), default="")
    """Comma-wrapped trigger kinds (``,cron,task.completed,``) so the trigger loops select cheaply."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WorkflowRun(Base):
    """One run of a workflow; claimed by one node at a time (lease + fencing token) to advance it."""

    __tablename__ = "workflow_runs"
    __table_args__ = (Index("ix_workflow_runs_due", "status", "next_check_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workflow_id: Mapped[str] = mapped_column(String(32), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The workflow document when the run started: later edits do not change a running run."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, running, completed, failed or cancelled."""
    trigger: Mapped[str] = mapped_column(String(64), default="manual")
    """What started the run: manual, cron, task.completed or link.submitted."""
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The run's input as expressions read it (``input.kind``, ``input.media``, ``input.params``, ...)."""
    input_media: Mapped[str | None] = mapped_column(String(255), default=None)
    """The run's copy of its input media (removed when the run ends); steps get their own copies."""
    artifacts: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Media files the run's steps produced (e.g. extracted audio); kept until the run is deleted."""
    api_key_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claim_token: Mapped[str | None] = mapped_column(String(32), default=None)
    """Fencing token of the current claim: only its holder writes the run's and its steps' state."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    """When a runner should look at the run again (a task it waits on may have finished elsewhere)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class WorkflowStep(Base):
    """The state of one step of a run: status, attempts (with timings), output and its task."""

    __tablename__ = "workflow_steps"
    __table_args__ = (UniqueConstraint("run_id", "step_id", name="uq_workflow_steps_run_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    uses: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, running, completed, skipped, failed or cancelled."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """One entry per attempt: number, started_at, finished_at, seconds, outcome, error, task_id."""
    task_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    """The task of the current attempt of a transcribe/translate step; written before the task is created."""
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class WorkflowFire(Base):
    """A trigger firing: at most one row (and so one run) per workflow and key, across all nodes.

    Keys: ``cron:<trigger>:<slot>``, ``task.completed:<task id>``, ``link.submitted:<task id>``.
    """

    __tablename__ = "workflow_fires"
    __table_args__ = (PrimaryKeyConstraint("workflow_id", "fire_key", name="pk_workflow_fires"),)

    workflow_id: Mapped[str] = mapped_column(String(32))
    fire_key: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
