"""Settings: nested groups from the environment, docstrings, and a complete .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from config.docs import outputs
from config.env_example import render_env_example
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.append((f"{prefix}{name.upper()}", field.description))
            out.extend(_fields(annotation, f"{prefix}{name.upper()}__"))
        else:
            out.append((f"{prefix}{name.upper()}", field.description))
    return out


def test_every_setting_has_a_docstring() -> None:
    missing = [name for name, description in _fields(Settings) if not description]
    assert missing == []


def test_env_example_lists_every_setting_and_is_current() -> None:
    committed = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert committed == render_env_example(), "regenerate: python -m config.docs"
    for name, _ in _fields(Settings):
        group = Settings.model_fields.get(name.lower())
        if (
            group is not None
            and isinstance(group.annotation, type)
            and issubclass(group.annotation, BaseModel)
        ):
            continue
        assert f"#{name}=" in committed, name


def test_nested_groups_and_database_url_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/tingxie")
    monkeypatch.setenv("WHISPER__COMPUTE_TYPE", "int8_float16")
    monkeypatch.setenv("WHISPER__ALLOWED_MODELS", "base,tiny.en,small")
    monkeypatch.setenv("PROCESSOR__MAX_CONCURRENT_TASKS", "4")
    monkeypatch.setenv("STORAGE__MAX_UPLOAD_MB", "2")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql+asyncpg://u@db/tingxie"
    assert settings.whisper.compute_type == "int8_float16"
    assert settings.whisper.allowed_models == ["base", "tiny.en", "small"]
    assert settings.processor.max_concurrent_tasks == 4
    assert settings.storage.max_upload_bytes == 2 * 1024 * 1024


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=sqlite:///./other.db\nSERVER__PORT=9001\n", encoding="utf-8")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.database_url == "sqlite+aiosqlite:///./other.db"
    assert settings.server.port == 9001


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "WHISPER__DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "sqlite+aiosqlite:///./tingxie.db"
    assert settings.whisper.default_model == "base"
    assert {"base", "tiny.en"} <= set(settings.whisper.allowed_models)
    assert settings.whisper.devices == "auto" and settings.whisper.load_mode == "eager"


def test_configuration_docs_and_env_example_are_current() -> None:
    """One generator, one source: .env.example and docs/configuration(.zh).md from the docstrings."""
    for path, text in outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run python -m config.docs"
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, _ in _fields(Settings):
        group = Settings.model_fields.get(name.lower())
        if (
            group is not None
            and isinstance(group.annotation, type)
            and issubclass(group.annotation, BaseModel)
        ):
            continue
        assert f"| `{name}` |" in reference, name
