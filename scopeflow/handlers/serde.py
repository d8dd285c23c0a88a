"""Dataclass ⇄ plain JSON data, for the typed objects that travel in BPMN task data.

Task data must stay JSON (SpiffWorkflow serializes it), so each object goes in as ``to_data(obj)``
and comes out as ``from_data(Type, data)``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_data(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_data(item) for item in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def from_data(cls: type[T], data: Any) -> T:
    """Build ``cls`` from what :func:`to_data` produced; unknown keys are an error."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints, names = _shape(cls)
    unknown = set(data) - names
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    kwargs = {name: _convert(hints[name], value) for name, value in data.items()}
    return cls(**kwargs)


@functools.cache
def _shape(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """A dataclass's resolved field types and field names (resolving the hints re-evaluates every
    annotation: a spec holds thousands of nested objects)."""
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            return _convert(arg, value)
    if dataclasses.is_dataclass(hint):
        return from_data(hint, value)
    if origin in (list, tuple) and args:
        items = [_convert(args[0], item) for item in value]
        return tuple(items) if origin is tuple else items
    if origin is dict and len(args) == 2:
        return {k: _convert(args[1], v) for k, v in value.items()}
    return value
