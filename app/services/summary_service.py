"""Summary use cases: summarise a task's transcript (stored) or raw text (legacy, not stored).

A key sent with a request is used for that request's calls only: it is never stored, logged
or echoed, and it is scrubbed from upstream error messages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app.db.models import Summary
from app.db.summary_repository import SummaryRepository
from app.errors import Conflict, Invalid, NotFound, Unavailable, UpstreamFailed
from app.llm.client import ChatClient, LLMError, Usage
from app.llm.summarizer import EmptyTranscriptError, PromptTooLongError, Summarizer, SummaryOutcome
from app.logging_setup import task_log_context
from app.schemas.result import TranscriptionResult
from app.schemas.summary import SummaryList, SummaryOptions, SummaryOut, SummaryStatus
from app.schemas.task import TaskStatus
from app.services.mappers import summary_out
from app.services.task_service import TaskService
from config.settings import LLMSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextSummary:
    """A summary of raw text (legacy route): not stored."""

    content: str
    model: str
    chunk_count: int
    usage: Usage


class SummaryService:
    def __init__(
        self,
        *,
        settings: LLMSettings,
        client: ChatClient,
        summaries: SummaryRepository,
        tasks: TaskService,
    ) -> None:
        self._settings = settings
        self._client = client
        self._summaries = summaries
        self._tasks = tasks
        self._summarizer = Summarizer(
            client,
            context_tokens=settings.context_tokens,
            reply_reserve_tokens=settings.reply_reserve_tokens,
            max_concurrent=settings.max_concurrent_requests,
        )

    async def summarise_task(
        self, task_id: str, options: SummaryOptions, *, api_key: str | None
    ) -> SummaryOut:
        """Summarise a completed task's transcript and store the outcome (completed or failed).

        404: unknown task; 409: not completed; 422: a chat model that is not allowed; 503: no key;
        502: the LLM API failed (the failed row is stored too).
        """
        task = await self._tasks.get_row(task_id)  # 404, also for another API key's task
        if task.status != TaskStatus.completed.value or task.result is None:
            raise Conflict(f"task {task_id} is {task.status}; summaries need a completed task")
        result = TranscriptionResult.model_validate(task.result)
        segments = [segment.text for segment in result.segments] or [result.text]
        key = self._key(api_key)
        prompt = options.prompt or self._settings.default_prompt
        model = self._model(options)
        started = time.monotonic()
        row = Summary(
            task_id=task_id,
            model=model,
            prompt=prompt,
            language=options.language,
            chunk_count=0,
        )
        failure: LLMError | None = None
        with task_log_context(task_id):
            try:
                outcome = await self._run(segments, prompt, options.language, model, key)
            except LLMError as exc:
                failure = exc
                row.status = SummaryStatus.failed.value
                row.error = exc.message
                logger.warning("summary with %s failed: %s", model, exc.message)
            else:
                row.status = SummaryStatus.completed.value
                row.content = outcome.content
                row.chunk_count = outcome.chunk_count
                row.prompt_tokens = outcome.usage.prompt_tokens
                row.completion_tokens = outcome.usage.completion_tokens
                row.total_tokens = outcome.usage.total_tokens
                logger.info(
                    "summary with %s: %d chunk(s), %d call(s)", model, outcome.chunk_count, outcome.calls
                )
            row.processing_time = time.monotonic() - started
            try:
                await self._summaries.add(row)
            except IntegrityError as exc:  # the task was deleted meanwhile
                raise NotFound(f"task {task_id} does not exist") from exc
        if failure is not None:
            raise UpstreamFailed(failure.message, title="LLM API error", summary_id=row.id) from None
        return summary_out(row)

    def _model(self, options: SummaryOptions) -> str:
        """The chat model a request asked for, or the configured one; 422 unless allowed
        (``LLM__MODEL`` and ``LLM__ALLOWED_MODELS``)."""
        model = options.model or self._settings.model
        if not self._settings.model_allowed(model):
            allowed = ", ".join(sorted({self._settings.model, *self._settings.allowed_models}))
            raise Invalid(f"the chat model {model!r} is not allowed; allowed: {allowed}")
        return model

    async def summarise_text(self, text: str, options: SummaryOptions, *, api_key: str | None) -> TextSummary:
        """Summarise raw text without storing anything (legacy route)."""
        key = self._key(api_key)
        prompt = options.prompt or self._settings.default_prompt
        model = self._model(options)
        try:
            outcome = await self._run([text], prompt, options.language, model, key)
        except LLMError as exc:
            raise UpstreamFailed(exc.message, title="LLM API error") from None
        return TextSummary(
            content=outcome.content, model=model, chunk_count=outcome.chunk_count, usage=outcome.usage
        )

    async def list_for_task(self, task_id: str) -> SummaryList:
        await self._tasks.get_row(task_id)
        return SummaryList(items=[summary_out(row) for row in await self._summaries.for_task(task_id)])

    async def get(self, task_id: str, summary_id: str) -> SummaryOut:
        await self._tasks.get_row(task_id)
        summary = await self._summaries.get(task_id, summary_id)
        if summary is None:
            raise NotFound(f"summary {summary_id} of task {task_id} does not exist")
        return summary_out(summary)

    def _key(self, api_key: str | None) -> str | None:
        """The request's key, else ``None`` (the configured key); 503 when there is neither."""
        if api_key:
            return api_key
        if not self._client.has_configured_key:
            raise Unavailable(
                "summaries need an LLM API key: set LLM__API_KEY on the server "
                "or send one in the X-LLM-API-Key header",
            )
        return None

    async def _run(
        self, segments: list[str], prompt: str, language: str | None, model: str, api_key: str | None
    ) -> SummaryOutcome:
        try:
            return await self._summarizer.summarise(
                segments, prompt=prompt, language=language, model=model, api_key=api_key
            )
        except (PromptTooLongError, EmptyTranscriptError) as exc:
            raise Invalid(str(exc)) from exc
