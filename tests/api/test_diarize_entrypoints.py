"""The diarization options through batches and the transcribe step of workflows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings
from tests.conftest import running_app, wait_done
from tests.speaker_samples import CONVERSATIONS, conversation
from tests.workflows.support import create_workflow, start_run, steps_of, wait_run

pytestmark = pytest.mark.slow


async def test_batches_and_workflow_steps_diarize(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = conversation(CONVERSATIONS[2]).write_wav(tmp_path / "two.wav")
    async with running_app(make_settings(workflows={"poll_interval_seconds": 0.2})) as running:
        client = running.client
        with path.open("rb") as first, path.open("rb") as second:
            batch = await client.post(
                "/api/v1/tasks/batch",
                files=[("files", ("a.wav", first, "audio/wav")), ("files", ("b.wav", second, "audio/wav"))],
                data={"diarize": "true", "max_speakers": "3"},
            )
        assert batch.status_code == 201, batch.text
        for item in batch.json()["tasks"]:
            task = await wait_done(client, item["id"], timeout=300)
            assert task["options"]["diarize"] is True and task["options"]["max_speakers"] == 3
            assert task["status"] == "completed" and task["result"]["speakers"] == ["A", "B"]

        workflow = await create_workflow(
            client,
            {
                "name": "who spoke",
                "steps": [
                    {"id": "transcribe", "uses": "transcribe", "with": {"diarize": True, "num_speakers": 2}}
                ],
            },
        )
        created = await start_run(client, workflow, path)
        run = await wait_run(client, created["id"])
        assert run["status"] == "completed", run
        step = steps_of(run)["transcribe"]
        task = (await client.get(f"/api/v1/tasks/{step['task_id']}")).json()
        assert task["options"]["diarize"] is True and task["options"]["num_speakers"] == 2
        assert step["output"]["result"]["speakers"] == ["A", "B"]
        assert {segment["speaker"] for segment in step["output"]["result"]["segments"]} == {"A", "B"}
