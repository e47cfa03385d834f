"""Built-in inline steps (subtitles, summarize, extract_audio, webhook) and custom components.

``transcribe`` and ``translate`` are task steps: the runner queues a real task for them (see
:mod:`app.workflows.runner`). Inline steps run on the node that holds the run's claim; each call is
one attempt, and a failure raises :class:`StepFailedError` (or any exception) for the retry policy.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from app.errors import DomainError
from app.media.extract import AudioFormat, ExtractOptions, ExtractOptionsError, extract_audio
from app.media.probe import NotMediaError
from app.media.storage import MediaStorage
from app.net.pinned import guarded_client
from app.net.url_guard import UrlGuard
from app.schemas.result import TranscriptionResult
from app.schemas.summary import SummaryOptions
from app.services.callbacks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from app.services.subtitles import CueLimits, SubtitleFormat, render_subtitles
from app.services.summary_service import SummaryService
from app.workflows.components import ComponentRegistry

WEBHOOK_EVENT = "workflow.step"
RESPONSE_SNIPPET_CHARS = 500


class StepFailedError(Exception):
    """A step attempt failed for a reason worth showing (the message is stored on the step)."""


@dataclass(frozen=True)
class StepCall:
    """One attempt of an inline step."""

    run_id: str
    workflow_id: str
    step_id: str
    uses: str
    attempt: int
    inputs: dict[str, Any]
    default_body: dict[str, Any]
    """What a webhook sends when its ``body`` is not given."""


@dataclass
class StepResult:
    output: dict[str, Any]
    artifacts: list[str] = field(default_factory=list)
    """Media files the step created (owned by the run from now on)."""


def idempotency_key(run_id: str, step_id: str) -> str:
    return f"{run_id}:{step_id}"


class InlineSteps:
    """Executes the inline steps; any number of nodes may hold one."""

    def __init__(
        self,
        *,
        storage: MediaStorage,
        summaries: SummaryService,
        guard: UrlGuard,
        components: ComponentRegistry,
        secret: str | None,
        webhook_timeout_seconds: float,
        webhook_max_response_bytes: int = 65536,
        user_agent: str = "Tingxie/1.0",
    ) -> None:
        self._storage = storage
        self._summaries = summaries
        self._guard = guard
        self._components = components
        self._secret = secret
        self._webhook_deadline = webhook_timeout_seconds
        self._webhook_max_bytes = webhook_max_response_bytes
        self._http = guarded_client(  # connects only to the addresses the guard checked
            guard,
            timeout=httpx.Timeout(webhook_timeout_seconds),
            headers={"User-Agent": user_agent},
            follow_redirects=False,  # a redirect is a non-2xx reply, never followed blindly
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, call: StepCall) -> StepResult:
        if call.uses == "subtitles":
            return self._subtitles(call.inputs)
        if call.uses == "summarize":
            return await self._summarize(call.inputs)
        if call.uses == "extract_audio":
            return await self._extract_audio(call)
        if call.uses == "webhook":
            return await self._webhook(call)
        component = self._components.get(call.uses)
        if component is None:
            raise StepFailedError(f"no component named {call.uses!r} is registered on this node")
        return StepResult(output=await component.call(call.inputs))

    @staticmethod
    def _subtitles(inputs: Mapping[str, Any]) -> StepResult:
        transcript = inputs.get("transcript")
        if not isinstance(transcript, Mapping):
            raise StepFailedError(
                "`transcript` must be a transcription result (e.g. ${steps.transcribe.result})"
            )
        try:
            result = TranscriptionResult.model_validate(transcript)
            limits = CueLimits(
                max_line_chars=int(inputs.get("max_line_chars") or 42),
                max_lines=int(inputs.get("max_lines") or 2),
                max_duration=float(inputs.get("max_duration") or 7.0),
            )
            return StepResult(
                output={
                    "srt": render_subtitles(result, SubtitleFormat.SRT, limits),
                    "vtt": render_subtitles(result, SubtitleFormat.VTT, limits),
                    "text": render_subtitles(result, SubtitleFormat.TXT, limits),
                    "language": result.language,
                }
            )
        except (ValidationError, ValueError, TypeError) as exc:
            raise StepFailedError(f"cannot render subtitles: {exc}") from exc

    async def _summarize(self, inputs: Mapping[str, Any]) -> StepResult:
        text = inputs.get("text")
        if not isinstance(text, str) or not text.strip():
            raise StepFailedError("`text` is empty: nothing to summarise")
        try:
            options = SummaryOptions(
                prompt=inputs.get("prompt"), language=inputs.get("language"), model=inputs.get("model")
            )
        except ValidationError as exc:
            raise StepFailedError(f"invalid summary options: {exc}") from exc
        try:
            summary = await self._summaries.summarise_text(text, options, api_key=None)
        except DomainError as exc:
            raise StepFailedError(exc.detail) from exc
        return StepResult(
            output={"summary": summary.content, "model": summary.model, "chunk_count": summary.chunk_count}
        )

    async def _extract_audio(self, call: StepCall) -> StepResult:
        inputs = call.inputs
        media = inputs.get("media")
        if not isinstance(media, str):
            raise StepFailedError("no media to extract audio from")
        try:
            source = self._storage.path_of(media)
            options = ExtractOptions(
                format=AudioFormat(inputs.get("format") or AudioFormat.wav.value),
                sample_rate=int(inputs.get("sample_rate") or 16000),
                channels=int(inputs.get("channels") or 1),
            ).validated()
        except (ValueError, ExtractOptionsError) as exc:
            raise StepFailedError(str(exc)) from exc
        if not source.is_file():
            raise StepFailedError("the media is no longer available")
        name = f"{uuid.uuid4().hex}.media"
        try:
            extracted = await asyncio.to_thread(extract_audio, source, self._storage.path_of(name), options)
        except NotMediaError as exc:
            raise StepFailedError(f"no audio could be extracted: {exc}") from exc
        return StepResult(
            output={
                "audio": name,
                "format": extracted.options.format.value,
                "duration": round(extracted.duration, 3),
                "size": extracted.size,
                "url": f"/api/v1/workflow-runs/{call.run_id}/artifacts/{call.step_id}",
            },
            artifacts=[name],
        )

    async def _webhook(self, call: StepCall) -> StepResult:
        url = call.inputs.get("url")
        if not isinstance(url, str):
            raise StepFailedError("`url` must be a URL")
        await self._guard.check(url)  # BlockedUrlError: the attempt fails with the reason
        key = idempotency_key(call.run_id, call.step_id)
        payload = {
            "event": WEBHOOK_EVENT,
            "workflow_id": call.workflow_id,
            "run_id": call.run_id,
            "step_id": call.step_id,
            "attempt": call.attempt,
            "idempotency_key": key,
            "data": call.inputs.get("body", call.default_body),
        }
        try:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        except (TypeError, ValueError) as exc:
            raise StepFailedError(f"the body is not JSON: {exc}") from exc
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",  # the byte cap counts what is downloaded
            EVENT_HEADER: WEBHOOK_EVENT,
            DELIVERY_HEADER: key,
            IDEMPOTENCY_HEADER: key,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            # One deadline for the whole exchange (httpx's timeouts are per read, and a trickling
            # reply never trips them) and a cap on the bytes read (an endless reply is cut off).
            async with (
                asyncio.timeout(self._webhook_deadline),
                self._http.stream("POST", url, content=body, headers=headers) as response,
            ):
                status_code = response.status_code
                data, truncated = await self._read_capped(response)
                text = data.decode(response.encoding or "utf-8", errors="replace")
        except TimeoutError as exc:
            raise StepFailedError(
                f"the webhook did not answer completely within {self._webhook_deadline:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise StepFailedError(f"{type(exc).__name__}: {exc}".rstrip(": ")[:1000]) from exc
        snippet = text[:RESPONSE_SNIPPET_CHARS]
        if not 200 <= status_code < 300:
            raise StepFailedError(f"the webhook answered HTTP {status_code}: {snippet[:200]}")
        return StepResult(
            output={
                "status_code": status_code,
                "response": snippet,
                "idempotency_key": key,
                "truncated": truncated,
            }
        )

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        """The reply body up to ``webhook_max_response_bytes``; True when there was more."""
        limit = self._webhook_max_bytes
        data = bytearray()
        async for chunk in response.aiter_raw():
            data += chunk
            if len(data) > limit:
                return bytes(data[:limit]), True
        return bytes(data), False
