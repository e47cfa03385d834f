"""Creates engine instances: resolves the model name, picks the engine class, places it on a device."""

from __future__ import annotations

import logging
from pathlib import Path

from app.engines.base import SpeechModel
from app.engines.devices import Device
from app.engines.model_resolver import ModelResolver
from config.settings import WhisperSettings

logger = logging.getLogger(__name__)

ENGINES = ("faster_whisper", "openai_whisper")


class ModelFactory:
    def __init__(self, settings: WhisperSettings, resolver: ModelResolver) -> None:
        self._settings = settings
        self._resolver = resolver

    def create(self, engine: str, model: str, device: Device, cpu_threads: int) -> SpeechModel:
        """Blocking: loads weights. Run it in a worker thread."""
        if engine == "faster_whisper":
            from app.engines.faster_whisper_engine import FasterWhisperModel

            resolved = self._resolver.resolve(model)
            compute_type = self._settings.resolved_compute_type(device.kind)
            # Each lane runs its batches on its own worker: the instance's threads are shared out.
            cpu_threads = max(1, cpu_threads // self._settings.concurrent_batches)
            logger.info(
                "loading %s/%s from %s on %s (%s, %d thread(s) per worker)",
                engine,
                model,
                resolved.location,
                device.name,
                compute_type,
                cpu_threads,
            )
            return FasterWhisperModel(
                model,
                resolved.location,
                device=device.kind,
                device_index=device.index,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=self._settings.workers_per_instance,
                batch_size=self._settings.batch_size,
                short_windows=self._settings.short_windows,
                download_root=self._settings.model_dir / "hub",
            )
        if engine == "openai_whisper":
            from app.engines.openai_whisper_engine import OpenAIWhisperModel

            location = str(Path(model).expanduser()) if model.endswith(".pt") else model
            logger.info("loading %s/%s on %s", engine, location, device.name)
            return OpenAIWhisperModel(
                model,
                location,
                device=device.kind,
                device_index=device.index,
                cpu_threads=cpu_threads,
                download_root=self._settings.model_dir / "openai",
            )
        raise ValueError(f"unknown engine {engine!r}")
