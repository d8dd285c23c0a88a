"""Task data is plain JSON: the one rule that keeps user data from becoming live objects.

SpiffWorkflow's serializer revives any dict carrying a ``"typename"`` key as the registered class
when a state is loaded. If task data could hold such objects, a script (or a form, a message, a start
payload) could plant a dict shaped like a serialized ``BpmnWorkflow`` and get back, after the next
wait, a live workflow with an unrestricted script engine. So Scopeflow never revives task data
(see :mod:`scopeflow.engine.spiff`), and therefore refuses, when the state is written, any value that
could not be written as JSON: only ``dict``, ``list``/``tuple``, ``str``, ``int``, ``float``, ``bool``
and ``None`` are allowed, without reference cycles. (As JSON does, dict keys that are numbers come
back as strings, and tuples as lists: SpiffWorkflow's multi-instance outputs rely on the former.)
"""

from __future__ import annotations

import json
from typing import Any

_SCALARS = (str, int, float, bool, type(None))


class NotPlainJson(ValueError):
    """A value in task data that would not survive a JSON round trip unchanged."""

    def __init__(self, where: str, problem: str, task_name: str | None = None):
        self.where = where
        self.problem = problem
        self.task_name = task_name
        owner = f" of task {task_name!r}" if task_name else ""
        super().__init__(f"task data{owner} is not plain JSON: {where} {problem}")


def first_problem(value: Any, where: str = "data") -> tuple[str, str] | None:
    """``(path, problem)`` for the first value that is not plain JSON, or ``None`` when all is well.

    The common case is settled by the C encoder: it accepts exactly what the rules above allow
    (scalar keys, lists and tuples, no cycles). Only a value it refuses is walked in Python, to name
    the path of the problem."""
    try:
        json.dumps(value)
        return None
    except (TypeError, ValueError, RecursionError):
        return _walk(value, where)


def _walk(value: Any, where: str) -> tuple[str, str] | None:
    on_path: set[int] = set()

    def visit(item: Any, path: str) -> tuple[str, str] | None:
        if isinstance(item, _SCALARS):
            return None
        if isinstance(item, dict | list | tuple):
            if id(item) in on_path:
                return path, "refers to itself (a reference cycle)"
            on_path.add(id(item))
            try:
                return visit_container(item, path)
            finally:
                on_path.discard(id(item))
        return path, f"is a {type(item).__name__}, which JSON cannot hold (use a string, number, list or dict)"

    def visit_container(item: dict | list | tuple, path: str) -> tuple[str, str] | None:
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, _SCALARS):   # JSON writes str/int/float/bool/None keys as strings
                    return path, f"has a key of type {type(key).__name__} (JSON keys are strings)"
                if not isinstance(child, _SCALARS) and (found := visit(child, f"{path}.{key}")):
                    return found
            return None
        for index, child in enumerate(item):
            if not isinstance(child, _SCALARS) and (found := visit(child, f"{path}[{index}]")):
                return found
        return None

    return visit(value, where)


def require_plain(value: Any, where: str = "data", task_name: str | None = None) -> None:
    """Raise :class:`NotPlainJson` naming the first offending path."""
    found = first_problem(value, where)
    if found is not None:
        raise NotPlainJson(found[0], found[1], task_name)
