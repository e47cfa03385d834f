"""Loads models on demand and keeps them loaded; inference callers share one instance per model."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import ctranslate2

from app.engines.base import SpeechModel
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.engines.model_resolver import ModelResolver
from config.settings import WhisperSettings

logger = logging.getLogger(__name__)


class ModelNotAllowedError(ValueError):
    """The requested model is not in the configured allowlist."""


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return device


@dataclass(frozen=True)
class LoadedModelInfo:
    name: str
    engine: str
    device: str
    location: str


class ModelManager:
    """Lazily loads allowed models (one shared instance each) and records load failures."""

    def __init__(self, settings: WhisperSettings, resolver: ModelResolver) -> None:
        self._settings = settings
        self._resolver = resolver
        self._models: dict[str, SpeechModel] = {}
        self._locations: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.load_errors: dict[str, str] = {}
        self.device = resolve_device(settings.device)

    @property
    def engine(self) -> str:
        return self._settings.engine

    def check_allowed(self, name: str) -> None:
        if name not in self._settings.allowed_models:
            raise ModelNotAllowedError(
                f"model {name!r} is not allowed; choose one of {self._settings.allowed_models}"
            )

    async def get(self, name: str) -> SpeechModel:
        self.check_allowed(name)
        model = self._models.get(name)
        if model is not None:
            return model
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            model = self._models.get(name)
            if model is None:
                model = await asyncio.to_thread(self._load, name)
                self._models[name] = model
            return model

    def _load(self, name: str) -> SpeechModel:
        try:
            resolved = self._resolver.resolve(name)
            compute_type = self._settings.resolved_compute_type(self.device)
            logger.info(
                "loading model %s from %s on %s (%s)", name, resolved.location, self.device, compute_type
            )
            model = FasterWhisperModel(
                name,
                resolved.location,
                device=self.device,
                device_index=self._settings.device_index,
                compute_type=compute_type,
                cpu_threads=self._settings.resolved_cpu_threads(),
                num_workers=self._settings.num_workers,
                download_root=self._settings.model_dir / "hub",
            )
        except Exception as exc:
            self.load_errors[name] = f"{type(exc).__name__}: {exc}"
            logger.exception("failed to load model %s", name)
            raise
        self.load_errors.pop(name, None)
        self._locations[name] = resolved.location
        return model

    def loaded(self) -> list[LoadedModelInfo]:
        return [
            LoadedModelInfo(name=name, engine=m.engine, device=m.device, location=self._locations[name])
            for name, m in self._models.items()
        ]

    async def close(self) -> None:
        models, self._models = self._models, {}
        for model in models.values():
            model.close()
