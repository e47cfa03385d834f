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
from typing import Annotated, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.engines import check_engine_name

_GROUP_CONFIG = ConfigDict(use_attribute_docstrings=True, extra="forbid")


def _split_csv(value: object) -> object:
    """A list setting from the environment: a JSON list, or comma-separated values."""
    if isinstance(value, str):
        if value.strip().startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]
"""A list of strings, given as a JSON list or comma-separated (``A,B``)."""


class ServerSettings(BaseModel):
    """HTTP server options used by ``start.py``."""

    model_config = _GROUP_CONFIG

    host: str = "127.0.0.1"
    """Interface the HTTP server binds to (``--host`` overrides it)."""

    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port the HTTP server listens on (``--port`` overrides it)."""

    graceful_shutdown_seconds: int = Field(default=10, ge=0)
    """On SIGTERM, how long open HTTP requests (uploads, downloads) may take to finish before they are cut (uvicorn's ``timeout_graceful_shutdown``). Live-event streams and long polls end at once; running tasks then get ``PROCESSOR__SHUTDOWN_TIMEOUT_SECONDS``."""

    public_url: str | None = None
    """Base URL at which other nodes reach this one (e.g. ``http://10.0.0.5:8000``). Set it, with ``STORAGE__PEER_SECRET``, when workers on other nodes cannot see this node's media directory."""


FORMER_MEDIA_DIR = Path("temp_files")
"""The media directory's default before it was called ``media``."""


class StorageSettings(BaseModel):
    """Where media files live and how long they are kept."""

    model_config = _GROUP_CONFIG

    media_dir: Path = Field(default=Path("media"), validation_alias=AliasChoices("media_dir", "temp_dir"))
    """Directory for uploaded and downloaded media, kept until ``STORAGE__MEDIA_RETENTION_HOURS`` after their task finishes. Files are named by the server, never by the user. ``STORAGE__TEMP_DIR``, its former name, is still read; without either, an existing ``temp_files`` directory (the former default) is used while ``media`` does not exist."""

    max_upload_mb: float = Field(default=1024.0, gt=0)
    """Largest accepted media file in MiB, for uploads and ``file_url`` downloads alike (413 beyond it)."""

    download_timeout_seconds: float = Field(default=120.0, gt=0)
    """Network timeout for downloading a ``file_url`` (connect and between reads)."""

    delete_media_after_processing: bool = False
    """Delete a task's media file as soon as the task completes or fails."""

    media_retention_hours: float = Field(default=72.0, ge=0)
    """Delete media of finished tasks older than this many hours (0 keeps it until the task is deleted)."""

    sweep_interval_seconds: float = Field(default=600.0, gt=0)
    """How often expired media and orphaned media files are swept."""

    peer_secret: SecretStr | None = None
    """Shared secret with which workers on other nodes fetch media from the node that received it."""

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @model_validator(mode="after")
    def _former_default_dir(self) -> Self:
        if (
            "media_dir" not in self.model_fields_set
            and not self.media_dir.exists()
            and FORMER_MEDIA_DIR.is_dir()
        ):
            self.media_dir = FORMER_MEDIA_DIR
        return self


class WhisperSettings(BaseModel):
    """Speech engines, models and the model pool."""

    model_config = _GROUP_CONFIG

    engine: str = "faster_whisper"
    """Engine used when a task names none: ``faster_whisper``, ``openai_whisper`` or ``sensevoice`` (see docs/engines.md)."""

    allowed_engines: CsvList = ["faster_whisper", "openai_whisper", "sensevoice"]
    """Engines a task may request. An allowed engine that cannot run here (``sensevoice`` without ``SENSEVOICE__MODEL_DIR``) is reported by the health endpoint and refused with a 422."""

    default_model: str = "base"
    """Model used when a task names none."""

    allowed_models: CsvList = ["base", "tiny.en"]
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
    """Threads per CPU instance; 0 divides the machine's cores among ``instances_per_device``. Never oversubscribes. A faster-whisper instance with cross-task batching runs ``batch_lanes`` batches at once, and each of its workers gets this divided by the lanes (on 2 cores: one thread per lane, 10–15 % more throughput than two)."""

    num_workers: int = Field(default=1, ge=1)
    """CTranslate2 ``num_workers`` of each faster-whisper instance."""

    batch_size: int = Field(default=1, ge=1, le=256)
    """Rows of one faster-whisper batch. 1 (the default) decodes each task alone, one window at a time, with Whisper's own long-form algorithm: the plain sequential path, which loses nothing on the long test files. Above 1, the tasks leasing an instance are decoded together: each batch takes the next 30 s window of up to this many streams (a task's audio, or a piece of a long task cut at a pause of 1 s or more) and decodes them in one call, each with the same algorithm (previous-text prompt, temperature fallback, no-speech skip, word timestamps). It is not the default: on a 2-core CPU it is no faster yet (1.04 × the raw library loop on the mixed workload of ``bench/throughput.py`` and 0.97 × on a dense 10-minute file, tiny.en, where the sequential path gives 0.99 ×), and a long file split into streams comes back 1–2 WER points worse than the library's (bench/RESULTS.md). See docs/batching.md."""

    short_windows: bool = False
    """A stream that holds less than 30 s of audio (a short clip) is encoded in a window cut to its audio plus 1 s, in 10 s steps, instead of a full 30 s one: about 4 × faster on short clips, but the transcript then differs from the library's on 5 of 18 tiny.en clips and 12 of 30 base clips (see docs/batching.md). ``false`` (the default) pads every window to 30 s, as the library does."""

    max_batch_wait_ms: float = Field(default=50.0, ge=0, le=10000)
    """Most milliseconds a batch that is not full waits, from when its oldest stream became ready, for streams of other tasks (``batch_size`` > 1)."""

    batch_lanes: int = Field(default=1, ge=1, le=16)
    """With ``batch_size`` > 1: batches one instance runs at once (CTranslate2 workers sharing the weights). 1 by default: with stream batching two lanes of one thread each were no faster on the mixed workload and slower on one dense 10-minute file (0.52 × against 0.66 × the raw loop, tiny.en, on a busy 2-core machine), which they also split into twice as many streams. Each running batch holds its own activations."""

    express_seconds: float = Field(default=30.0, ge=0)
    """Tasks with at most this many seconds of audio (by default what fits one window) take the express lane, so a short clip never waits behind the windows of long files: on the sequential path (``batch_size`` 1) its steps run at once, beside the one step of a long file that may be under way, on one more CTranslate2 worker, and the long file's next step waits for them; with ``batch_size`` > 1 short tasks are batched among themselves on one more lane. 0 turns the express lane off (and the extra worker)."""

    @property
    def concurrent_batches(self) -> int:
        """Regular batches a faster-whisper instance runs at once: ``batch_lanes`` with cross-task
        batching, else one."""
        return self.batch_lanes if self.batch_size > 1 else 1

    @property
    def workers_per_instance(self) -> int:
        """CTranslate2 workers a faster-whisper instance is loaded with: ``num_workers``, or one per
        step or batch that may run at once on it (the regular lanes and the express lane)."""
        express = 1 if self.express_seconds > 0 else 0
        return max(self.num_workers, self.concurrent_batches + express)

    @field_validator("model_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        return check_engine_name(value)

    @field_validator("allowed_engines")
    @classmethod
    def _known_engines(cls, value: list[str]) -> list[str]:
        return [check_engine_name(name) for name in value]

    def resolved_compute_type(self, device: str) -> str:
        if self.compute_type != "default":
            return self.compute_type
        return "float16" if device == "cuda" else "int8"


class SenseVoiceSettings(BaseModel):
    """The SenseVoice engine (sherpa-onnx); see docs/engines.md and docs/chinese.md."""

    model_config = _GROUP_CONFIG

    model_dir: Path | None = None
    """Directory holding SenseVoiceSmall's ``model.int8.onnx`` (or ``model.onnx``) and ``tokens.txt`` in sherpa-onnx's format, downloaded by you; unset, the ``sensevoice`` engine is unavailable."""

    batch_size: int = Field(default=4, ge=1, le=64)
    """Speech pieces (each at most ``max_piece_seconds``) decoded together in one batch."""

    max_piece_seconds: float = Field(default=30.0, ge=1.0, le=30.0)
    """Long audio is cut by VAD into pieces of at most this many seconds (SenseVoice is trained on short utterances)."""

    @field_validator("model_dir")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


class ChineseSettings(BaseModel):
    """Chinese output (see docs/chinese.md)."""

    model_config = _GROUP_CONFIG

    default_script: Literal["original", "simplified", "traditional", "taiwan", "hongkong"] = "original"
    """Script of Chinese output for tasks that name none: ``original`` (as decoded), ``simplified``, ``traditional``, ``taiwan`` or ``hongkong`` (OpenCC, phrase-level)."""


class ProcessorSettings(BaseModel):
    """Background task processor."""

    model_config = _GROUP_CONFIG

    enabled: bool = True
    """Run the background processor in this process."""

    max_concurrent_tasks: int = Field(default=2, ge=1)
    """Tasks this node runs at the same time. With batching (``WHISPER__BATCH_SIZE`` > 1) at least ``batch_size`` × instances × ``WHISPER__BATCH_LANES`` run, so that batches can fill (a long task also fills rows by itself, split at pauses)."""

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
    """On SIGTERM, how long running tasks may take to finish before they go back to the queue (the server stops claiming at the first signal). A second SIGTERM or SIGINT hands them back at once."""

    max_attempts: int = Field(default=3, ge=1)
    """Claims a task gets; a task whose last lease expires fails with the reason."""
    outage_retry_seconds: float = Field(default=120.0, gt=0)
    """How long a worker keeps retrying a task's essential database writes (its result, its failure,
    giving it back at shutdown) while the database is unreachable, before giving up. The fencing
    token stops a late write from overwriting a newer owner, so a long budget is safe."""


class CallbacksSettings(BaseModel):
    """Webhooks: a POST to a task's ``callback_url`` when the task ends."""

    model_config = _GROUP_CONFIG

    enabled: bool = True
    """Deliver pending callbacks from this node (any number of nodes may; each delivery is claimed by one)."""

    secret: SecretStr | None = None
    """HMAC-SHA256 key for the ``X-Tingxie-Signature`` header; without it callbacks are sent unsigned."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts per delivery (network errors and non-2xx replies are retried); then it is marked failed."""

    backoff_base_seconds: float = Field(default=5.0, gt=0)
    """Delay before the first retry; it doubles with every further attempt (plus random jitter)."""

    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    """Longest delay between two attempts."""

    timeout_seconds: float = Field(default=10.0, gt=0)
    """Overall time limit of one delivery attempt: connecting, sending and reading the reply together (a receiver that trickles its reply is cut off here). Each delivery holds one of the ``CONCURRENCY`` slots for at most this long."""

    poll_interval_seconds: float = Field(default=2.0, gt=0)
    """How often a node looks for due deliveries (callbacks of tasks it finishes start at once)."""

    concurrency: int = Field(default=4, ge=1, le=100)
    """Deliveries one node sends at the same time."""

    snippet_chars: int = Field(default=500, ge=0, le=10000)
    """Characters of each reply body kept in the attempt history."""


class NetworkSettings(BaseModel):
    """Outbound requests to user-supplied URLs (``file_url``, ``callback_url``, media links)."""

    model_config = _GROUP_CONFIG

    ssrf_protection: bool = True
    """Refuse URLs whose host resolves to a loopback, private, link-local, reserved or cloud-metadata address, checked again on every redirect."""

    allowed_hosts: CsvList = []
    """Host names (exact) and IP addresses or CIDR ranges (e.g. ``127.0.0.1,10.0.0.0/8,media.lan``) exempt from the SSRF protection."""

    max_redirects: int = Field(default=5, ge=0, le=20)
    """Redirects followed when downloading a ``file_url``; each hop is checked like the first URL."""


class LinksSettings(BaseModel):
    """Tasks from media links (TikTok, Douyin, YouTube, Bilibili and whatever else yt-dlp supports)."""

    model_config = _GROUP_CONFIG

    format: str = "bestaudio[protocol~='^https?$']/best[protocol~='^https?$']"
    """yt-dlp format selector. The chosen format must be a plain http(s) file, which the server downloads itself under the size limit (HLS/DASH-only media gets 422)."""

    socket_timeout_seconds: float = Field(default=20.0, gt=0)
    """Network timeout of yt-dlp's page requests and of resolving short links."""

    resolve_timeout_seconds: float = Field(default=60.0, gt=0)
    """Most time yt-dlp may spend resolving one link before the request gets 422; past it yt-dlp makes no further requests."""

    resolve_workers: int = Field(default=4, ge=1, le=64)
    """Threads that run yt-dlp, a pool of their own: slow links wait for one of these and never hold the threads that DNS lookups, media probing and the disk check use."""

    max_concurrent_per_key: int = Field(default=2, ge=0)
    """Most media links one API key (or, with auth off, all anonymous callers together) may have resolving at once; more get 429 with ``Retry-After``. 0 means no limit."""

    max_duration_seconds: float = Field(default=0.0, ge=0)
    """Reject links whose declared duration is longer (422) before downloading anything; 0 means no limit beyond the size limit."""

    max_redirects: int = Field(default=5, ge=0, le=20)
    """Redirects followed when resolving a short link (``v.douyin.com``, ``b23.tv``, ...)."""

    cookies_file: Path | None = None
    """Netscape-format cookies file for yt-dlp (Douyin and some YouTube videos need fresh cookies). yt-dlp may update it."""


class AuthSettings(BaseModel):
    """API keys."""

    model_config = _GROUP_CONFIG

    enabled: bool = False
    """Require an API key (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``) on every endpoint except health, the docs and the dashboard's static page (which asks for a key itself)."""

    admin_key: SecretStr | None = None
    """Bootstrap admin key, accepted besides the keys in the database, so a fresh install can create keys through ``/api/v1/keys``."""


class LimitsSettings(BaseModel):
    """Backpressure (when new tasks are refused with 503 and ``Retry-After``) and resource limits."""

    model_config = _GROUP_CONFIG

    max_queue_depth: int = Field(default=10000, ge=0)
    """Most queued tasks (all nodes); new tasks are refused beyond it. 0 means no limit."""

    min_free_disk_mb: float = Field(default=256.0, ge=0)
    """Least free space in MiB on the file systems of the media directory and of the upload spool directory (Python's temporary directory, ``TMPDIR``); new tasks are refused below it. 0 disables the check."""

    min_free_memory_mb: float = Field(default=256.0, ge=0)
    """Least available memory in MiB (psutil, else ``/proc/meminfo``); new tasks are refused below it. 0 disables the check."""

    retry_after_seconds: int = Field(default=30, ge=1)
    """``Retry-After`` value, in seconds, sent with a 503 refusal."""

    max_media_seconds: float = Field(default=4 * 3600.0, ge=0)
    """Longest media accepted, in seconds (default 4 h). A file whose container declares more is refused at submission (413); decoding a file (for a task or ``extract-audio``) stops with an error once it passes the limit, whatever the header said. 0 means no limit."""

    max_extract_mb: float = Field(default=1024.0, gt=0)
    """Largest file ``extract-audio`` may produce, in MiB; the extraction stops with 413 beyond it."""

    max_json_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body, in bytes, of every route that does not take a multipart upload (JSON and anything else); 413 beyond it, before the body is read. Upload routes keep ``STORAGE__MAX_UPLOAD_MB``."""

    max_streams_per_key: int = Field(default=32, ge=0)
    """Open live-event streams (SSE) and long polls (``?wait=N``) one API key may hold at once (per client address when auth is off); 429 with ``Retry-After`` beyond it. 0 means no limit."""


class DiarizationSettings(BaseModel):
    """Speaker diarization (tasks with ``diarize=true``) and enrolled voices."""

    model_config = _GROUP_CONFIG

    cluster_threshold: float = Field(default=0.4, gt=0, lt=2)
    """Cosine distance above which two groups of speech are different speakers when the number of speakers is estimated; lower finds more speakers."""

    match_threshold: float = Field(default=0.75, gt=0, le=1)
    """Least cosine similarity between a speaker's voice in a task and an enrolled (or referenced) voice for the speaker to take that voice's name."""

    threads: int = Field(default=1, ge=0)
    """torch threads of the speaker encoder; 0 uses torch's default (one per core). One is the default: beside a transcription that already uses the cores, more threads spin and wait (ten times slower on a busy 2-core machine)."""


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

    format: Literal["text", "json"] = "text"
    """``text``: one readable line per record; ``json``: one JSON object per line (time, level, logger, message, task_id when set, exception), for log collectors."""


class LLMSettings(BaseModel):
    """OpenAI-compatible chat API used for transcript summaries."""

    model_config = _GROUP_CONFIG

    base_url: str = "https://api.openai.com/v1"
    """Base URL of any OpenAI-compatible chat API (OpenAI, Azure-compatible gateways, vLLM, Ollama ``http://host:11434/v1``, ...)."""

    model: str = "gpt-4o-mini"
    """Chat model that writes the summaries."""

    api_key: SecretStr | None = None
    """API key sent as ``Authorization: Bearer``. Without it, each request must bring its own in the ``X-LLM-API-Key`` header (servers without auth accept any value)."""

    timeout_seconds: float = Field(default=120.0, gt=0)
    """Timeout of one chat completion request, retries not included."""

    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of a failed request (connection errors, 408, 409, 429 and 5xx), with the SDK's back-off."""

    context_tokens: int = Field(default=8192, ge=32)
    """Context window of the model in tokens (estimated as 4 characters, or 1 CJK character, per token). Longer transcripts are chunked and summarised map-reduce."""

    reply_reserve_tokens: int = Field(default=1024, ge=0)
    """Tokens of ``context_tokens`` kept free for the model's reply; the prompt and the text of each request get the rest."""

    temperature: float = Field(default=0.3, ge=0, le=2)
    """Sampling temperature of the summaries."""

    max_concurrent_requests: int = Field(default=4, ge=1, le=64)
    """Chunk summaries of one request sent to the API at the same time."""

    default_prompt: str = (
        "Summarise this transcript: the main topics, key points, decisions and action items, "
        "as concise Markdown."
    )
    """Instruction used when a request gives no ``prompt``."""

    allowed_models: CsvList = []
    """Chat models a summary request may ask for (comma-separated or a JSON list); empty allows only ``model``. Any other gets 422."""

    def model_allowed(self, name: str) -> bool:
        """Whether a request may ask for chat model ``name``."""
        return name == self.model or name in self.allowed_models


class WorkflowsSettings(BaseModel):
    """Workflows: multi-step pipelines run durably by every node."""

    model_config = _GROUP_CONFIG

    enabled: bool = True
    """Run the workflow runner and trigger loops on this node (the API works either way)."""

    poll_interval_seconds: float = Field(default=1.0, gt=0)
    """How often the runner looks for runs that are due (a local task ending wakes it at once)."""

    recheck_seconds: float = Field(default=15.0, gt=0)
    """A run waiting on a task is re-read at least this often (a task finished on another node marks it due at once)."""

    lease_seconds: float = Field(default=120.0, gt=0)
    """A node's claim on a run lasts this long and is renewed while it works; past it, another node takes over."""

    max_concurrent_runs: int = Field(default=8, ge=1, le=256)
    """Runs one node advances at the same time."""

    schedule_tick_seconds: float = Field(default=10.0, gt=0)
    """How often cron triggers are checked for a due slot (each slot fires once across all nodes), and completed tasks for ``task.completed`` triggers that did not fire."""

    event_catchup_seconds: float = Field(default=3600.0, ge=0)
    """How far back the trigger loop looks for completed tasks whose ``task.completed`` trigger did not fire (the node that finished them stopped first); never before the workflow was created or last changed. 0 turns the catch-up off."""

    max_steps: int = Field(default=50, ge=1, le=200)
    """Most steps one workflow may have."""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """Overall time limit of one ``webhook`` step request: connecting, sending and reading the reply together (a reply that trickles in is cut off here and the attempt fails). Webhooks are signed with ``CALLBACKS__SECRET``."""

    webhook_max_response_bytes: int = Field(default=65536, ge=0, le=16 * 1024 * 1024)
    """Most bytes of a ``webhook`` step's reply body that are read; the rest is not downloaded (the step's output notes ``truncated``)."""

    components: CsvList = []
    """Custom step components, as ``module.path:callable`` or ``name=module.path:callable`` (comma-separated or a JSON list); each is imported and checked at start-up."""


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

    sensevoice: SenseVoiceSettings = SenseVoiceSettings()
    """The SenseVoice engine (``SENSEVOICE__*``)."""

    chinese: ChineseSettings = ChineseSettings()
    """Chinese output (``CHINESE__*``)."""

    processor: ProcessorSettings = ProcessorSettings()
    """Background processor (``PROCESSOR__*``)."""

    callbacks: CallbacksSettings = CallbacksSettings()
    """Webhook callbacks (``CALLBACKS__*``)."""

    network: NetworkSettings = NetworkSettings()
    """Outbound requests and the SSRF protection (``NETWORK__*``)."""
    links: LinksSettings = LinksSettings()
    """Media links (``LINKS__*``)."""

    logging: LoggingSettings = LoggingSettings()
    """Logging (``LOGGING__*``)."""

    llm: LLMSettings = LLMSettings()
    """LLM summaries (``LLM__*``)."""
    auth: AuthSettings = AuthSettings()
    """API keys (``AUTH__*``)."""

    limits: LimitsSettings = LimitsSettings()
    """Backpressure limits (``LIMITS__*``)."""

    workflows: WorkflowsSettings = WorkflowsSettings()
    """Workflows (``WORKFLOWS__*``)."""

    diarization: DiarizationSettings = DiarizationSettings()
    """Speaker diarization (``DIARIZATION__*``)."""

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
