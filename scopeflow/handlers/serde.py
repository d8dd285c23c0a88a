"""Dataclass ⇄ plain JSON data, for the typed objects that travel in BPMN task data.

Task data must stay JSON (SpiffWorkflow serializes it), so each object goes in as ``to_data(obj)``
and comes out as ``from_data(Type, data)``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
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
    converters, names = _shape(cls)
    unknown = set(data) - names
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    kwargs = {name: None if value is None else converters[name](value) for name, value in data.items()}
    return cls(**kwargs)


@functools.cache
def _shape(cls: type) -> tuple[dict[str, Callable[[Any], Any]], frozenset[str]]:
    """A dataclass's field converters and field names, worked out once per class: resolving the
    hints re-evaluates every annotation, and a large spec holds a hundred thousand values."""
    hints = typing.get_type_hints(cls)
    names = frozenset(f.name for f in dataclasses.fields(cls))
    return {name: _converter(hints[name]) for name in names}, names


@functools.cache
def _converter(hint: Any) -> Callable[[Any], Any]:
    """The function that turns a plain value into ``hint``'s type (None stays None at every level)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return _converter(inner[0]) if inner else _same
    if dataclasses.is_dataclass(hint):
        return functools.partial(from_data, hint)
    if origin in (list, tuple) and args:
        item = _converter(args[0])
        if item is _same:
            return tuple if origin is tuple else list
        if origin is tuple:
            return lambda value: tuple(None if x is None else item(x) for x in value)
        return lambda value: [None if x is None else item(x) for x in value]
    if origin is dict and len(args) == 2:
        item = _converter(args[1])
        if item is _same:
            return dict
        return lambda value: {k: None if v is None else item(v) for k, v in value.items()}
    return _same


def _same(value: Any) -> Any:
    return value
