"""Helpers for workflow tests: create a workflow, start a run, wait for it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.container import Container
from app.db.models import Task
from app.db.session import create_session_factory


async def create_workflow(client: httpx.AsyncClient, document: dict[str, Any]) -> str:
    response = await client.post("/api/v1/workflows", json=document)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start_run(
    client: httpx.AsyncClient, workflow_id: str, path: Path | None = None, **fields: Any
) -> dict[str, Any]:
    data = {key: json.dumps(value) if key == "params" else str(value) for key, value in fields.items()}
    if path is not None:
        with path.open("rb") as handle:
            response = await client.post(
                f"/api/v1/workflows/{workflow_id}/runs", files={"file": (path.name, handle)}, data=data
            )
    else:
        response = await client.post(f"/api/v1/workflows/{workflow_id}/runs", data=data)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def get_run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/workflow-runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def wait_run(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    until: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout: float = 180,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = await get_run(client, run_id)
        if run["status"] in until:
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.1)


async def wait_step(
    client: httpx.AsyncClient, run_id: str, step_id: str, check: Any, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = await get_run(client, run_id)
        step = steps_of(run)[step_id]
        if check(step):
            return run
        assert run["status"] in ("pending", "running"), run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in run["steps"]}


async def tasks_of_run(container: Container, run_id: str) -> list[Task]:
    """The tasks a workflow run queued, oldest first."""
    async with create_session_factory(container.engine)() as session:
        rows = await session.scalars(
            select(Task).where(Task.workflow_run_id == run_id).order_by(Task.created_at)
        )
        return list(rows.all())
