"""Operator name → handler, with what the engine needs to know about each handler.

BPMN service tasks name an operator (``spiffworkflow:serviceTaskOperator id="..."``); the engine
looks it up here. A handler is a plain function ``fn(ctx, **params) -> dict``. The operators of
``scopeflow.handlers`` are always registered; the modules named in ``SCOPEFLOW_OPERATOR_MODULES``
add a deployment's own (or the test suite's) through :func:`load_modules`.
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
    examples_only: bool = False   # a demonstration operator: lint refuses it outside examples/

    def __call__(self, ctx: TaskContext, **params: Any) -> dict[str, Any]:
        return self.fn(ctx, **params)


_REGISTRY: dict[str, Operator] = {}


def operator(
    name: str,
    *,
    retry: RetryPolicy | None = None,
    expensive: bool = False,
    secrets: tuple[str, ...] = (),
    examples_only: bool = False,
) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the operator ``name``; the docstring's first line describes it.

    ``examples_only`` marks an operator that exists to demonstrate the engine (fail on purpose,
    fail transiently, sleep): only models under the models directory's ``examples/`` may call it.
    """

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
            examples_only=examples_only,
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


def load_modules(modules: tuple[str, ...]) -> None:
    """Import the extra operator modules a deployment names (``SCOPEFLOW_OPERATOR_MODULES``) so
    their ``@operator`` functions register; a module that cannot be imported is a one-line error."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"SCOPEFLOW_OPERATOR_MODULES: cannot import {module!r}: {exc}") from None


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
