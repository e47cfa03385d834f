"""Tingxie configuration: one pydantic-settings ``Settings`` with nested groups.

Values come from (highest priority first) init arguments, environment variables,
the ``.env`` file and the defaults below. Nested groups use ``__`` as the
delimiter, e.g. ``WHISPER__COMPUTE_TYPE=int8`` or ``STORAGE__MAX_UPLOAD_MB=200``.
Every field's docstring is its documentation; ``.env.example`` lists them all.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_GROUP_CONFIG = ConfigDict(use_attribute_docstrings=True, extra="forbid")


class ServerSettings(BaseModel):
    """HTTP server options used by ``start.py``."""

    model_config = _GROUP_CONFIG

    host: str = "127.0.0.1"
    """Interface the HTTP server binds to (``--host`` overrides it)."""

    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port the HTTP server listens on (``--port`` overrides it)."""

    public_url: str | None = None
    """Base URL at which other nodes reach this one (e.g. ``http://10.0.0.5:8000``). Set it, with ``STORAGE__PEER_SECRET``, when workers on other nodes cannot see this node's media directory."""


class StorageSettings(BaseModel):
    """Where media files live and how long they are kept."""

    model_config = _GROUP_CONFIG

    temp_dir: Path = Path("temp_files")
    """Directory for uploaded and downloaded media. Files are named by the server, never by the user."""

    max_upload_mb: float = Field(default=1024.0, gt=0)
    """Largest accepted media file in MiB, for uploads and ``file_url`` downloads alike (413 beyond it)."""

    download_timeout_seconds: float = Field(default=120.0, gt=0)
    """Network timeout for downloading a ``file_url`` (connect and between reads)."""

    delete_media_after_processing: bool = False
    """Delete a task's media file as soon as the task completes or fails."""

    media_retention_hours: float = Field(default=72.0, ge=0)
    """Delete media of finished tasks older than this many hours (0 keeps it until the task is deleted)."""

    sweep_interval_seconds: float = Field(default=600.0, gt=0)
    """How often expired media and orphaned temp files are swept."""

    peer_secret: SecretStr | None = None
    """Shared secret with which workers on other nodes fetch media from the node that received it."""

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class WhisperSettings(BaseModel):
    """Speech engines, models and the model pool."""

    model_config = _GROUP_CONFIG

    engine: Literal["faster_whisper", "openai_whisper"] = "faster_whisper"
    """Engine used when a task names none."""

    allowed_engines: Annotated[list[Literal["faster_whisper", "openai_whisper"]], NoDecode] = [
        "faster_whisper",
        "openai_whisper",
    ]
    """Engines a task may request."""

    default_model: str = "base"
    """Model used when a task names none."""

    allowed_models: Annotated[list[str], NoDecode] = ["base", "tiny.en"]
    """Models a task may request: names (resolved to a local copy first, then the hub) or local paths."""

    model_dir: Path = Path.home() / ".cache" / "tingxie" / "models"
    """Directory where bundled models are assembled and verified, and hub downloads are cached."""

    devices: str = "auto"
    """Where instances run: ``auto`` (every GPU, else the CPU), ``cpu``, ``cuda`` (every GPU) or a list such as ``cuda:0,cuda:1``."""

    instances_per_device: int = Field(default=1, ge=1, le=64)
    """Model instances per device, which is also how many inferences a device runs at once."""

    min_size: int = Field(default=1, ge=0)
    """Instances of the default model kept loaded (the idle TTL never unloads below it)."""

    max_size: int = Field(default=0, ge=0)
    """Most instances of one model across all devices; 0 means devices × instances_per_device."""

    load_mode: Literal["eager", "lazy"] = "eager"
    """``eager`` loads ``min_size`` instances of the default model at start-up; ``lazy`` loads on first use."""

    idle_ttl_seconds: float = Field(default=1800.0, ge=0)
    """Unload an instance idle this long (above ``min_size``); 0 never unloads."""

    warmup: bool = True
    """Run one short inference when an instance loads, so the first task is not slowed down."""

    load_retry_seconds: float = Field(default=30.0, gt=0)
    """Seconds between retries of a failed load of an instance the pool should hold."""

    compute_type: str = "default"
    """Compute type: ``default`` (int8 on CPU, float16 on CUDA), ``int8``, ``int8_float16``, ``float16``, ``float32``."""

    cpu_threads: int = Field(default=0, ge=0)
    """Threads per CPU instance; 0 divides the machine's cores among ``instances_per_device``. Never oversubscribes."""

    num_workers: int = Field(default=1, ge=1)
    """CTranslate2 ``num_workers`` of each faster-whisper instance."""

    window_seconds: float = Field(default=240.0, ge=30.0)
    """Long audio is decoded in windows of at most this many seconds, cut in silence, so memory stays bounded."""

    batch_size: int = Field(default=1, ge=1, le=256)
    """faster-whisper batch size; above 1, VAD speech chunks (≤30 s) are decoded in batches: no previous-text prompt, no temperature fallback; word-timestamp tasks stay sequential."""

    batching: Literal["tasks", "file"] = "tasks"
    """With ``batch_size`` > 1: ``tasks`` packs chunks of every running task that shares an instance into one batch (priority first, round-robin across tasks); ``file`` batches each file on its own."""

    batch_packing: bool = True
    """With ``batching=tasks``: short chunks of tasks with the same language and prompt share one 30 s window (one encoder pass for several clips); their segments are split back by time."""

    max_batch_wait_ms: float = Field(default=50.0, ge=0, le=10000)
    """Most milliseconds a batch that is not full waits, from its oldest chunk's arrival, for chunks of other tasks (``batching=tasks``)."""

    @field_validator("allowed_models", "allowed_engines", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    def resolved_compute_type(self, device: str) -> str:
        if self.compute_type != "default":
            return self.compute_type
        return "float16" if device == "cuda" else "int8"


class ProcessorSettings(BaseModel):
    """Background task processor."""

    model_config = _GROUP_CONFIG

    enabled: bool = True
    """Run the background processor in this process."""

    max_concurrent_tasks: int = Field(default=2, ge=1)
    """Tasks this node runs at the same time. With cross-task batching (``WHISPER__BATCH_SIZE`` > 1, ``WHISPER__BATCHING=tasks``) at least ``batch_size`` × instances (× 4 with ``WHISPER__BATCH_PACKING``) run, so that batches can fill."""

    poll_interval_seconds: float = Field(default=1.0, gt=0)
    """How often an idle processor looks for new tasks (new local tasks wake it at once)."""

    wait_recheck_seconds: float = Field(default=5.0, gt=0)
    """How often a long-polling ``?wait`` request re-reads its task, for tasks another node finishes (this node's wake it at once)."""

    progress_interval_seconds: float = Field(default=1.0, ge=0)
    """Least time between two progress writes for one task."""

    node_id: str = Field(default_factory=socket.gethostname)
    """Identity of this worker, recorded on the tasks it claims. A second live process with the same id gets ``-<pid>-<random>`` appended."""

    lease_seconds: float = Field(default=60.0, gt=0)
    """How long a claim lasts without a heartbeat; then the reaper re-queues the task."""

    heartbeat_interval_seconds: float = Field(default=10.0, gt=0)
    """How often a worker renews its leases and its entry in the workers registry."""

    shutdown_timeout_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long running tasks may take to finish before they go back to the queue."""

    max_attempts: int = Field(default=3, ge=1)
    """Claims a task gets; a task whose last lease expires fails with the reason."""


class LoggingSettings(BaseModel):
    """Log output."""

    model_config = _GROUP_CONFIG

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Minimum level that is logged."""

    dir: Path = Path("log_files")
    """Directory of the rotating log file ``tingxie.log``."""

    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    """Size at which the log file rotates."""

    backup_count: int = Field(default=10, ge=0)
    """Rotated log files that are kept."""


class Settings(BaseSettings):
    """All Tingxie settings."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    database_url: str = "sqlite+aiosqlite:///./tingxie.db"
    """SQLAlchemy database URL. ``sqlite:///``, ``mysql://`` and ``postgresql://`` are mapped to their async drivers."""

    server: ServerSettings = ServerSettings()
    """HTTP server (``SERVER__*``)."""

    storage: StorageSettings = StorageSettings()
    """Media storage (``STORAGE__*``)."""

    whisper: WhisperSettings = WhisperSettings()
    """Speech engine and models (``WHISPER__*``)."""

    processor: ProcessorSettings = ProcessorSettings()
    """Background processor (``PROCESSOR__*``)."""

    logging: LoggingSettings = LoggingSettings()
    """Logging (``LOGGING__*``)."""

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        for plain, async_prefix in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("mysql://", "mysql+aiomysql://"),
            ("mariadb://", "mysql+aiomysql://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if value.startswith(plain):
                return async_prefix + value[len(plain) :]
        return value
