"""What a handler is given besides its parameters.

Handlers know nothing of SpiffWorkflow or OpenTelemetry: they report what they measured through
``ctx.record(...)`` (attributes on their task's span), wrap real work in ``ctx.span(...)`` (a child
span), and read credentials through ``ctx.secret(...)``. The engine fills in the callbacks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AttributeValue = str | int | float | bool | list[str] | list[int] | list[float]


class ChildSpan:
    """A handle on a child span: set attributes on it while the work runs."""

    def __init__(self, name: str, attributes: dict[str, AttributeValue]):
        self.name = name
        self.attributes = dict(attributes)

    def set(self, **attributes: AttributeValue) -> None:
        self.attributes.update(_dotted(attributes))


SpanOpener = Callable[[str, dict[str, AttributeValue]], contextlib.AbstractContextManager[ChildSpan]]


def _dotted(attributes: dict[str, Any]) -> dict[str, Any]:
    """Let handlers write ``tests__passed=3`` for ``scopeflow.tests.passed`` without a dict literal."""
    out = {}
    for key, value in attributes.items():
        if "__" in key and "." not in key:
            key = "scopeflow." + key.replace("__", ".")
        out[key] = value
    return out


@dataclass
class TaskContext:
    """Everything about the running task a handler may use."""

    instance_id: str
    task_id: str
    bpmn_id: str
    workspace: Path
    attempt: int = 1
    secret_names: tuple[str, ...] = ()
    record_attributes: Callable[[dict[str, AttributeValue]], None] = field(default=lambda attrs: None)
    open_span: SpanOpener | None = None
    read_secret: Callable[[str], str] | None = None
    has_secret: Callable[[str], bool] | None = None
    store_secret: Callable[[str, str], None] | None = None      # (name, value): into the secret store
    recorded_spans: Callable[[], list[Any]] | None = None      # this instance's spans so far (SpanRecord)
    evidence_rules: str = ""                                    # the model's evidence.toml text, if any
    chain_head: Callable[[], tuple[str, int]] | None = None     # (link hash, count) of the stored span chain
    llm: Any = None
    deadline: float | None = None

    def record(self, attributes: dict[str, AttributeValue] | None = None, **kw: AttributeValue) -> None:
        """Set measured attributes on this task's span (``scopeflow.tests.passed`` and the like)."""
        merged = dict(attributes or {})
        merged.update(_dotted(kw))
        self.record_attributes(merged)

    def span(self, name: str, **attributes: AttributeValue) -> contextlib.AbstractContextManager[ChildSpan]:
        """A child span around a piece of real work (a subprocess run, an LLM call)."""
        if self.open_span is None:
            return _unrecorded_span(name, _dotted(attributes))
        return self.open_span(name, _dotted(attributes))

    def secret(self, name: str) -> str:
        """A credential this operator declared; any other name is a configuration failure."""
        from scopeflow.handlers.failures import CONFIGURATION, TaskFailure

        if name not in self.secret_names and "*" not in self.secret_names:
            raise TaskFailure(
                CONFIGURATION,
                f"operator may not read secret {name!r}",
                {"secret": name, "declared": list(self.secret_names)},
            )
        if self.read_secret is None:
            raise TaskFailure(CONFIGURATION, f"secret {name!r} is not available", {"secret": name})
        return self.read_secret(name)

    def set_secret(self, name: str, value: str) -> None:
        """Store a secret this operator made (e.g. a generated password); it is redacted from then on.
        Only operators that declared the name (or ``*``) may."""
        from scopeflow.handlers.failures import CONFIGURATION, TaskFailure

        if name not in self.secret_names and "*" not in self.secret_names:
            raise TaskFailure(CONFIGURATION, f"operator may not store secret {name!r}", {"secret": name})
        if self.store_secret is None:
            raise TaskFailure(CONFIGURATION, f"secret {name!r} cannot be stored here", {"secret": name})
        self.store_secret(name, value)

    def secret_exists(self, name: str) -> bool:
        """Whether a credential is stored (no value is read, so no declaration is needed)."""
        if self.has_secret is None:
            raise RuntimeError("this context has no secret store attached")
        return self.has_secret(name)

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@contextlib.contextmanager
def _unrecorded_span(name: str, attributes: dict[str, AttributeValue]) -> Iterator[ChildSpan]:
    yield ChildSpan(name, attributes)


@dataclass
class RecordingContext(TaskContext):
    """A context that keeps what the handler reported in lists: for running a handler outside the
    engine (unit tests, the ``scopeflow`` CLI's dry runs). Nothing is exported anywhere."""

    recorded: dict[str, AttributeValue] = field(default_factory=dict)
    child_spans: list[ChildSpan] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.record_attributes = self.recorded.update
        self.open_span = self._open
        self.read_secret = self._read
        self.has_secret = self.secrets.__contains__

    @contextlib.contextmanager
    def _open(self, name: str, attributes: dict[str, AttributeValue]) -> Iterator[ChildSpan]:
        span = ChildSpan(name, attributes)
        self.child_spans.append(span)
        yield span

    def _read(self, name: str) -> str:
        from scopeflow.handlers.failures import CONFIGURATION, TaskFailure

        if name not in self.secrets:
            raise TaskFailure(CONFIGURATION, f"secret {name!r} is not set", {"secret": name})
        return self.secrets[name]
