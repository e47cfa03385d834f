"""Workflow documents: validation through the API (422 problem+json naming each issue), the safe
expression language, custom component registration."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.workflows.components import ComponentError
from tests.conftest import RunningApp
from tests.ops_support import app_for, settings_in

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMPONENT = "tests.workflows.components:word_stats"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AsyncIterator[RunningApp]:
    settings = settings_in(
        tmp_path_factory.mktemp("definitions"), model_dir, workflows={"components": [COMPONENT]}
    )
    app = app_for(settings, role="api")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tingxie.test") as client:
            yield RunningApp(app=app, client=client)


VALID: dict[str, Any] = {
    "name": "subtitles to a webhook",
    "steps": [
        {"id": "transcribe", "uses": "transcribe", "with": {"model": "base"}},
        {
            "id": "translate",
            "uses": "translate",
            "if": "steps.transcribe.language != 'en'",
            "with": {"model": "base", "language": "${steps.transcribe.language}"},
        },
        {
            "id": "subtitles",
            "uses": "subtitles",
            "with": {"transcript": "${steps.translate.result or steps.transcribe.result}"},
        },
        {"id": "stats", "uses": "word_stats", "with": {"text": "${steps.transcribe.text}"}},
        {
            "id": "notify",
            "uses": "webhook",
            "retry": {"max_attempts": 5, "backoff_seconds": 1},
            "with": {
                "url": "https://example.com/hooks",
                "body": {"srt": "${steps.subtitles.srt}", "words": "${steps.stats.words}"},
            },
        },
    ],
    "triggers": [
        {"type": "manual"},
        {
            "type": "cron",
            "schedule": "0 6 * * 1-5",
            "timezone": "Asia/Shanghai",
            "input": {"file_url": "https://example.com/daily.mp3"},
        },
    ],
}


def with_steps(*changes: tuple[int, dict[str, Any]], **top: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    for index, change in changes:
        document["steps"][index].update(change)
    document.update(top)
    return document


async def rejected(api: RunningApp, document: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.client.post("/api/v1/workflows", json=document)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["errors"], body
    errors: list[dict[str, Any]] = body["errors"]
    return errors


async def test_valid_document_is_stored_and_crud_works(api: RunningApp) -> None:
    created = await api.client.post("/api/v1/workflows", json=VALID)
    assert created.status_code == 201, created.text
    workflow = created.json()
    assert workflow["name"] == VALID["name"] and workflow["enabled"] is True
    assert workflow["definition"]["steps"][1]["if"] == "steps.transcribe.language != 'en'"
    assert workflow["definition"]["steps"][0]["with"] == {"model": "base"}
    assert workflow["definition"]["steps"][0]["retry"]["max_attempts"] == 3  # the default policy

    fetched = await api.client.get(f"/api/v1/workflows/{workflow['id']}")
    assert fetched.json() == workflow
    listing = (await api.client.get("/api/v1/workflows")).json()
    assert workflow["id"] in [item["id"] for item in listing["items"]]

    renamed = with_steps(name="renamed")
    replaced = await api.client.put(f"/api/v1/workflows/{workflow['id']}", json=renamed)
    assert replaced.status_code == 200 and replaced.json()["name"] == "renamed"
    bad = await api.client.put(f"/api/v1/workflows/{workflow['id']}", json=with_steps((2, {"uses": "nope"})))
    assert bad.status_code == 422
    assert (await api.client.get(f"/api/v1/workflows/{workflow['id']}")).json()["name"] == "renamed"

    components = (await api.client.get("/api/v1/workflow-components")).json()
    assert components == [
        {
            "name": "word_stats",
            "path": COMPONENT,
            "outputs": ["longest", "words"],
            "description": "Count words and list the longest ones.",
        }
    ]

    assert (await api.client.delete(f"/api/v1/workflows/{workflow['id']}")).status_code == 204
    for method in ("GET", "DELETE"):
        missing = await api.client.request(method, f"/api/v1/workflows/{workflow['id']}")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert (await api.client.get("/api/v1/workflow-runs/0123456789abcdef0123456789abcdef")).status_code == 404


async def test_cycle_is_named(api: RunningApp) -> None:
    document = with_steps((0, {"needs": ["notify"]}))
    (error,) = await rejected(api, document)
    assert error["type"] == "cycle"
    assert "transcribe → notify" in error["msg"] or "notify → transcribe" in error["msg"], error
    assert error["loc"][:2] == ["body", "steps"]


async def test_unknown_step_types_inputs_and_references(api: RunningApp) -> None:
    errors = await rejected(
        api,
        with_steps(
            (0, {"uses": "transcribe_faster"}),
            (2, {"with": {"transcript": "${steps.translation.result}"}}),
            (3, {"with": {"text": "${steps.transcribe.txt}", "colour": "blue"}}),
            (4, {"with": {"url": "https://example.com", "body": "${input.nothing}", "method": "PUT"}}),
        ),
    )
    by_type = {(error["type"], error.get("step")): error for error in errors}
    assert by_type[("unknown_step_type", "transcribe")]["loc"] == ["body", "steps", 0, "uses"]
    assert by_type[("unknown_step", "subtitles")]["loc"] == ["body", "steps", 2, "with", "transcript"]
    assert "translation" in by_type[("unknown_step", "subtitles")]["msg"]
    assert by_type[("bad_inputs", "stats")]["loc"] == ["body", "steps", 3, "with"]
    assert "colour" in by_type[("bad_inputs", "stats")]["msg"]
    assert by_type[("unknown_input_field", "notify")]["loc"] == ["body", "steps", 4, "with", "body"]
    assert by_type[("unknown_input", "notify")]["loc"] == ["body", "steps", 4, "with", "method"]
    # transcribe_faster has no known outputs; a known type's unknown output is named:
    errors = await rejected(api, with_steps((3, {"with": {"text": "${steps.transcribe.txt}"}})))
    assert [(e["type"], e["step"]) for e in errors] == [("unknown_output", "stats")]
    assert "txt" in errors[0]["msg"] and "text" in errors[0]["msg"]
    errors = await rejected(api, with_steps((1, {"needs": ["ghost", "translate"]})))
    assert {e["type"] for e in errors} == {"unknown_step", "self_reference"}
    errors = await rejected(api, with_steps((2, {"with": {}})))
    assert [(e["type"], e["step"]) for e in errors] == [("missing_input", "subtitles")]
    errors = await rejected(api, with_steps((1, {"with": {"model": "tiny.en"}})))
    assert [(e["type"], e["step"]) for e in errors] == [("bad_value", "translate")]


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('id')",
        "steps.transcribe.language.upper() == 'EN'",
        "steps.transcribe.__class__",
        "open('/etc/passwd')",
        "[x for x in steps]",
        "lambda: 1",
        "steps.transcribe.text + 'x'",
        "os.environ",
        "steps.transcribe.language ==",
    ],
)
async def test_unsafe_or_broken_conditions_are_rejected(api: RunningApp, condition: str) -> None:
    (error,) = await rejected(api, with_steps((1, {"if": condition})))
    assert error["type"] == "invalid_expression" and error["step"] == "translate"
    assert error["loc"] == ["body", "steps", 1, "if"]


async def test_bad_triggers_and_shapes(api: RunningApp) -> None:
    errors = await rejected(
        api,
        {
            **VALID,
            "triggers": [
                {
                    "type": "cron",
                    "schedule": "61 * * * *",
                    "input": {"file_url": "https://example.com/a.mp3"},
                },
                {
                    "type": "cron",
                    "schedule": "* * * * *",
                    "timezone": "Mars/Olympus",
                    "input": {"file_url": "https://example.com/a.mp3"},
                },
                {"type": "event", "on": "link.submitted", "match": {"url_regex": "(", "colour": "x"}},
            ],
        },
    )
    assert {(tuple(e["loc"][1:]), e["type"]) for e in errors} == {
        (("triggers", 0, "schedule"), "bad_cron"),
        (("triggers", 1, "timezone"), "bad_timezone"),
        (("triggers", 2, "match", "url_regex"), "bad_match"),
        (("triggers", 2, "match", "colour"), "bad_match"),
    }
    # Shape errors come from request validation, in the same problem+json form.
    for document in (
        {**VALID, "steps": []},
        {**VALID, "steps": [{"id": "has space", "uses": "subtitles"}]},
        {**VALID, "triggers": [{"type": "hourly"}]},
        {**VALID, "extra": 1},
    ):
        assert await rejected(api, document)
    errors = await rejected(api, with_steps((3, {"id": "transcribe"})))
    assert "duplicate_step" in [e["type"] for e in errors]


async def test_a_bad_component_stops_the_app(tmp_path: Path, model_dir: Path) -> None:
    settings = settings_in(tmp_path, model_dir, workflows={"components": ["tests.workflows.nowhere:thing"]})
    app = app_for(settings, role="api")
    with pytest.raises(ComponentError, match=r"tests\.workflows\.nowhere"):
        async with app.router.lifespan_context(app):
            pass


async def test_webhook_and_scheduled_urls_the_guard_refuses_are_rejected_when_saved(api: RunningApp) -> None:
    """A literal URL that no DNS answer could make acceptable is a 422 now, not a failure of every
    run later; host names are resolved (and checked again) only when the URL is used."""
    # (The test settings allow 127.0.0.1 for local receivers; 10.0.0.0/8 stays private.)
    document = with_steps((4, {"with": {"url": "http://10.1.2.3:9/hook", "body": {}}}))
    document["triggers"][1]["input"]["file_url"] = "file:///etc/passwd"
    errors = await rejected(api, document)
    assert {(tuple(error["loc"]), error["type"]) for error in errors} == {
        (("body", "steps", 4, "with", "url"), "url_not_allowed"),
        (("body", "triggers", 1, "input", "file_url"), "url_not_allowed"),
    }, errors
    (refused,) = [error for error in errors if error["loc"][2] == 4]
    assert "private" in refused["msg"] and refused["step"] == "notify", refused
    # A templated URL is only known per run; an unresolvable public name is checked when used.
    templated = with_steps((4, {"with": {"url": "${input.params.hook}", "body": {}}}))
    templated["input"] = {"params": {"hook": "https://example.com/hook"}}
    assert (await api.client.post("/api/v1/workflows", json=templated)).status_code == 201
    unresolved = with_steps((4, {"with": {"url": "https://hooks.invalid/x", "body": {}}}))
    assert (await api.client.post("/api/v1/workflows", json=unresolved)).status_code == 201
