"""Dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.problems import ProblemError
from app.container import Container
from app.media.storage import MediaStorage
from app.services.auth import ANONYMOUS, Principal
from app.services.link_service import LinkService
from app.services.speaker_service import SpeakerService
from app.services.summary_service import SummaryService
from app.services.task_service import TaskService
from app.workflows.service import WorkflowService
from config.settings import Settings


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_task_service(request: Request) -> TaskService:
    return get_container(request).tasks


def get_summary_service(request: Request) -> SummaryService:
    return get_container(request).summaries


def get_speaker_service(request: Request) -> SpeakerService:
    return get_container(request).speakers


def get_link_service(request: Request) -> LinkService:
    return get_container(request).links


def get_workflow_service(request: Request) -> WorkflowService:
    return get_container(request).workflows


def get_storage(request: Request) -> MediaStorage:
    return get_container(request).storage


def get_settings(request: Request) -> Settings:
    return get_container(request).settings


def get_principal(request: Request) -> Principal:
    """The caller, as resolved by the app-wide API key middleware (``app.api.auth``).

    Public paths carry no principal; with auth off every caller is an anonymous admin.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        if get_settings(request).auth.enabled:
            raise ProblemError(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})
        return ANONYMOUS
    return principal


def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise ProblemError(403, "this operation needs an admin API key")
    return principal


async def check_admission(request: Request) -> None:
    """Refuse new work with 503 + Retry-After past the queue, disk or memory limits."""
    await get_container(request).admission.check()


ContainerDep = Annotated[Container, Depends(get_container)]
TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SummaryServiceDep = Annotated[SummaryService, Depends(get_summary_service)]
LinkServiceDep = Annotated[LinkService, Depends(get_link_service)]
SpeakerServiceDep = Annotated[SpeakerService, Depends(get_speaker_service)]
WorkflowServiceDep = Annotated[WorkflowService, Depends(get_workflow_service)]
StorageDep = Annotated[MediaStorage, Depends(get_storage)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
"""The caller's API key (key id, name, admin flag). Task visibility follows it."""
AdminDep = Annotated[Principal, Depends(require_admin)]
"""Like ``PrincipalDep``, but 403 unless the key is an admin key."""
AdmissionDep = Annotated[None, Depends(check_admission)]
"""Add to any route that creates or re-queues work: 503 + Retry-After when over capacity.
(``TaskService.create`` and ``TaskService.retry`` check it themselves.)"""
