"""A small, safe expression language for step conditions and ``${...}`` references.

Expressions are parsed with :mod:`ast` in ``eval`` mode and then *interpreted* here, node by node,
over a whitelist; nothing is ever passed to ``eval`` or ``exec``. What is allowed:

* the names ``input`` and ``steps`` (the run's input and the outputs of earlier steps), and the
  literals ``true``/``false``/``null`` (also ``True``/``False``/``None``);
* attribute access (``steps.transcribe.language``) and subscripts with a literal key
  (``steps.transcribe['language']``, ``input.params.tags[0]``); names starting with ``_`` are refused;
* string, number, boolean and null literals, and lists or tuples of them (for ``in``);
* comparisons (``== != < <= > >= in not in``), ``and``, ``or``, ``not`` and unary minus.

Anything else (calls, lambdas, comprehensions, arithmetic, other names) is rejected when the
workflow is validated. Evaluation is null-safe: a missing key or an attribute of ``null`` gives
``null``; ordering comparisons between values of different types are false.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MAX_EXPRESSION_CHARS = 1000
"""Longest accepted expression: keeps parsing cheap and recursion shallow."""

ROOTS = frozenset({"input", "steps"})
_LITERAL_NAMES: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_TEMPLATE = re.compile(r"\$\{(.*?)\}", re.DOTALL)


class ExpressionError(ValueError):
    """An expression that does not parse or uses something outside the whitelist."""


Path = tuple[str | int, ...]
"""A reference such as ``("steps", "transcribe", "language")``."""


@dataclass(frozen=True)
class Expression:
    """A parsed, checked expression; :attr:`references` lists every ``input``/``steps`` path it reads."""

    source: str
    tree: ast.expr
    references: tuple[Path, ...]

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        return _evaluate(self.tree, context)

    def truthy(self, context: Mapping[str, Any]) -> bool:
        return bool(self.evaluate(context))


@lru_cache(maxsize=1024)
def parse(source: str) -> Expression:
    """Parse and check ``source``; raises :class:`ExpressionError` with a readable reason."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid syntax: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"the expression cannot be parsed ({type(exc).__name__})") from None
    references: list[Path] = []
    try:
        _check(tree.body, references)
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    return Expression(source=source, tree=tree.body, references=tuple(references))


def _describe(node: ast.AST) -> str:
    names = {
        ast.Call: "function calls",
        ast.Lambda: "lambdas",
        ast.BinOp: "arithmetic",
        ast.ListComp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.NamedExpr: "assignments",
        ast.JoinedStr: "f-strings",
        ast.Await: "await",
        ast.Starred: "unpacking",
    }
    return names.get(type(node), type(node).__name__)


def _check(node: ast.expr, references: list[Path]) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, references)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub):
            raise ExpressionError(f"the operator {type(node.op).__name__} is not allowed")
        _check(node.operand, references)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if not isinstance(
                op, ast.Eq | ast.NotEq | ast.Lt | ast.LtE | ast.Gt | ast.GtE | ast.In | ast.NotIn
            ):
                raise ExpressionError(f"the comparison {type(op).__name__} is not allowed")
        _check(node.left, references)
        for comparator in node.comparators:
            _check(comparator, references)
    elif isinstance(node, ast.Constant):
        if not (node.value is None or isinstance(node.value, str | int | float | bool)):
            raise ExpressionError(f"the literal {node.value!r} is not allowed")
    elif isinstance(node, ast.List | ast.Tuple):
        for element in node.elts:
            if not isinstance(element, ast.Constant):
                raise ExpressionError("lists may hold literals only")
            _check(element, references)
    elif isinstance(node, ast.Name):
        if node.id in _LITERAL_NAMES:
            return
        if node.id not in ROOTS:
            raise ExpressionError(f"unknown name {node.id!r}: expressions read `input` and `steps` only")
        references.append((node.id,))
    elif isinstance(node, ast.Attribute | ast.Subscript):
        references.append(_path(node))
    else:
        raise ExpressionError(f"not allowed in expressions: {_describe(node)}")


