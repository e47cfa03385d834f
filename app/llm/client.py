"""A thin wrapper over the official ``openai`` SDK for any OpenAI-compatible chat API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import LLMSettings

if TYPE_CHECKING:  # the SDK (13 MiB) is imported on the first completion, not at start
    import openai
    from openai.types.chat import ChatCompletionMessageParam

_UNSET_KEY = "no-key-configured"
"""Placeholder for the shared client when no key is configured; requests then bring their own."""


class LLMError(Exception):
    """The chat API failed; ``message`` is safe to show (the key is scrubbed from it)."""

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status


@dataclass(frozen=True)
class Usage:
    """Token counts as reported by the API (``None`` where it reported none)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            add(self.prompt_tokens, other.prompt_tokens),
            add(self.completion_tokens, other.completion_tokens),
            add(self.total_tokens, other.total_tokens),
        )


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


def scrub(text: str, secret: str | None) -> str:
    """Remove ``secret`` from ``text`` (upstream error bodies may echo what they were sent)."""
    if secret:
        text = text.replace(secret, "***")
    return text


class ChatClient:
    """Sends chat completions; one shared ``AsyncOpenAI`` whose HTTP pool per-request keys reuse."""

    def __init__(self, settings: LLMSettings) -> None:
        self._settings = settings
        self._sdk_client: openai.AsyncOpenAI | None = None

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The shared client, made on first use: the ``openai`` SDK adds 13 MiB to a process
        that never summarises."""
        if self._sdk_client is None:
            import openai

            settings = self._settings
            self._sdk_client = openai.AsyncOpenAI(
                api_key=settings.api_key.get_secret_value() if settings.api_key else _UNSET_KEY,
                base_url=settings.base_url,
                timeout=settings.timeout_seconds,
                max_retries=settings.max_retries,
            )
        return self._sdk_client

    @property
    def has_configured_key(self) -> bool:
        return self._settings.api_key is not None

    async def complete(
        self, messages: list[ChatCompletionMessageParam], *, model: str, api_key: str | None
    ) -> Completion:
        """One chat completion. ``api_key`` (a request's own key) is used for this call only."""
        import openai

        client = self._client if api_key is None else self._client.with_options(api_key=api_key)
        secret = api_key or (self._settings.api_key.get_secret_value() if self._settings.api_key else None)
        try:
            response = await client.chat.completions.create(
                model=model, messages=messages, temperature=self._settings.temperature
            )
        except openai.APIStatusError as exc:
            raise LLMError(
                scrub(f"the LLM API answered {exc.status_code}: {_upstream_message(exc)}", secret),
                upstream_status=exc.status_code,
            ) from None
        except openai.APITimeoutError:
            raise LLMError(
                f"the LLM API did not answer within {self._settings.timeout_seconds:g} s"
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise LLMError(
                scrub(f"the LLM API at {self._settings.base_url} cannot be reached: {cause}", secret)
            ) from None
        except openai.APIError as exc:
            raise LLMError(scrub(f"the LLM API failed: {exc.message}", secret)) from None
        if not response.choices or not response.choices[0].message.content:
            raise LLMError("the LLM API returned no text")
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content.strip(),
            usage=(
                Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
                if usage is not None
                else Usage()
            ),
        )

    async def aclose(self) -> None:
        if self._sdk_client is not None:
            await self._sdk_client.close()


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()[:1000]
    return exc.message
