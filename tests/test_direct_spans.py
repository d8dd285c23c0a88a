"""Task spans recorded without the OpenTelemetry SDK store exactly what the SDK path stores.

Without an OTLP endpoint the engine records task spans directly (``spans/direct.py``); with one it
goes through the SDK so the collector sees them. The evidence must not depend on which.
"""

from __future__ import annotations

import pytest

from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.spans.tracing import Telemetry
from tests.conftest import make_settings

VOLATILE = {"scopeflow.instance.id", "scopeflow.task.id", "session.id"}   # ids differ between the two runs


def _shape(engine: Engine, instance_id: str) -> list[tuple]:
    with engine.sessions() as session:
        spans = load_spans(session, instance_id)
    by_id = {s.span_id: s for s in spans}
    return sorted(
        (s.name if s.attributes.get("scopeflow.span.type") != "advance" else "advance",
         _parent_kind(by_id, s), s.kind, s.status,
         s.status_message, tuple(sorted((k, str(v)) for k, v in s.attributes.items() if k not in VOLATILE)),
         tuple(e.name for e in s.events))
        for s in spans)


def _parent_kind(by_id: dict, span) -> str | None:
    parent = by_id.get(span.parent_span_id)
    if parent is None:
        return None
    return parent.attributes.get("scopeflow.span.type") if parent.attributes.get("scopeflow.span.type") == "advance" \
        else parent.name


def _run(tmp_path, name: str, direct: bool, model: str, data: dict, monkeypatch) -> tuple[Engine, str]:
    telemetry = Telemetry()
    monkeypatch.setattr(Telemetry, "direct_task_spans", property(lambda self: direct))
    engine = Engine(make_settings(tmp_path / name), telemetry_=telemetry)
    instance_id = engine.start(model, data)
    assert engine.verify_chain(instance_id).ok
    with engine.sessions() as session:
        spans = load_spans(session, instance_id)
    assert all(s.attributes["session.id"] == instance_id for s in spans), "every span names its session"
    return engine, instance_id


@pytest.mark.parametrize(("model", "data"), [
    ("hello", {}),
    ("failures", {"failure_kind": "recoverable", "flaky_failures": 1}),
    ("failures", {"failure_kind": "transient"}),
])
def test_direct_task_spans_store_what_the_sdk_stores(tmp_path, monkeypatch, model, data):
    direct = _run(tmp_path, "direct", True, model, data, monkeypatch)
    sdk = _run(tmp_path, "sdk", False, model, data, monkeypatch)
    assert _shape(*direct) == _shape(*sdk)
    assert len(_shape(*direct)) > 2


@pytest.mark.parametrize("direct", [True, False])
def test_advance_spans_are_roots_of_new_traces_linked_to_the_previous_advance(tmp_path, monkeypatch, direct):
    """The advance span is recorded directly too (no OTLP endpoint) or through the SDK: either way
    each advance is the root of its own trace, linked to the advance before it."""
    from tests.conftest import add_account
    from tests.test_engine import open_tasks

    monkeypatch.setattr(Telemetry, "direct_task_spans", property(lambda self: direct))
    engine = Engine(make_settings(tmp_path / "home"), telemetry_=Telemetry())
    add_account(engine, "rita", "reviewer")
    instance_id = engine.start("approval", {"requester": "ann"})
    [task] = open_tasks(engine, instance_id)
    engine.complete_task(task.id, {"decision": "approve"}, actor="rita")
    assert engine.verify_chain(instance_id).ok
    with engine.sessions() as session:
        spans = load_spans(session, instance_id)
    first, second = sorted((s for s in spans if s.attributes.get("scopeflow.span.type") == "advance"),
                           key=lambda s: s.start_ns)
    assert first.parent_span_id is None and second.parent_span_id is None and first.trace_id != second.trace_id
    assert [(lk.trace_id, lk.span_id, lk.attributes) for lk in second.links] == \
        [(first.trace_id, first.span_id, {"scopeflow.link.reason": "resume"})]
    children = [s for s in spans if s.parent_span_id in (first.span_id, second.span_id)]
    assert {s.trace_id for s in children} <= {first.trace_id, second.trace_id} and len(children) >= 3
    assert all(int(s.span_id, 16) and int(s.trace_id, 16) for s in spans), "no all-zero ids"
