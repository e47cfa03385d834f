"""Event triggers (a task completed, a link submitted), custom components, summaries and extracted
audio inside runs, and no trigger loops from tasks that workflows create."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from app.services.auth import ANONYMOUS
from tests.api.test_links import site  # noqa: F401 - the module-scoped local site with a jfk page
from tests.conftest import Clip, RunningApp, normalize_en, running_app, upload, wait_done
from tests.live_server import module_settings
from tests.llm_peer import ChatServer, serve_chat_api
from tests.workflows.support import create_workflow, start_run, steps_of, tasks_of_run, wait_run

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def chat_api() -> Iterator[ChatServer]:
    with serve_chat_api() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, chat_api: ChatServer
) -> AsyncIterator[RunningApp]:
    settings = module_settings(
        tmp_path_factory.mktemp("triggers"),
        model_dir,
        whisper={"warmup": False},
        llm={"base_url": chat_api.base_url, "api_key": "peer-key", "max_retries": 0},
        workflows={
            "poll_interval_seconds": 0.2,
            "components": ["tests.workflows.components:word_stats", "loud=tests.workflows.components:shout"],
        },
    )
    async with running_app(settings) as running:
        yield running


async def runs_of(api: RunningApp, workflow_id: str) -> list[dict[str, Any]]:
    await api.container.workflows.idle()
    response = await api.client.get(f"/api/v1/workflows/{workflow_id}/runs")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


PODCAST_PIPELINE: dict[str, Any] = {
    "name": "podcast notes",
    "input": {"kinds": ["task"]},
    "triggers": [{"type": "event", "on": "task.completed", "match": {"platform": "podcast"}}],
    "steps": [
        {"id": "transcribe", "uses": "transcribe"},
        {"id": "stats", "uses": "word_stats", "with": {"text": "${steps.transcribe.text}", "top": 2}},
        {"id": "loud", "uses": "loud", "with": {"text": "${steps.transcribe.text}"}},
        {
            "id": "summary",
            "uses": "summarize",
            "with": {"text": "${steps.transcribe.text}", "language": "English"},
        },
        {"id": "audio", "uses": "extract_audio", "with": {"format": "flac"}},
        # A task of its own from the extracted audio: it must not fire this workflow again.
        {"id": "again", "uses": "transcribe", "with": {"media": "${steps.audio.audio}", "model": "tiny.en"}},
    ],
}


async def test_completed_task_starts_a_run_with_components_summary_and_audio(
    api: RunningApp, clips: dict[str, Clip], chat_api: ChatServer
) -> None:
    workflow_id = await create_workflow(api.client, PODCAST_PIPELINE)
    other = (await upload(api.client, clips["jfk.flac"].path, platform="radio")).json()
    task = (await upload(api.client, clips["jfk.flac"].path, platform="podcast")).json()
    assert (await wait_done(api.client, other["id"]))["status"] == "completed"
    assert (await wait_done(api.client, task["id"]))["status"] == "completed"
    (listed,) = await runs_of(api, workflow_id)  # only the podcast task matched
    run = await wait_run(api.client, listed["id"])
    assert run["status"] == "completed", run
    assert run["trigger"] == "task.completed" and run["input"]["task_id"] == task["id"]
    assert run["input"]["kind"] == "task" and run["input"]["platform"] == "podcast"
    steps = steps_of(run)
    # The triggering task's transcript is reused, not transcribed again.
    assert steps["transcribe"]["task_id"] == task["id"]
    assert "fellow americans" in normalize_en(steps["transcribe"]["output"]["text"])
    assert steps["stats"]["output"]["words"] >= 20 and len(steps["stats"]["output"]["longest"]) == 2
    assert steps["loud"]["output"]["loud"] == steps["transcribe"]["output"]["text"].upper()
    exchange = next(e for e in chat_api.take() if "fellow Americans" in e.user)
    assert (
        steps["summary"]["output"]["summary"] == exchange.reply
        and exchange.authorization == "Bearer peer-key"
    )
    audio = steps["audio"]["output"]
    assert audio["format"] == "flac" and abs(audio["duration"] - 11.0) < 0.5
    download = await api.client.get(audio["url"])
    assert (
        download.status_code == 200
        and download.content[:4] == b"fLaC"
        and len(download.content) == audio["size"]
    )
    again = steps["again"]
    assert again["status"] == "completed" and again["task_id"] not in (task["id"], other["id"])
    assert "fellow americans" in normalize_en(again["output"]["text"])
    (own,) = await tasks_of_run(api.container, run["id"])
    assert own.id == again["task_id"] and own.platform == "podcast"
    # The workflow's own task matches the filter too, but tasks of workflows never fire triggers.
    assert [item["id"] for item in await runs_of(api, workflow_id)] == [run["id"]]

    # The artifact outlives the run until the run is deleted.
    artifact = api.container.storage.path_of(audio["audio"])
    assert artifact.is_file()
    await api.container.janitor.sweep(grace_seconds=0)
    assert artifact.is_file(), "the janitor must count run artifacts as referenced"
    assert (await api.client.delete(f"/api/v1/workflow-runs/{run['id']}")).status_code == 204
    assert not artifact.exists()


async def test_submitted_link_matching_the_pattern_starts_a_run(api: RunningApp, site: str) -> None:  # noqa: F811
    page = f"{site}/jfk.html"
    workflow_id = await create_workflow(
        api.client,
        {
            "name": "links from the local site",
            "input": {"kinds": ["task", "link"]},
            "triggers": [{"type": "event", "on": "link.submitted", "match": {"url": f"{site}/jfk*"}}],
            "steps": [
                {"id": "transcribe", "uses": "transcribe"},
                {"id": "stats", "uses": "word_stats", "with": {"text": "${steps.transcribe.text}"}},
            ],
        },
    )
    other = await create_workflow(
        api.client,
        {
            "name": "links elsewhere",
            "input": {"kinds": ["task"]},
            "triggers": [{"type": "event", "on": "link.submitted", "match": {"url_regex": r"youtube\.com/"}}],
            "steps": [{"id": "transcribe", "uses": "transcribe"}],
        },
    )
    created = await api.client.post("/api/v1/tasks/from-link", json={"url": page})
    assert created.status_code == 201, created.text
    (listed,) = await runs_of(api, workflow_id)
    assert await runs_of(api, other) == []
    run = await wait_run(api.client, listed["id"])
    assert run["status"] == "completed", run
    assert run["trigger"] == "link.submitted" and run["input"]["url"] == page
    assert run["input"]["platform"] == "generic" and run["input"]["task_id"] == created.json()["id"]
    steps = steps_of(run)
    assert steps["transcribe"]["task_id"] == created.json()["id"]
    assert steps["stats"]["output"]["words"] >= 20
    # A link run can be started by hand too: the link is resolved and stored for the run.
    manual = await api.client.post(
        f"/api/v1/workflows/{workflow_id}/runs", data={"task_id": created.json()["id"]}
    )
    assert manual.status_code == 201, manual.text
    assert (await wait_run(api.client, manual.json()["id"]))["status"] == "completed"
    page_of_runs = await api.container.workflows.search_runs(None, limit=10, offset=0, principal=ANONYMOUS)
    assert page_of_runs.total >= 2


async def test_runs_started_by_hand_from_a_url_and_from_a_link(api: RunningApp, site: str) -> None:  # noqa: F811
    """The API's other two inputs: a media URL is downloaded, a page link is resolved (yt-dlp's
    generic extractor on the local site) and its media downloaded, each stored once for the run."""
    workflow_id = await create_workflow(
        api.client,
        {
            "name": "by hand",
            "input": {"kinds": ["url", "link"]},
            "steps": [
                {"id": "transcribe", "uses": "transcribe", "with": {"model": "tiny.en"}},
                {
                    "id": "subtitles",
                    "uses": "subtitles",
                    "with": {"transcript": "${steps.transcribe.result}"},
                },
            ],
        },
    )
    from_url = await start_run(api.client, workflow_id, file_url=f"{site}/jfk.mp4")
    from_link = await start_run(api.client, workflow_id, link=f"{site}/jfk.html")
    assert from_url["input"]["kind"] == "url" and from_url["input"]["url"] == f"{site}/jfk.mp4"
    assert from_link["input"]["kind"] == "link"
    for created in (from_url, from_link):
        run = await wait_run(api.client, created["id"])
        assert run["status"] == "completed", run
        steps = steps_of(run)
        assert "ask not what your country can do for you" in normalize_en(
            steps["transcribe"]["output"]["text"]
        )
        assert steps["subtitles"]["output"]["srt"].startswith("1\n00:00:00,000 --> ")
        task = (await api.client.get(f"/api/v1/tasks/{steps['transcribe']['task_id']}")).json()
        assert task["status"] == "completed" and task["attempts"] == 1
    link_run = await wait_run(api.client, from_link["id"])
    assert link_run["input"]["link"]["title"] == "Inaugural address", link_run["input"]
