"""Webhook delivery: sends queued callbacks, signs them, retries with durable backoff.

Each delivery runs on its own (at most ``CALLBACKS__CONCURRENCY`` at once, under a semaphore) and
each attempt has one overall deadline, so a slow or trickling receiver costs one slot for at most
``CALLBACKS__TIMEOUT_SECONDS`` and never holds up another task's callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta

import httpx
from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter

from app.background import BackgroundLoop
from app.db.callback_repository import (
    AttemptRecord,
    CallbackRepository,
    ClaimedDelivery,
)
from app.db.models import utcnow
from app.db.task_repository import TaskRepository
from app.logging_setup import task_log_context
from app.net.pinned import guarded_client
from app.net.url_guard import BlockedUrlError, UrlGuard
from app.schemas.callback import CallbackState
from app.services.mappers import task_out
from config.settings import CallbacksSettings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tingxie-Signature"
TIMESTAMP_HEADER = "X-Tingxie-Timestamp"
EVENT_HEADER = "X-Tingxie-Event"
DELIVERY_HEADER = "X-Tingxie-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"

LEASE_MARGIN_SECONDS = 10.0
"""Time kept between the end of an attempt's deadline and the end of its claim's lease."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class CallbackDispatcher:
    """Claims due deliveries from the outbox and POSTs them; any number of nodes may run one."""

    def __init__(
        self,
        *,
        settings: CallbacksSettings,
        repository: CallbackRepository,
        tasks: TaskRepository,
        guard: UrlGuard,
        node_id: str,
        user_agent: str = "Tingxie/1.0",
        on_failed_attempt: Callable[[], None] | None = None,
    ) -> None:
        self._on_failed_attempt = on_failed_attempt
        self._settings = settings
        self._repository = repository
        self._tasks = tasks
        self._guard = guard
        self._node_id = node_id
        self._http = guarded_client(  # connects only to the addresses the guard checked
            guard,
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": user_agent},
            follow_redirects=False,  # a redirect is a non-2xx reply, never followed blindly
        )
        self._wait = wait_exponential_jitter(
            multiplier=settings.backoff_base_seconds,
            max=settings.backoff_max_seconds,
            jitter=settings.backoff_base_seconds,
        )
        self._loop = BackgroundLoop(
            "callback-dispatcher",
            self._send_next,
            interval=settings.poll_interval_seconds,
            failure="claiming a callback delivery failed; retrying",
            log=logger,
        )
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def lease_seconds(self) -> float:
        """A claim outlives the longest attempt (its deadline) by a wide margin."""
        return self._settings.timeout_seconds * 2 + 30.0

    def attempt_deadline(self, claimed_at: float) -> float:
        """Seconds the attempt of a delivery claimed at ``claimed_at`` (``time.monotonic()``) may
        take: the attempt timeout, and never past the claim's lease (less a margin for recording
        the attempt), so no other node can take the delivery over while it is being sent."""
        lease_left = claimed_at + self.lease_seconds - LEASE_MARGIN_SECONDS - time.monotonic()
        return max(0.0, min(self._settings.timeout_seconds, lease_left))

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential with jitter."""
        state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return float(self._wait(state))

    def wake(self, _task_id: str | None = None) -> None:
        """Look for due deliveries now instead of at the next poll."""
        self._loop.wake()

    async def start(self, *, identity: str | None = None) -> None:
        """Start sending. ``identity`` is this process's unique worker id (from the workers registry):
        claims an earlier run under that id left behind are taken back at once instead of lapsing."""
        if identity is not None:
            self._node_id = identity
            released = await self._repository.release_node(identity)
            if released:
                logger.warning("released %d callback delivery claim(s) left by a previous run", released)
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        # Deliveries in flight hand their claims back (see ``_deliver_claimed``).
        for sending in list(self._sending):
            sending.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._http.aclose()

    async def _send_next(self) -> bool:
        """Claim one due delivery once a slot is free and send it on its own (a delivery that
        takes its whole deadline holds one slot, never the others); False when none was due."""
        await self._slots.acquire()
        try:
            claimed_at = time.monotonic()
            claimed = await self._repository.claim_due(
                self._node_id, lease_seconds=self.lease_seconds, limit=1
            )
        except BaseException:
            self._slots.release()
            raise
        if not claimed:
            self._slots.release()
            return False
        sending = asyncio.create_task(
            self._deliver_claimed(claimed[0], claimed_at), name=f"callback-{claimed[0].id}"
        )
        self._sending.add(sending)
        sending.add_done_callback(self._sent)
        return True

    def _sent(self, sending: asyncio.Task[None]) -> None:
        self._sending.discard(sending)
        self._slots.release()

    async def run_once(self) -> int:
        """Claim and send one batch of due deliveries, side by side; returns how many were claimed."""
        claimed_at = time.monotonic()
        claimed = await self._repository.claim_due(
            self._node_id, lease_seconds=self.lease_seconds, limit=self._settings.concurrency
        )
        if claimed:
            await asyncio.gather(*(self._deliver_claimed(delivery, claimed_at) for delivery in claimed))
        return len(claimed)

    async def _deliver_claimed(self, claimed: ClaimedDelivery, claimed_at: float) -> None:
        with task_log_context(claimed.task_id):
            try:
                await self._deliver(claimed, claimed_at)
            except asyncio.CancelledError:
                # Shutdown: hand the claim back so another node (or the next start) sends it.
                with suppress(Exception):
                    await asyncio.shield(self._repository.release(claimed))
                raise
            except Exception:
                logger.exception("callback delivery %s failed unexpectedly", claimed.id)
                with suppress(Exception):
                    await self._repository.release(claimed)

    async def _deliver(self, claimed: ClaimedDelivery, claimed_at: float) -> None:
        number = claimed.attempts + 1
        attempted_at = utcnow()
        task = await self._tasks.get(claimed.task_id)
        if task is None:
            await self._finish(claimed, CallbackState.failed, error="the task was deleted")
            return
        try:
            await self._guard.check(claimed.url)
        except BlockedUrlError as exc:
            logger.warning("callback %s refused: %s", claimed.id, exc.reason)
            await self._finish(claimed, CallbackState.failed, error=exc.detail)
            return
        payload = {
            "event": claimed.event,
            "delivery_id": claimed.id,
            "task": task_out(task).model_dump(mode="json", exclude={"callback"}),
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",  # the snippet's byte cap counts what is downloaded
            EVENT_HEADER: claimed.event,
            DELIVERY_HEADER: claimed.id,
            IDEMPOTENCY_HEADER: claimed.id,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._settings.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._settings.secret.get_secret_value(), timestamp, body)
        status_code: int | None = None
        snippet: str | None = None
        error: str | None = None
        deadline = self.attempt_deadline(claimed_at)
        if deadline <= 0:
            # The claim is about to lapse (the database was slow): give it back untouched.
            await self._repository.release(claimed)
            return
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange: httpx's timeouts are per operation, and a
            # receiver that trickles its reply a byte at a time never trips them.
            async with (
                asyncio.timeout(deadline),
                self._http.stream("POST", claimed.url, content=body, headers=headers) as response,
            ):
                status_code = response.status_code
                snippet = await self._snippet(response)
        except TimeoutError:
            status_code, snippet = None, None
            error = f"TimeoutError: no complete reply within {deadline:g} s"
        except (httpx.HTTPError, BlockedUrlError) as exc:  # blocked: the address changed since the check
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")[:1000]
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        record = AttemptRecord(status_code, snippet, error, duration_ms, attempted_at)
        if status_code is not None and 200 <= status_code < 300:
            outcome = CallbackState.delivered
        elif number >= self._settings.max_attempts:
            outcome = CallbackState.failed
        else:
            outcome = CallbackState.pending
        next_at = (
            utcnow() + timedelta(seconds=self.backoff(number)) if outcome is CallbackState.pending else None
        )
        stored = await self._repository.record_attempt(
            claimed, record, outcome=outcome, next_attempt_at=next_at
        )
        reply = f"HTTP {status_code}" if status_code is not None else error
        if outcome is not CallbackState.delivered and self._on_failed_attempt is not None:
            self._on_failed_attempt()
        if not stored:
            logger.warning(
                "callback %s attempt %d (%s) was not recorded: claim lost", claimed.id, number, reply
            )
        elif outcome is CallbackState.delivered:
            logger.info("callback %s delivered on attempt %d (%s)", claimed.id, number, reply)
        elif outcome is CallbackState.failed:
            logger.warning("callback %s failed after %d attempt(s): %s", claimed.id, number, reply)
        else:
            logger.info("callback %s attempt %d: %s; retrying at %s", claimed.id, number, reply, next_at)

    async def _snippet(self, response: httpx.Response) -> str:
        limit = self._settings.snippet_chars
        if limit == 0:
            return ""
        data = b""
        async for chunk in response.aiter_raw():
            data += chunk
            if len(data) >= limit * 4:  # enough bytes for `limit` characters of UTF-8
                break
        return data.decode(response.encoding or "utf-8", errors="replace")[:limit]

    async def _finish(self, claimed: ClaimedDelivery, outcome: CallbackState, *, error: str) -> None:
        record = AttemptRecord(None, None, error, 0.0, utcnow())
        await self._repository.record_attempt(claimed, record, outcome=outcome)
