"""torch loads only when diarization (or an enrolment) runs: the speaker modules never import it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

MODULES = (
    "app.speakers.diarizer",
    "app.speakers.assign",
    "app.speakers.pipeline",
    "app.speakers.voices",
    "app.speakers.features",
    "app.services.speaker_service",
    "app.services.subtitles",
    "app.services.transcript_stream",
)


def test_speaker_modules_do_not_import_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "importlib.import_module('app.speakers.encoder')\n"
        "assert 'torch' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
