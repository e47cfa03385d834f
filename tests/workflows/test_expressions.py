"""The safe expression language, component registration and cron slots (no app needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.workflows.components import ComponentError, ComponentRegistry
from app.workflows.conditions import ExpressionError, parse, resolve
from app.workflows.definition import CronTrigger
from app.workflows.triggers import latest_slot

COMPONENT = "tests.workflows.components:word_stats"


def test_expressions_evaluate_safely() -> None:
    context = {
        "input": {"kind": "upload", "params": {"tags": ["a", "b"], "min": 3}},
        "steps": {
            "transcribe": {"language": "de", "duration": 5.2, "status": "completed"},
            "t": {"status": "skipped"},
        },
    }
    cases = {
        "steps.transcribe.language != 'en'": True,
        "steps.transcribe.language == 'en' or steps.transcribe.duration > 5": True,
        "not (steps.transcribe.language in ['de', 'fr'])": False,
        "steps.transcribe['language'] in ('de',)": True,
        "input.params.tags[-1] == 'b' and input.params.min >= 3": True,
        "steps.t.status == 'skipped' and steps.t.result == null": True,
        "steps.missing.language == None": True,
        "steps.transcribe.duration < 'text'": False,
        "'e' in steps.transcribe.language": True,
        "-input.params.min < 0": True,
    }
    for source, expected in cases.items():
        assert parse(source).evaluate(context) is expected, source
    assert resolve(
        {
            "a": "${steps.t.result or steps.transcribe.language}",
            "b": ["lang=${steps.transcribe.language}", 3],
        },
        context,
    ) == {"a": "de", "b": ["lang=de", 3]}
    assert parse("input.params.tags").references == (("input", "params", "tags"),)
    for unsafe in (
        "().__class__",
        "input.__dict__",
        "input['__globals__']",
        "print(1)",
        "x",
        "1 if True else 2",
    ):
        with pytest.raises(ExpressionError):
            parse(unsafe)


def test_components_are_checked_at_registration() -> None:
    registry = ComponentRegistry.from_entries([COMPONENT, "loud=tests.workflows.components:shout"])
    assert [c.name for c in registry.all()] == ["loud", "word_stats"]
    for entry, reason in (
        ("tests.workflows.nowhere:word_stats", "cannot be imported"),
        ("tests.workflows.components:missing", "has no attribute"),
        ("tests.workflows.components:NOT_CALLABLE", "not callable"),
        ("tests.workflows.components:no_outputs", "outputs"),
        ("transcribe=tests.workflows.components:shout", "built-in"),
        ("not a path", "expected"),
    ):
        with pytest.raises(ComponentError, match=reason):
            ComponentRegistry.from_entries([entry])


def test_cron_slots() -> None:
    trigger = CronTrigger(type="cron", schedule="30 6 * * *", timezone="Asia/Shanghai")
    now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert latest_slot(trigger, now) == datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
    exact = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
    assert latest_slot(trigger, exact) == exact
