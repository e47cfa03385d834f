"""Which engines can run here: ``openai_whisper`` needs the optional openai-whisper package."""

from __future__ import annotations

from importlib.util import find_spec

ENGINE_MODULES = {"faster_whisper": "faster_whisper", "openai_whisper": "whisper"}
"""The module each engine imports to load a model."""

INSTALL_HINTS = {
    "faster_whisper": "pip install -r requirements.txt",
    "openai_whisper": "pip install -r requirements-openai-whisper.txt",
}


def engine_installed(engine: str) -> bool:
    """True when the engine's package can be imported (checked without importing it)."""
    module = ENGINE_MODULES.get(engine)
    if module is None:
        return False
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_engine_message(engine: str) -> str:
    return (
        f"engine {engine!r} is not installed on this server "
        f"(its package is missing; install it with `{INSTALL_HINTS.get(engine, 'pip install')}`)"
    )