def _path(node: ast.expr) -> Path:
    """The reference path of an attribute/subscript chain rooted at ``input`` or ``steps``."""
    parts: list[str | int] = []
    while True:
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise ExpressionError(f"the attribute {node.attr!r} is not allowed")
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            key = node.slice
            if (
                isinstance(key, ast.UnaryOp)
                and isinstance(key.op, ast.USub)
                and isinstance(key.operand, ast.Constant)
            ):
                value = key.operand.value
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ExpressionError("subscripts must be a literal string or integer")
                parts.append(-value)
            elif (
                isinstance(key, ast.Constant)
                and isinstance(key.value, str | int)
                and not isinstance(key.value, bool)
            ):
                if isinstance(key.value, str) and key.value.startswith("_"):
                    raise ExpressionError(f"the key {key.value!r} is not allowed")
                parts.append(key.value)
            else:
                raise ExpressionError("subscripts must be a literal string or integer")
            node = node.value
        elif isinstance(node, ast.Name):
            if node.id not in ROOTS:
                raise ExpressionError(f"unknown name {node.id!r}: expressions read `input` and `steps` only")
            parts.append(node.id)
            return tuple(reversed(parts))
        else:
            raise ExpressionError(f"not allowed in expressions: {_describe(node)}")


def _lookup(value: Any, key: str | int) -> Any:
    if isinstance(value, Mapping):
        return value.get(key) if isinstance(key, str) else None
    if isinstance(value, Sequence) and not isinstance(value, str) and isinstance(key, int):
        try:
            return value[key]
        except IndexError:
            return None
    return None


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, ast.Eq):
        return bool(left == right)
    if isinstance(op, ast.NotEq):
        return bool(left != right)
    if isinstance(op, ast.In | ast.NotIn):
        try:
            found = left in right if isinstance(right, str | list | tuple | dict) else False
        except TypeError:
            found = False
        return found if isinstance(op, ast.In) else not found
    try:
        if isinstance(op, ast.Lt):
            return bool(left < right)
        if isinstance(op, ast.LtE):
            return bool(left <= right)
        if isinstance(op, ast.Gt):
            return bool(left > right)
        if isinstance(op, ast.GtE):
            return bool(left >= right)
    except TypeError:
        return False
    raise ExpressionError(f"the comparison {type(op).__name__} is not allowed")


def _evaluate(node: ast.expr, context: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _LITERAL_NAMES:
            return _LITERAL_NAMES[node.id]
        return context.get(node.id)
    if isinstance(node, ast.Attribute):
        return _lookup(_evaluate(node.value, context), node.attr)
    if isinstance(node, ast.Subscript):
        key = node.slice
        index: Any
        if isinstance(key, ast.UnaryOp) and isinstance(key.operand, ast.Constant):
            index = -int(key.operand.value)  # type: ignore[arg-type]  # checked at parse time
        else:
            index = key.value  # type: ignore[attr-defined]  # a literal, checked at parse time
        return _lookup(_evaluate(node.value, context), index)
    if isinstance(node, ast.BoolOp):
        result: Any = None
        for value in node.values:
            result = _evaluate(value, context)
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, context)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(operand, int | float) and not isinstance(operand, bool):
            return -operand
        return None
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, context)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, context)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.List | ast.Tuple):
        return [_evaluate(element, context) for element in node.elts]
    raise ExpressionError(f"not allowed in expressions: {_describe(node)}")


# --- ${...} templates ---------------------------------------------------------------------------


def templates_in(value: Any) -> list[str]:
    """Every ``${...}`` expression source inside a literal value (strings, lists, objects)."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(match.group(1) for match in _TEMPLATE.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(templates_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(templates_in(item))
    return found


def resolve(value: Any, context: Mapping[str, Any]) -> Any:
    """Replace references in ``value``: a string that is exactly ``${expr}`` becomes the expression's
    value (any JSON type); ``${expr}`` inside longer text is interpolated (``null`` as empty text)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole is not None:
            return parse(whole.group(1)).evaluate(context)

        def text(match: re.Match[str]) -> str:
            found = parse(match.group(1)).evaluate(context)
            return "" if found is None else str(found)

        return _TEMPLATE.sub(text, value)
    if isinstance(value, Mapping):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    return value
