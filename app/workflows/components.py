"""Custom step components: Python callables registered by module path and validated at registration.

A component is a callable (sync or async) taking the step's resolved ``with`` values as keyword
arguments and returning a mapping that holds every declared output. It declares its outputs in an
``outputs`` attribute (a sequence of identifiers) and may set ``name`` (default: its ``__name__``)::

    def word_count(text: str) -> dict[str, int]:
        return {"words": len(text.split())}

    word_count.outputs = ("words",)

Registered with ``WORKFLOWS__COMPONENTS=["mypackage.steps:word_count"]`` (or ``alias=module:callable``).
Sync components run in a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.workflows.catalog import BUILTINS

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ENTRY = re.compile(r"^(?:(?P<alias>[A-Za-z_][A-Za-z0-9_.-]{0,127})=)?(?P<module>[\w.]+):(?P<attr>[\w.]+)$")


class ComponentError(ValueError):
    """A component entry that cannot be registered (bad path, not callable, no outputs, ...)."""


@dataclass(frozen=True)
class Component:
    name: str
    path: str
    function: Callable[..., Any]
    outputs: frozenset[str]
    description: str
    is_async: bool
    signature: inspect.Signature | None

    def check_inputs(self, names: Iterable[str]) -> str | None:
        """Why the component cannot take these keyword arguments, or None when it can."""
        if self.signature is None:
            return None
        try:
            self.signature.bind(**dict.fromkeys(names))
        except TypeError as exc:
            return str(exc)
        return None

    async def call(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.is_async:
            result = await self.function(**inputs)
        else:
            result = await asyncio.to_thread(lambda: self.function(**inputs))
        if not isinstance(result, Mapping):
            raise TypeError(f"component {self.name} returned {type(result).__name__}, not a mapping")
        missing = sorted(self.outputs - set(result))
        if missing:
            raise TypeError(
                f"component {self.name} did not return its declared output(s) {', '.join(missing)}"
            )
        return {key: result[key] for key in self.outputs}


def load_component(entry: str) -> Component:
    """Import and check one ``[alias=]module.path:callable`` entry; :class:`ComponentError` says why not."""
    match = _ENTRY.match(entry.strip())
    if match is None:
        raise ComponentError(
            f"component {entry!r}: expected 'module.path:callable' or 'name=module.path:callable'"
        )
    module_name, attr = match.group("module"), match.group("attr")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ComponentError(
            f"component {entry!r}: module {module_name!r} cannot be imported ({exc})"
        ) from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ComponentError(f"component {entry!r}: {module_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise ComponentError(f"component {entry!r}: {attr!r} is not callable")
    outputs = getattr(target, "outputs", None)
    if (
        isinstance(outputs, str)
        or not isinstance(outputs, Iterable)
        or not (names := list(outputs))
        or not all(isinstance(name, str) and _IDENTIFIER.match(name) for name in names)
    ):
        raise ComponentError(
            f"component {entry!r}: declare its outputs as a non-empty `outputs` sequence of identifiers"
        )
    name = match.group("alias") or getattr(target, "name", None) or getattr(target, "__name__", None)
    if not isinstance(name, str) or not name:
        raise ComponentError(f"component {entry!r}: give it a name ('name=module.path:callable')")
    if name in BUILTINS:
        raise ComponentError(f"component {entry!r}: the name {name!r} is a built-in step type")
    try:
        signature: inspect.Signature | None = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    function = target
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    )
    return Component(
        name=name,
        path=f"{module_name}:{attr}",
        function=function,
        outputs=frozenset(names),
        description=(inspect.getdoc(target) or "").split("\n\n")[0],
        is_async=is_async,
        signature=signature,
    )


class ComponentRegistry:
    """The registered components by name."""

    def __init__(self, components: Iterable[Component] = ()) -> None:
        self._components: dict[str, Component] = {}
        for component in components:
            self.register(component)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> ComponentRegistry:
        """Load every entry; the first bad one raises :class:`ComponentError` (the app does not start)."""
        return cls(load_component(entry) for entry in entries)

    def register(self, component: Component) -> None:
        if component.name in self._components:
            raise ComponentError(f"two components are named {component.name!r}")
        self._components[component.name] = component

    def get(self, name: str) -> Component | None:
        return self._components.get(name)

    def all(self) -> list[Component]:
        return sorted(self._components.values(), key=lambda component: component.name)
