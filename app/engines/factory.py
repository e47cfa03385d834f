"""Creates engine instances: finds the engine's module in the registry and lets it load the model."""

from __future__ import annotations

import importlib
import logging
from typing import cast

from app.engines.base import EngineModule, ModelLoad, SpeechModel
from app.engines.devices import Device
from app.engines.model_resolver import ModelResolver
from app.schemas.task import DecodeOptions, TaskType
from config.engines import ENGINES
from config.settings import SenseVoiceSettings, WhisperSettings

logger = logging.getLogger(__name__)


class ModelFactory:
    def __init__(
        self,
        settings: WhisperSettings,
        resolver: ModelResolver,
        sensevoice: SenseVoiceSettings | None = None,
        *,
        max_audio_seconds: float | None = None,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._sensevoice = sensevoice or SenseVoiceSettings()
        self._max_audio_seconds = max_audio_seconds

    def _module(self, engine: str) -> EngineModule:
        spec = ENGINES.get(engine)
        if spec is None:
            raise ValueError(f"unknown engine {engine!r}")
        return cast(EngineModule, importlib.import_module(spec.module))

    def _load(self, engine: str, model: str, device: Device, cpu_threads: int) -> ModelLoad:
        return ModelLoad(
            model=model,
            device=device,
            cpu_threads=cpu_threads,
            whisper=self._settings,
            sensevoice=self._sensevoice,
            resolver=self._resolver,
            max_audio_seconds=self._max_audio_seconds,
        )

    def unavailable(self, engine: str) -> str | None:
        """Why ``engine`` cannot run on this node (its weights are missing, ...), or ``None``."""
        check = getattr(self._module(engine), "unavailable", None)
        if check is None:
            return None
        problem: str | None = check(self._load(engine, "", Device("cpu", 0), 1))
        return problem

    def unsupported(self, engine: str, task_type: TaskType, options: DecodeOptions) -> str | None:
        """Why ``engine`` cannot serve this request (a language it lacks, ...), or ``None``."""
        check = getattr(self._module(engine), "unsupported", None)
        if check is None:
            return None
        problem: str | None = check(task_type, options)
        return problem

    def create(self, engine: str, model: str, device: Device, cpu_threads: int) -> SpeechModel:
        """Blocking: loads weights. Run it in a worker thread."""
        return self._module(engine).create_model(self._load(engine, model, device, cpu_threads))
