"""Check a workflow document's meaning: step types, inputs, references, conditions, cycles, triggers.

Every problem is collected with its location (``loc``, as in request validation errors, and the step
id where there is one), so one 422 answer names them all.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from app.errors import Invalid
from app.media.extract import AudioFormat
from app.schemas.task import TaskPriority
from app.workflows.catalog import BUILTINS, UNIVERSAL_OUTPUTS, StepKind
from app.workflows.components import ComponentRegistry
from app.workflows.conditions import Expression, ExpressionError, Path, parse, templates_in
from app.workflows.definition import (
    INPUT_FIELDS,
    CronTrigger,
    EventName,
    EventTrigger,
    InputKind,
    StepSpec,
    WorkflowDocument,
)
from app.workflows.url_patterns import UrlPatternError, check_url_glob, compile_url_regex

TASK_MATCH_FIELDS = frozenset({"platform", "task_type", "language", "model", "source"})
LINK_MATCH_FIELDS = frozenset({"url", "url_regex"})
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Loc = list[str | int]


@dataclass(frozen=True)
class Issue:
    loc: Loc
    msg: str
    type: str
    step: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"loc": ["body", *self.loc], "msg": self.msg, "type": self.type}
        if self.step is not None:
            found["step"] = self.step
        return found


class InvalidWorkflowError(Invalid):
    """Every issue of a workflow document (422 problem+json, with the issues as ``errors``)."""

    def __init__(self, issues: list[Issue]) -> None:
        summary = "; ".join(
            f"{'.'.join(str(part) for part in issue.loc)}: {issue.msg}" for issue in issues[:10]
        )
        super().__init__(
            f"invalid workflow: {summary}",
            title="Invalid workflow",
            errors=[issue.as_dict() for issue in issues],
        )
        self.issues = issues


@dataclass(frozen=True)
class ValidatedWorkflow:
    """A document that passed validation, with what the runner needs precomputed."""

    document: WorkflowDocument
    order: tuple[str, ...]
    """Step ids in a topological order (document order among independent steps)."""
    needs: dict[str, frozenset[str]]
    """Each step's dependencies: referenced steps plus explicit ``needs``."""

    def step(self, step_id: str) -> StepSpec:
        return next(step for step in self.document.steps if step.id == step_id)


def outputs_of(uses: str, components: ComponentRegistry) -> frozenset[str] | None:
    builtin = BUILTINS.get(uses)
    if builtin is not None:
        return builtin.outputs | UNIVERSAL_OUTPUTS
    component = components.get(uses)
    return component.outputs | UNIVERSAL_OUTPUTS if component is not None else None


