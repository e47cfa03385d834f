"""Property-based fuzzing of every operation in the OpenAPI schema: no input gives a 5xx.

The schema is walked, so routers added later are covered without changes here. The app runs
for real (SQLite, storage, migrations) with its processor paused and the model pool lazy, so
tasks created by the fuzzer stay queued and no model is ever loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi as schemathesis_asgi

from app.main import create_app
from tests.conftest import RunningApp, isolated_settings
from tests.llm_peer import ChatServer, serve_chat_api

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 10
"""Fuzzing examples per operation (the coverage phase adds its own); the whole run takes 10-20 s here."""


@pytest.fixture(scope="module")
def chat_api() -> Iterator[ChatServer]:
    with serve_chat_api() as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, chat_api: ChatServer
) -> Iterator[schemathesis.BaseSchema]:
    root = tmp_path_factory.mktemp("fuzz")
    app_settings = isolated_settings(
        root,
        model_dir,
        storage={"download_timeout_seconds": 2},
        processor={"node_id": "fuzz-node", "poll_interval_seconds": 0.5},
        # A real local OpenAI-compatible peer, so summaries run end to end instead of failing upstream.
        llm={"base_url": chat_api.base_url, "max_retries": 0, "timeout_seconds": 10},
    )
    app = create_app(app_settings, start_processor_paused=True)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema
    container = app.state.container
    try:
        assert container.processor is not None and container.processor.paused
        assert container.processor.running_task_ids == []
        assert container.pool.instances() == [], "fuzzing must never load a model"
    finally:
        # Schemathesis keeps the app's lifespan running for the process; stop it (processor, pool, DB).
        schemathesis_asgi.shutdown_lifespans()


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """Compatibility: schemathesis 4.32 reads ``node._nodeid``, which pytest 9.2 no longer has."""
    node = request.node
    if not hasattr(node, "_nodeid"):
        node._nodeid = node.nodeid


SYNCHRONOUS_TRANSCRIPTION = ("/v1/audio/transcriptions", "/v1/audio/translations")
"""OpenAI-compatible operations answer only once the transcription is done, which a paused
processor never does; their inputs are covered by tests/api/test_openai_compat.py instead."""

schema = schemathesis.pytest.from_fixture("api_schema").exclude(path=list(SYNCHRONOUS_TRANSCRIPTION))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_with_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (
        f"{case.operation.label} answered {response.status_code}: {response.text[:500]}\n"
        f"{case.as_curl_command()}"
    )


async def test_huge_list_offset_is_a_client_error(api: RunningApp) -> None:
    """Found by the fuzzer: an offset beyond SQLite's 64-bit integers used to raise OverflowError (500)."""
    response = await api.client.get("/api/v1/tasks", params={"offset": 2**63})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.client.get("/api/v1/tasks", params={"offset": 2**31 - 1})).json()["items"] == []
