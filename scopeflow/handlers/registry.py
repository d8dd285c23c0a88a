"""Operator name → handler, with what the engine needs to know about each handler.

BPMN service tasks name an operator (``spiffworkflow:serviceTaskOperator id="..."``); the engine
looks it up here. A handler is a plain function ``fn(ctx, **params) -> dict``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers.context import TaskContext

Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for ``transient`` failures, applied before BPMN sees them."""

    max_attempts: int = 3
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (attempts count from 1)."""
        return min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Operator:
    name: str
    fn: Handler
    description: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    expensive: bool = False
    secrets: tuple[str, ...] = ()

    def __call__(self, ctx: TaskContext, **params: Any) -> dict[str, Any]:
        return self.fn(ctx, **params)


_REGISTRY: dict[str, Operator] = {}


def operator(
    name: str,
    *,
    retry: RetryPolicy | None = None,
    expensive: bool = False,
    secrets: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the operator ``name``; the docstring's first line describes it."""

    def register(fn: Handler) -> Handler:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"operator {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Operator(
            name=name,
            fn=fn,
            description=doc[0] if doc else "",
            retry=retry or RetryPolicy(),
            expensive=expensive,
            secrets=tuple(secrets),
        )
        return fn

    return register


_loaded = False


def load_all() -> None:
    """Import every module of ``scopeflow.handlers`` so their operators register themselves."""
    global _loaded
    if _loaded:
        return
    import scopeflow.handlers as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"scopeflow.handlers.{module.name}")
    _loaded = True


def get(name: str) -> Operator:
    load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown operator {name!r}") from None


def names() -> set[str]:
    load_all()
    return set(_REGISTRY)


def all_operators() -> list[Operator]:
    load_all()
    return sorted(_REGISTRY.values(), key=lambda op: op.name)