def validate(
    document: WorkflowDocument, *, components: ComponentRegistry, max_steps: int
) -> ValidatedWorkflow:
    """The validated workflow, or :class:`InvalidWorkflowError` (422) naming every problem."""
    issues: list[Issue] = []
    steps = document.steps
    if len(steps) > max_steps:
        issues.append(Issue(["steps"], f"a workflow has at most {max_steps} steps", "too_many_steps"))
    ids: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in ids:
            issues.append(
                Issue(["steps", index, "id"], f"duplicate step id {step.id!r}", "duplicate_step", step.id)
            )
        else:
            ids[step.id] = index
    for name in document.input.params:
        if not _PARAM_NAME.match(name):
            issues.append(
                Issue(["input", "params", name], "parameter names must be identifiers", "bad_param")
            )

    needs: dict[str, set[str]] = {step.id: set() for step in steps}
    for index, step in enumerate(steps):
        where: Loc = ["steps", index]
        builtin = BUILTINS.get(step.uses)
        component = components.get(step.uses)
        if builtin is None and component is None:
            known = ", ".join([*BUILTINS, *(c.name for c in components.all())])
            issues.append(
                Issue(
                    [*where, "uses"],
                    f"unknown step type {step.uses!r} (known: {known})",
                    "unknown_step_type",
                    step.id,
                )
            )
        elif builtin is not None:
            for key in step.with_:
                if key not in builtin.inputs:
                    accepted = ", ".join(sorted(builtin.inputs))
                    issues.append(
                        Issue(
                            [*where, "with", key],
                            f"{step.uses} has no input {key!r} (inputs: {accepted})",
                            "unknown_input",
                            step.id,
                        )
                    )
            for key in sorted(builtin.required - set(step.with_)):
                issues.append(
                    Issue([*where, "with"], f"{step.uses} needs the input {key!r}", "missing_input", step.id)
                )
            issues.extend(_literal_issues(step, where))
        elif component is not None:
            reason = component.check_inputs(step.with_)
            if reason is not None:
                issues.append(
                    Issue(
                        [*where, "with"],
                        f"component {component.name} cannot take these inputs: {reason}",
                        "bad_inputs",
                        step.id,
                    )
                )
        for key, value in step.with_.items():
            for source in templates_in(value):
                expression = _parse(source, [*where, "with", key], step.id, issues)
                if expression is not None:
                    issues.extend(
                        _reference_issues(
                            expression, [*where, "with", key], step, document, ids, components, needs
                        )
                    )
        if step.if_ is not None:
            expression = _parse(step.if_, [*where, "if"], step.id, issues)
            if expression is not None:
                issues.extend(
                    _reference_issues(expression, [*where, "if"], step, document, ids, components, needs)
                )
        for position, need in enumerate(step.needs):
            if need == step.id:
                issues.append(
                    Issue([*where, "needs", position], "a step cannot need itself", "self_reference", step.id)
                )
            elif need not in ids:
                issues.append(
                    Issue([*where, "needs", position], f"unknown step {need!r}", "unknown_step", step.id)
                )
            else:
                needs[step.id].add(need)

    order: list[str] = []
    if not any(issue.type in ("duplicate_step",) for issue in issues):
        cycle = _find_cycle([step.id for step in steps], needs)
        if cycle is not None:
            issues.append(
                Issue(
                    ["steps", ids[cycle[0]]],
                    f"the steps form a cycle: {' → '.join([*cycle, cycle[0]])}",
                    "cycle",
                    cycle[0],
                )
            )
        else:
            order = _topological([step.id for step in steps], needs)
    issues.extend(_trigger_issues(document))
    if issues:
        raise InvalidWorkflowError(issues)
    return ValidatedWorkflow(
        document=document, order=tuple(order), needs={key: frozenset(value) for key, value in needs.items()}
    )


def _parse(source: str, loc: Loc, step_id: str | None, issues: list[Issue]) -> Expression | None:
    try:
        return parse(source)
    except ExpressionError as exc:
        issues.append(
            Issue(loc, f"invalid expression {source[:100]!r}: {exc}", "invalid_expression", step_id)
        )
        return None


def _reference_issues(
    expression: Expression,
    loc: Loc,
    step: StepSpec,
    document: WorkflowDocument,
    ids: dict[str, int],
    components: ComponentRegistry,
    needs: dict[str, set[str]],
) -> list[Issue]:
    issues: list[Issue] = []
    for path in expression.references:
        issue = _reference_issue(path, step, document, ids, components)
        if issue is not None:
            issues.append(Issue(loc, issue[0], issue[1], step.id))
        elif path[0] == "steps":
            needs[step.id].add(str(path[1]))
    return issues


def _reference_issue(
    path: Path, step: StepSpec, document: WorkflowDocument, ids: dict[str, int], components: ComponentRegistry
) -> tuple[str, str] | None:
    shown = ".".join(str(part) for part in path)
    if path[0] == "input":
        if len(path) == 1:
            return None
        if path[1] not in INPUT_FIELDS:
            return (
                f"{shown}: input has no field {path[1]!r} (fields: {', '.join(sorted(INPUT_FIELDS))})",
                "unknown_input_field",
            )
        if path[1] == "params" and len(path) > 2 and path[2] not in document.input.params:
            return f"{shown}: the workflow declares no parameter {path[2]!r} in input.params", "unknown_param"
        return None
    if len(path) == 1:
        return "name a step: steps.<id>", "bad_reference"
    target = path[1]
    if not isinstance(target, str) or target not in ids:
        return f"{shown}: unknown step {target!r}", "unknown_step"
    if target == step.id:
        return f"{shown}: a step cannot read its own outputs", "self_reference"
    if len(path) > 2:
        target_step = document.steps[ids[target]]
        outputs = outputs_of(target_step.uses, components)
        if outputs is not None and path[2] not in outputs:
            return (
                f"{shown}: {target} ({target_step.uses}) has no output {path[2]!r} (outputs: {', '.join(sorted(outputs))})",
                "unknown_output",
            )
    return None


