"""torch, numba and openai-whisper load only with the engine that needs them; scipy (speaker
clustering) and the openai SDK (summaries) only when a task asks for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AUDIO_DIR, ROOT

pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
import app.main
from app.engines.faster_whisper_engine import FasterWhisperModel
from app.engines.model_resolver import ModelResolver
from app.schemas.task import DecodeOptions, TaskType
from app.services.openai_format import language_name
from pathlib import Path
location = ModelResolver(Path(sys.argv[1])).resolve("tiny.en").location
model = FasterWhisperModel("tiny.en", location, device="cpu", device_index=0, compute_type="int8",
                           cpu_threads=2, num_workers=1, batch_size=8)
stream = model.transcribe(Path(sys.argv[2]), TaskType.transcribe, DecodeOptions())
text = "".join(segment.text for segment in stream.segments)
print(json.dumps({"text": text, "name": language_name("en"),
                  "loaded": [m for m in ("torch", "numba", "whisper", "scipy", "openai") if m in sys.modules]}))
"""


def test_the_default_engine_loads_no_torch(model_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_dir), str(AUDIO_DIR / "jfk.flac")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "your country" in found["text"]
    assert found["name"] == "english"
    assert found["loaded"] == []
