"""Dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.media.storage import MediaStorage
from app.services.container import Services
from app.services.link_service import LinkService
from app.services.summary_service import SummaryService
from app.services.task_service import TaskService
from config.settings import Settings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_task_service(request: Request) -> TaskService:
    return get_services(request).tasks


def get_summary_service(request: Request) -> SummaryService:
    return get_services(request).summaries


def get_link_service(request: Request) -> LinkService:
    return get_services(request).links


def get_storage(request: Request) -> MediaStorage:
    return get_services(request).storage


def get_settings(request: Request) -> Settings:
    return get_services(request).settings


ServicesDep = Annotated[Services, Depends(get_services)]
TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SummaryServiceDep = Annotated[SummaryService, Depends(get_summary_service)]
LinkServiceDep = Annotated[LinkService, Depends(get_link_service)]
StorageDep = Annotated[MediaStorage, Depends(get_storage)]