def _literal_issues(step: StepSpec, where: Loc) -> list[Issue]:
    """Checks of literal (non-reference) values that would fail every run."""
    issues: list[Issue] = []

    def literal(key: str) -> Any:
        value = step.with_.get(key)
        return None if value is None or templates_in(value) else value

    builtin = BUILTINS[step.uses]
    priority = literal("priority")
    if (
        builtin.kind is StepKind.task
        and priority is not None
        and priority not in {p.value for p in TaskPriority}
    ):
        issues.append(
            Issue([*where, "with", "priority"], "priority is high, normal or low", "bad_value", step.id)
        )
    model = literal("model")
    if step.uses == "translate" and isinstance(model, str) and model.endswith(".en"):
        issues.append(
            Issue([*where, "with", "model"], f"model {model!r} is English-only", "bad_value", step.id)
        )
    audio_format = literal("format")
    if (
        step.uses == "extract_audio"
        and audio_format is not None
        and audio_format not in {f.value for f in AudioFormat}
    ):
        issues.append(
            Issue([*where, "with", "format"], "format is wav, mp3, flac or opus", "bad_value", step.id)
        )
    url = literal("url")
    if (
        step.uses == "webhook"
        and url is not None
        and not (isinstance(url, str) and url.startswith(("http://", "https://")))
    ):
        issues.append(Issue([*where, "with", "url"], "url must be an http(s) URL", "bad_value", step.id))
    return issues


def _find_cycle(ids: list[str], needs: dict[str, set[str]]) -> list[str] | None:
    """One cycle (in dependency order) if the graph has any."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dependency in sorted(needs.get(node, ())):
            if state.get(dependency) == 1:
                cycle = stack[stack.index(dependency) :]
                return list(reversed(cycle))
            if dependency not in state:
                found = visit(dependency)
                if found is not None:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in ids:
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None


def _topological(ids: list[str], needs: dict[str, set[str]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(ids):
        for node in ids:
            if node not in done and needs[node] <= done:
                order.append(node)
                done.add(node)
                break
    return order


def _trigger_issues(document: WorkflowDocument) -> list[Issue]:
    issues: list[Issue] = []
    kinds = set(document.input.kinds)
    for index, trigger in enumerate(document.triggers):
        where: Loc = ["triggers", index]
        if isinstance(trigger, CronTrigger):
            try:
                zone = zoneinfo.ZoneInfo(trigger.timezone)
            except Exception:
                issues.append(
                    Issue([*where, "timezone"], f"unknown time zone {trigger.timezone!r}", "bad_timezone")
                )
                zone = None
            try:
                valid = croniter.is_valid(trigger.schedule)
                if valid:
                    croniter(trigger.schedule, datetime.now(zone or UTC)).get_next(datetime)
            except Exception:
                valid = False
            if not valid:
                issues.append(
                    Issue([*where, "schedule"], f"invalid cron expression {trigger.schedule!r}", "bad_cron")
                )
            given = [
                kind
                for kind, value in (("url", trigger.input.file_url), ("link", trigger.input.link))
                if value
            ]
            if len(given) > 1:
                issues.append(Issue([*where, "input"], "give one of file_url or link", "bad_input"))
            elif given and InputKind(given[0]) not in kinds:
                issues.append(
                    Issue([*where, "input"], f"the workflow does not accept {given[0]} input", "bad_input")
                )
            elif not given and InputKind.none not in kinds:
                issues.append(
                    Issue([*where, "input"], "give file_url or link, or accept `none` input", "bad_input")
                )
            for name in trigger.input.params:
                if name not in document.input.params:
                    issues.append(
                        Issue([*where, "input", "params", name], "undeclared parameter", "unknown_param")
                    )
        elif isinstance(trigger, EventTrigger):
            if InputKind.task not in kinds:
                issues.append(
                    Issue([*where], "event runs start from a task: accept `task` input", "bad_input")
                )
            allowed = TASK_MATCH_FIELDS if trigger.on is EventName.task_completed else LINK_MATCH_FIELDS
            for key, value in trigger.match.items():
                if key not in allowed:
                    issues.append(
                        Issue(
                            [*where, "match", key],
                            f"{trigger.on.value} matches on {', '.join(sorted(allowed))}",
                            "bad_match",
                        )
                    )
                elif key in LINK_MATCH_FIELDS:
                    try:
                        if key == "url_regex":
                            compile_url_regex(value)
                        else:
                            check_url_glob(value)
                    except UrlPatternError as exc:
                        issues.append(Issue([*where, "match", key], f"invalid {key}: {exc}", "bad_match"))
    return issues
