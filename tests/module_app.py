"""Settings for one app shared by a whole test module (``make_settings`` is per test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.settings import Settings


def module_settings(root: Path, model_dir: Path, **groups: dict[str, Any]) -> Settings:
    """Like ``make_settings`` in conftest, rooted in ``root``; keyword groups override single fields."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{root / 'tingxie.db'}",
        "storage": {"temp_dir": root / "media"},
        "whisper": {
            "default_model": "tiny.en",
            "model_dir": model_dir,
            "load_mode": "lazy",
            "min_size": 0,
            "cpu_threads": 2,
        },
        "processor": {"node_id": "test-node", "poll_interval_seconds": 0.2},
        "logging": {"dir": root / "logs"},
    }
    for key, value in groups.items():
        values[key] = {**values.get(key, {}), **value}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
