"""LLM summaries through the real openai SDK against a real local OpenAI-compatible server.

The transcript comes from a real task (jfk.flac with tiny.en); the context is set so small that
it splits into several chunks, so map and reduce calls really happen over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from app.llm.summarizer import prompt_overhead_tokens
from config.settings import Settings
from tests.conftest import Clip, RunningApp, isolated_settings, running_app, upload, wait_done
from tests.llm_peer import FAILING_MODEL, ChatServer, Exchange, serve_chat_api

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIGURED_KEY = "sk-configured-0123456789abcdef"
REQUEST_KEY = "sk-request-only-5f3c9a1e7d2b4c68"
DEFAULT_PROMPT = "Summarise briefly."
TEXT_BUDGET_TOKENS = 12
"""Tokens of transcript per request: the jfk sentence (~27 tokens) needs at least three chunks."""


@dataclass
class SummaryApp:
    running: RunningApp
    llm: ChatServer
    task_id: str
    root: Path
    while_queued: httpx.Response
    """POST summaries while the task was still queued (the processor was paused)."""
    legacy_while_queued: httpx.Response


@pytest.fixture(scope="module")
def chat_api() -> Iterator[ChatServer]:
    with serve_chat_api() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, chat_api: ChatServer, clips: dict[str, Clip]
) -> AsyncIterator[SummaryApp]:
    root = tmp_path_factory.mktemp("summaries")
    llm = {
        "base_url": chat_api.base_url,
        "model": "test-chat",
        "api_key": CONFIGURED_KEY,
        "max_retries": 0,
        "timeout_seconds": 30,
        "reply_reserve_tokens": 0,
        "default_prompt": DEFAULT_PROMPT,
        "allowed_models": [FAILING_MODEL],
        "context_tokens": prompt_overhead_tokens(DEFAULT_PROMPT, "English") + TEXT_BUDGET_TOKENS,
    }
    async with running_app(isolated_settings(root, model_dir, llm=llm), paused=True) as running:
        created = await upload(running.client, clips["jfk.flac"].path)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        while_queued = await running.client.post(f"/api/v1/tasks/{task_id}/summaries", json={})
        legacy_while_queued = await running.client.post("/api/chatgpt/summary", json={"task_id": task_id})
        assert running.container.processor is not None
        running.container.processor.resume()
        task = await wait_done(running.client, task_id)
        assert task["status"] == "completed", task["error"]
        chat_api.take()
        yield SummaryApp(running, chat_api, task_id, root, while_queued, legacy_while_queued)


def _stored_bytes(root: Path) -> bytes:
    """Every byte the app wrote: the SQLite file with its WAL and the logs."""
    files = [*root.glob("tingxie.db*"), *(root / "logs").glob("*")]
    assert any(path.name == "tingxie.db" for path in files)
    return b"".join(path.read_bytes() for path in files if path.is_file())


def _check_map_reduce(exchanges: list[Exchange], content: str, chunk_count: int) -> None:
    maps = [e for e in exchanges if e.kind == "map"]
    reduces = [e for e in exchanges if e.kind == "reduce"]
    assert len(maps) == chunk_count >= 3
    assert reduces, "partial summaries must be combined"
    assert len(maps) + len(reduces) == len(exchanges)
    # Each map call carries one part, "Part i of n", and the parts together are the transcript.
    assert sorted(int(e.user.split("Part ", 1)[1].split(" of", 1)[0]) for e in maps) == list(
        range(1, chunk_count + 1)
    )
    # Every partial summary is consumed by exactly one reduce call; the one reply nobody
    # consumed is the last reduce's, and it is the stored summary.
    partials = [e.reply for e in maps + reduces if e.reply is not None]
    for partial in partials:
        consumers = [r for r in reduces if partial in r.user]
        assert len(consumers) == (0 if partial == content else 1), partial
    assert content == reduces[-1].reply
    assert content.startswith("reduce-")


async def test_long_transcript_is_chunked_and_reduced(app: SummaryApp) -> None:
    client = app.running.client
    task = (await client.get(f"/api/v1/tasks/{app.task_id}")).json()
    response = await client.post(f"/api/v1/tasks/{app.task_id}/summaries", json={"language": "English"})
    assert response.status_code == 201, response.text
    summary = response.json()
    exchanges = app.llm.take()
    assert summary["status"] == "completed"
    assert summary["task_id"] == app.task_id
    assert summary["model"] == "test-chat"
    assert summary["prompt"] == DEFAULT_PROMPT
    assert summary["language"] == "English"
    _check_map_reduce(exchanges, summary["content"], summary["chunk_count"])
    # Every word of the transcript went to exactly the map calls, in order.
    maps = sorted(
        (e for e in exchanges if e.kind == "map"), key=lambda e: int(e.user.split("Part ", 1)[1].split()[0])
    )
    sent = " ".join(e.user.split("only):\n\n", 1)[1] for e in maps)
    assert sent.split() == task["result"]["text"].split()
    for exchange in exchanges:
        assert exchange.authorization == f"Bearer {CONFIGURED_KEY}"
        assert exchange.body["model"] == "test-chat"
        assert "Write in English." in exchange.system
        assert exchange.user.startswith(DEFAULT_PROMPT)
    # Usage is the sum of what the server reported.
    expected = sum(sum(len(str(m["content"])) for m in e.body["messages"]) // 4 + 5 for e in exchanges)
    assert summary["total_tokens"] == expected
    assert summary["completion_tokens"] == 5 * len(exchanges)

    listed = (await client.get(f"/api/v1/tasks/{app.task_id}/summaries")).json()["items"]
    assert summary["id"] in [item["id"] for item in listed]
    one = await client.get(f"/api/v1/tasks/{app.task_id}/summaries/{summary['id']}")
    assert one.status_code == 200
    assert one.json() == summary


async def test_request_key_is_used_once_and_never_stored(app: SummaryApp) -> None:
    client = app.running.client
    response = await client.post(
        f"/api/v1/tasks/{app.task_id}/summaries",
        json={"prompt": "Key points only.", "language": "zh"},
        headers={"X-LLM-API-Key": REQUEST_KEY},
    )
    assert response.status_code == 201, response.text
    exchanges = app.llm.take()
    assert exchanges
    assert {e.authorization for e in exchanges} == {f"Bearer {REQUEST_KEY}"}
    assert all(e.user.startswith("Key points only.") and "Write in zh." in e.system for e in exchanges)
    assert response.json()["prompt"] == "Key points only."
    assert REQUEST_KEY not in response.text

    # An upstream error that echoes the credentials: 502 with the upstream message, key scrubbed.
    failed = await client.post(
        f"/api/v1/tasks/{app.task_id}/summaries",
        json={"model": FAILING_MODEL},
        headers={"X-LLM-API-Key": REQUEST_KEY},
    )
    assert failed.status_code == 502, failed.text
    assert failed.headers["content-type"] == "application/problem+json"
    problem = failed.json()
    assert f"model {FAILING_MODEL} does not exist" in problem["detail"]
    assert "400" in problem["detail"]
    assert REQUEST_KEY not in failed.text
    assert {e.authorization for e in app.llm.take_settled()} == {f"Bearer {REQUEST_KEY}"}
    stored = (await client.get(f"/api/v1/tasks/{app.task_id}/summaries/{problem['summary_id']}")).json()
    assert stored["status"] == "failed"
    assert f"model {FAILING_MODEL} does not exist" in stored["error"]
    assert stored["content"] is None

    listing = await client.get(f"/api/v1/tasks/{app.task_id}/summaries")
    assert REQUEST_KEY not in listing.text
    everything = _stored_bytes(app.root)
    assert b"Key points only." in everything, "the summaries are in the file that is searched"
    assert REQUEST_KEY.encode() not in everything
    assert REQUEST_KEY.encode("utf-16-le") not in everything


async def test_only_allowed_chat_models_may_be_asked_for(app: SummaryApp) -> None:
    """A key cannot pick an arbitrary (expensive) model: 422 before the LLM API is called."""
    client = app.running.client
    for response in (
        await client.post(f"/api/v1/tasks/{app.task_id}/summaries", json={"model": "gpt-expensive"}),
        await client.post("/api/chatgpt/summary", json={"text": "Hello there.", "model": "gpt-expensive"}),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "gpt-expensive" in response.json()["detail"]
    assert [e for e in app.llm.take() if e.body.get("model") == "gpt-expensive"] == []
    listing = (await client.get(f"/api/v1/tasks/{app.task_id}/summaries")).json()
    assert all(item["model"] != "gpt-expensive" for item in listing["items"])
    # The configured model, named explicitly, is always allowed.
    named = await client.post(f"/api/v1/tasks/{app.task_id}/summaries", json={"model": "test-chat"})
    assert named.status_code == 201, named.text
    app.llm.take()


async def test_unfinished_and_unknown_tasks(app: SummaryApp) -> None:
    assert app.while_queued.status_code == 409
    assert app.while_queued.headers["content-type"] == "application/problem+json"
    assert "queued" in app.while_queued.json()["detail"]
    assert app.legacy_while_queued.status_code == 409
    client = app.running.client
    for response in (
        await client.post("/api/v1/tasks/nosuchtask/summaries", json={}),
        await client.get("/api/v1/tasks/nosuchtask/summaries"),
        await client.get(f"/api/v1/tasks/{app.task_id}/summaries/nosuchsummary"),
        await client.post("/api/chatgpt/summary", json={"task_id": "nosuchtask"}),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
    bad = await client.post(f"/api/v1/tasks/{app.task_id}/summaries", json={"prompt": ""})
    assert bad.status_code == 422
    assert app.llm.take() == []


async def test_legacy_route(app: SummaryApp) -> None:
    client = app.running.client
    text = "We shipped the release. Next week we fix the login bug."
    response = await client.post(
        "/api/chatgpt/summary", json={"text": text, "prompt": "One line.", "language": "zh"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (exchange,) = app.llm.take()
    assert exchange.kind == "single" and text in exchange.user and exchange.user.startswith("One line.")
    assert body["summary"] == exchange.reply
    assert body["chunk_count"] == 1 and body["summary_id"] is None and body["model"] == "test-chat"

    by_task = await client.post("/api/chatgpt/summary", json={"task_id": app.task_id})
    assert by_task.status_code == 200, by_task.text
    legacy = by_task.json()
    _check_map_reduce(app.llm.take(), legacy["summary"], legacy["chunk_count"])
    stored = (await client.get(f"/api/v1/tasks/{app.task_id}/summaries/{legacy['summary_id']}")).json()
    assert stored["content"] == legacy["summary"]

    for invalid in ({}, {"task_id": app.task_id, "text": "both"}):
        rejected = await client.post("/api/chatgpt/summary", json=invalid)
        assert rejected.status_code == 422, rejected.text
    assert app.llm.take() == []


async def test_no_key_configured_is_503(make_settings: Callable[..., Settings], chat_api: ChatServer) -> None:
    settings = make_settings(processor={"enabled": False}, llm={"base_url": chat_api.base_url})
    async with running_app(settings) as running:
        response = await running.client.post("/api/chatgpt/summary", json={"text": "Hello there."})
        assert response.status_code == 503, response.text
        assert "X-LLM-API-Key" in response.json()["detail"]
        assert chat_api.take() == []
        with_key = await running.client.post(
            "/api/chatgpt/summary", json={"text": "Hello there."}, headers={"X-LLM-API-Key": REQUEST_KEY}
        )
        assert with_key.status_code == 200, with_key.text
        assert [e.authorization for e in chat_api.take()] == [f"Bearer {REQUEST_KEY}"]


async def test_partial_summaries_that_do_not_fit_are_reduced_recursively(app: SummaryApp) -> None:
    sentences = [f"Item {n} of the meeting was settled." for n in range(1, 11)]
    response = await app.running.client.post(
        "/api/chatgpt/summary", json={"text": " ".join(sentences), "language": "English"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    exchanges = app.llm.take()
    assert body["chunk_count"] == len(sentences)
    _check_map_reduce(exchanges, body["summary"], body["chunk_count"])
    reduces = [e for e in exchanges if e.kind == "reduce"]
    # Ten partials do not fit one request: some reduce calls combine earlier reduce outputs.
    assert len(reduces) > 1
    assert any("reduce-" in e.user for e in reduces)


async def test_deleting_the_task_deletes_its_summaries(app: SummaryApp) -> None:
    """Last in this module: it deletes the shared task."""
    client = app.running.client
    created = await client.post(f"/api/v1/tasks/{app.task_id}/summaries", json={})
    assert created.status_code == 201, created.text
    app.llm.take()
    assert (await client.get(f"/api/v1/tasks/{app.task_id}/summaries")).json()["items"]
    assert (await client.delete(f"/api/v1/tasks/{app.task_id}")).status_code == 204
    async with app.running.container.engine.connect() as connection:
        left = await connection.execute(
            text("SELECT COUNT(*) FROM summaries WHERE task_id = :id"), {"id": app.task_id}
        )
        assert left.scalar() == 0
    gone = await client.get(f"/api/v1/tasks/{app.task_id}/summaries/{created.json()['id']}")
    assert gone.status_code == 404
