"""The service runs without the optional openai-whisper package (and torch, which it pulls in):
nothing imports them at start-up, and asking for their engine is a clear 422."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from whisper.tokenizer import LANGUAGES

from app.services.languages import LANGUAGE_NAMES
from config.settings import Settings
from tests.conftest import ROOT, Clip, running_app, upload

WITHOUT_OPENAI_WHISPER = """
import sys
for name in ("whisper", "torch", "triton"):
    sys.modules[name] = None  # import raises ImportError, as when the package is not installed
from app.main import create_app
from app.services.openai_format import language_name
create_app()
assert language_name("zh") == "chinese", language_name("zh")
leaked = sorted(name for name, module in sys.modules.items() if module is not None and name.split(".")[0] in ("whisper", "torch", "triton"))
assert not leaked, leaked
print("ok")
"""


@pytest.mark.slow
def test_the_app_imports_and_builds_without_openai_whisper_or_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENAI_WHISPER], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_language_names_match_openai_whisper() -> None:
    assert LANGUAGE_NAMES == LANGUAGES


async def test_openai_whisper_engine_without_its_package_is_a_422(
    make_settings: Callable[..., Settings], clips: dict[str, Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "whisper", None)
    settings = make_settings(whisper={"allowed_engines": ["faster_whisper", "openai_whisper"]})
    async with running_app(settings, paused=True) as running:
        refused = await upload(running.client, clips["jfk.flac"].path, engine="openai_whisper")
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        detail = refused.json()["detail"]
        assert "openai_whisper" in detail and "not installed" in detail
        assert "requirements-openai-whisper.txt" in detail
        loaded = await running.client.post("/api/v1/models/tiny.en/load", params={"engine": "openai_whisper"})
        assert loaded.status_code == 422, loaded.text
        # The default engine is unaffected.
        accepted = await upload(running.client, clips["jfk.flac"].path)
        assert accepted.status_code == 201, accepted.text
