"""The speech engines Tingxie knows: a name → the module that implements it.

Adding an engine is one module plus one line here. The module (see ``app.engines.base``,
``EngineModule``) defines ``create_model(load: ModelLoad) -> SpeechModel`` and, when it needs
them, ``unavailable(load_settings) -> str | None`` (why it cannot run here, e.g. its model
directory is missing; health shows it and tasks asking for it get a 422) and
``unsupported(task_type, options) -> str | None`` (a request it cannot serve, also a 422).
Everything else (pool, queue, priorities, subtitles, callbacks, workflows, script conversion)
works on the ``SpeechModel`` interface and needs no change.

This module stays import-light (the standard library only): settings and schemas read the names
from it, below the engines themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSpec:
    module: str
    """Import path of the engine's module."""
    own_model: str | None = None
    """The one model name of an engine that does not run Whisper models (its weights come from its
    own settings); ``None``: the engine runs the models of ``WHISPER__ALLOWED_MODELS``."""


ENGINES: dict[str, EngineSpec] = {
    "faster_whisper": EngineSpec("app.engines.faster_whisper_engine"),
    "openai_whisper": EngineSpec("app.engines.openai_whisper_engine"),
    "sensevoice": EngineSpec("app.engines.sensevoice_engine", own_model="sensevoice"),
}

ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)


def check_engine_name(name: str) -> str:
    """``name`` if it is a registered engine; ``ValueError`` otherwise (for validators)."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    return name


def engine_for_model(model: str) -> str | None:
    """The engine whose own model is ``model``, if any (``sensevoice`` → ``sensevoice``)."""
    for name, spec in ENGINES.items():
        if spec.own_model == model:
            return name
    return None
