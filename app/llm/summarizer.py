"""Map-reduce summaries: summarise each chunk, then combine the partial summaries until one is left."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.llm.chunking import chunk_transcript, estimate_tokens
from app.llm.client import ChatClient, Usage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

PARTS_SEPARATOR = "\n\n"


def system_message(language: str | None) -> str:
    target = f"Write in {language}." if language else "Write in the language of the transcript."
    return f"You write faithful, concise summaries of transcripts. {target}"


def single_message(prompt: str, text: str) -> str:
    return f"{prompt}\n\nTranscript:\n\n{text}"


def map_message(prompt: str, text: str, index: int, count: int) -> str:
    return f"{prompt}\n\nPart {index} of {count} of the transcript (summarise this part only):\n\n{text}"


def reduce_message(prompt: str, text: str) -> str:
    return (
        f"{prompt}\n\nCombine these summaries of consecutive parts of one transcript "
        f"into one summary:\n\n{text}"
    )


def prompt_overhead_tokens(prompt: str, language: str | None) -> int:
    """Estimated tokens of the largest request around its text (system message included)."""
    frames = (
        single_message(prompt, ""),
        map_message(prompt, "", 9999, 9999),
        reduce_message(prompt, ""),
    )
    return estimate_tokens(system_message(language)) + max(estimate_tokens(frame) for frame in frames)


class PromptTooLongError(ValueError):
    """The prompt leaves no room for text within the configured context."""


class EmptyTranscriptError(ValueError):
    """There is no text to summarise."""


@dataclass(frozen=True)
class SummaryOutcome:
    content: str
    chunk_count: int
    calls: int
    usage: Usage


class Summarizer:
    """Summarises a transcript that may be longer than the model's context."""

    def __init__(
        self, client: ChatClient, *, context_tokens: int, reply_reserve_tokens: int, max_concurrent: int
    ) -> None:
        self._client = client
        self._context_tokens = context_tokens
        self._reserve = reply_reserve_tokens
        self._max_concurrent = max_concurrent

    def text_budget(self, prompt: str, language: str | None) -> int:
        """Estimated tokens of transcript (or partial summaries) that fit in one request."""
        return self._context_tokens - self._reserve - prompt_overhead_tokens(prompt, language)

    async def summarise(
        self,
        segments: list[str],
        *,
        prompt: str,
        language: str | None,
        model: str,
        api_key: str | None,
    ) -> SummaryOutcome:
        budget = self.text_budget(prompt, language)
        if budget < 1:
            raise PromptTooLongError(
                f"the prompt takes the whole context ({self._context_tokens} tokens, "
                f"{self._reserve} reserved for the reply); shorten it or raise LLM__CONTEXT_TOKENS"
            )
        chunks = chunk_transcript(segments, budget)
        if not chunks:
            raise EmptyTranscriptError("the transcript is empty: there is nothing to summarise")
        system = system_message(language)
        semaphore = asyncio.Semaphore(self._max_concurrent)
        usage = Usage()
        calls = 0

        async def ask(user: str) -> str:
            nonlocal usage, calls
            messages: list[ChatCompletionMessageParam] = [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ]
            async with semaphore:
                completion = await self._client.complete(messages, model=model, api_key=api_key)
            usage += completion.usage
            calls += 1
            return completion.text

        if len(chunks) == 1:
            content = await ask(single_message(prompt, chunks[0]))
            return SummaryOutcome(content=content, chunk_count=1, calls=calls, usage=usage)

        count = len(chunks)
        partials = await _all(
            [ask(map_message(prompt, chunk, i, count)) for i, chunk in enumerate(chunks, start=1)]
        )
        while len(partials) > 1:
            groups = _groups(partials, budget)
            partials = await _all(
                [
                    ask(reduce_message(prompt, PARTS_SEPARATOR.join(group)))
                    if len(group) > 1
                    else _same(group[0])
                    for group in groups
                ]
            )
        return SummaryOutcome(content=partials[0], chunk_count=count, calls=calls, usage=usage)


async def _same(text: str) -> str:
    return text


async def _all(coroutines: list[Coroutine[Any, Any, str]]) -> list[str]:
    """Run concurrently and keep the order; the first failure cancels the rest and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as exc:
        raise exc.exceptions[0] from None
    return [task.result() for task in tasks]


def _groups(partials: list[str], budget: int) -> list[list[str]]:
    """Consecutive groups that fit ``budget``; every group but the last holds at least two
    partials, so each reduce round shrinks the list even when the summaries are long."""
    groups: list[list[str]] = []
    for partial in partials:
        if groups and (
            len(groups[-1]) < 2 or estimate_tokens(PARTS_SEPARATOR.join([*groups[-1], partial])) <= budget
        ):
            groups[-1].append(partial)
        else:
            groups.append([partial])
    return groups
