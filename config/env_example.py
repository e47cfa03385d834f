"""Render ``.env.example`` from the settings' docstrings. ``python -m config.docs`` writes it, with the
configuration reference in docs/ (one source for both)."""

from __future__ import annotations

import json
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from config.settings import Settings


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def default_value(name: str, field: FieldInfo) -> str:
    """A field's default as written in ``.env`` (host-dependent ones shown generically)."""
    if name == "node_id":
        return ""  # defaults to the host name
    if name == "model_dir":
        return "~/.cache/tingxie/models"
    return _format(field.get_default(call_default_factory=True))


def _lines(model: type[BaseModel], prefix: str) -> list[str]:
    lines: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append("")
            lines.append(f"# --- {field.description or name} ---")
            lines.extend(_lines(annotation, f"{prefix}{name.upper()}__"))
            continue
        for line in textwrap.wrap(field.description or "", 96):
            lines.append(f"# {line}")
        lines.append(f"#{prefix}{name.upper()}={default_value(name, field)}")
    return lines


def render_env_example() -> str:
    header = [
        "# Tingxie settings with their defaults. Copy to .env and uncomment what you change;",
        "# environment variables override .env. Nested groups use `__` (WHISPER__COMPUTE_TYPE).",
        "",
    ]
    return "\n".join(header + _lines(Settings, "")).rstrip() + "\n"


if __name__ == "__main__":
    print(render_env_example(), end="")
