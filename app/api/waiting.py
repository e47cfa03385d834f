"""Wait for a task on behalf of a synchronous HTTP request, without leaking it if the client leaves."""

from __future__ import annotations

from fastapi import Request

from app.api.problems import ProblemError
from app.schemas.task import TaskOut
from app.services.task_service import TaskService

DISCONNECT_CHECK_SECONDS = 0.5
"""How often a waiting request checks whether its client is still connected."""

SHUTDOWN_RETRY_AFTER_SECONDS = 5
"""``Retry-After`` of the 503 a waiting request gets when the server shuts down under it."""


class ClientGoneError(Exception):
    """The client disconnected before its task finished; the task was deleted."""


async def wait_or_abandon(service: TaskService, request: Request, task_id: str) -> TaskOut:
    """Long-poll ``task_id`` until it finishes.

    If the client disconnects first (or the request is cancelled), the task is deleted —
    cancelled if running, its media removed — and ``ClientGoneError`` is raised. When the server
    shuts down first, the task is deleted likewise and the client gets 503 with ``Retry-After``.
    """
    finished = False
    try:
        while True:
            task = await service.get(task_id, wait=DISCONNECT_CHECK_SECONDS)
            if task.status.finished:
                finished = True
                return task
            if await request.is_disconnected():
                raise ClientGoneError(task_id)
            if service.shutting_down:
                raise ProblemError(
                    503,
                    "the server is shutting down; send the request again",
                    headers={"Retry-After": str(SHUTDOWN_RETRY_AFTER_SECONDS)},
                )
    finally:
        if not finished:
            await service.delete_abandoned(task_id, "client left")
