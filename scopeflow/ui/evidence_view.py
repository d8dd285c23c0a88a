"""The auditor's figures for one instance: spans as a waterfall, the evidence report and the
integrity check — the same functions the CLI's ``evidence`` and ``trace`` commands use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scopeflow import __version__
from scopeflow.engine import reads
from scopeflow.engine.reads import ChainRow, InstanceRecord
from scopeflow.spans.evidence import EvidenceReport, evaluate
from scopeflow.spans.integrity import ChainReport, verify_chain
from scopeflow.spans.otlp_json import to_otlp_json
from scopeflow.spans.record import SpanRecord
from scopeflow.spans.rules import RuleError, parse_rules
from scopeflow.ui.run_view import distinguishing_labels


@dataclass
class WaterfallRow:
    """One span placed on the instance's time axis (percentages of the whole run)."""

    span: SpanRecord
    depth: int
    left_pct: float
    width_pct: float


def waterfall(spans: list[SpanRecord]) -> list[WaterfallRow]:
    """Spans in start order, indented under their parents, positioned on one shared time axis."""
    if not spans:
        return []
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    parents = {s.span_id: s.parent_span_id for s in spans}
    depth_cache: dict[str, int] = {}

    def depth(span_id: str) -> int:
        seen, current, level = set(), parents.get(span_id), 0
        while current and current in parents and current not in seen:
            if current in depth_cache:
                level += depth_cache[current] + 1
                break
            seen.add(current)
            level += 1
            current = parents.get(current)
        depth_cache[span_id] = level
        return level

    return [WaterfallRow(s, min(depth(s.span_id), 12), 100.0 * (s.start_ns - start) / total,
                         max(0.2, 100.0 * s.duration_ns / total))
            for s in sorted(spans, key=lambda s: (s.start_ns, s.seq))]


@dataclass
class TraceGroup:
    """One trace of the instance (one advance of the engine) on its own time axis."""

    number: int
    trace_id: str
    label: str                            # the root span's name
    start_ns: int
    duration_ns: int
    rows: list[WaterfallRow]
    ticks: list[tuple[float, int]]        # (percent of the axis, nanoseconds since the trace start)
    item_labels: dict[str, str]           # span id → what tells multi-instance siblings apart


AXIS_TICKS = 5


def traces(spans: list[SpanRecord]) -> list[TraceGroup]:
    """The spans split by trace, in start order, each trace positioned on its own time axis
    (an instance's traces are hours apart when people decide in between; one shared axis would
    squeeze each into a sliver)."""
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    groups = []
    ordered = sorted(by_trace.items(), key=lambda item: min(s.start_ns for s in item[1]))
    for number, (trace_id, members) in enumerate(ordered, start=1):
        start = min(s.start_ns for s in members)
        duration = max(max(s.end_ns for s in members) - start, 1)
        ids = {s.span_id for s in members}
        root = min((s for s in members if s.parent_span_id not in ids), key=lambda s: s.start_ns, default=members[0])
        ticks = [(100.0 * i / (AXIS_TICKS - 1), duration * i // (AXIS_TICKS - 1)) for i in range(AXIS_TICKS)]
        groups.append(TraceGroup(number, trace_id, root.name, start, duration, waterfall(members), ticks,
                                 item_labels(members)))
    return groups


def item_labels(spans: list[SpanRecord]) -> dict[str, str]:
    """Labels for same-named siblings under one parent (multi-instance children such as ten
    "Build each plan task" runs): the attribute that tells them apart, e.g. the plan task built."""
    siblings: dict[tuple[str | None, str], list[tuple[str, dict[str, Any]]]] = {}
    for span in spans:
        siblings.setdefault((span.parent_span_id, span.name), []).append((span.span_id, span.attributes))
    return distinguishing_labels(list(siblings.values()))


def span_details(spans: list[SpanRecord]) -> dict[str, dict[str, Any]]:
    """span id → what the waterfall's detail panel shows (rendered by trace.js, as text)."""
    return {s.span_id: {"trace_id": s.trace_id, "parent_span_id": s.parent_span_id, "status": s.status,
                        "start": _utc(s.start_ns), "end": _utc(s.end_ns),
                        "status_message": s.status_message, "kind": s.kind, "attributes": s.attributes,
                        "events": [{"name": e.name, "attributes": e.attributes} for e in s.events],
                        "links": [{"trace_id": lk.trace_id, "span_id": lk.span_id, "attributes": lk.attributes}
                                  for lk in s.links]}
            for s in spans}


def _utc(ns: int) -> str:
    """Nanoseconds since the epoch as an ISO 8601 UTC time with microseconds."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class HeadCheck:
    """Where a chain head quoted elsewhere (e.g. in DELIVERY.md) sits in the stored chain."""

    head: str
    position: int | None           # seq of the link with that hash; None when it is not a link
    count: int
    chain_ok: bool

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.position is not None


def check_head(rows: list[ChainRow], instance_id: str, head: str, key: bytes) -> HeadCheck:
    """Recompute the chain (``rows``, the instance's stored chain) and find ``head`` among its links:
    a report quotes the head as it was when written, and spans recorded after it extend the chain,
    so a match at link N of M with an intact chain means nothing up to that report was changed."""
    report = verify_chain(rows, instance_id, key=key)
    head = head.strip().lower()
    position = next((row.seq for row in rows if row.link_hash == head), None)
    return HeadCheck(head, position, report.count, report.ok)


def evidence_stage(status: str) -> str:
    """Which rules are due for an instance in ``status``: all of them once it completed, else those
    due at the deploy gate (an instance still on its way cannot have deployed yet, so final rules
    would fail empty)."""
    return "final" if status == "completed" else "deploy"


def evidence(rules_text: str, spans: list[SpanRecord], stage: str | None = None) -> tuple[EvidenceReport | None, str]:
    """(report, '') or (None, why) when the model has no rules or they do not parse."""
    if not rules_text:
        return None, "this model version has no evidence rules"
    try:
        rules = parse_rules(rules_text, "evidence rules")
    except RuleError as exc:
        return None, f"the evidence rules do not parse: {exc}"
    return evaluate(rules, spans, stage=stage), ""


def stored_trace(chain: list[ChainRow], instance_id: str, key: bytes) -> tuple[list[SpanRecord], ChainReport]:
    """The stored spans (the evidence of record) and their chain check (under the chain ``key``),
    from one read of the table (``reads.span_chain``)."""
    return [row.span for row in chain], verify_chain(chain, instance_id, key=key)


def otlp_document(spans: list[SpanRecord]) -> dict[str, Any]:
    return to_otlp_json(spans, {"service.name": "scopeflow", "service.version": __version__})


def evidence_payload(engine: Any, row: InstanceRecord) -> dict:
    """What the evidence API and export return for an instance the viewer may see: the report due so
    far (over the spans recorded, buffered ones included), and the chain check."""
    rules_text = reads.evidence_rules(engine.sessions, row.model_version_id)
    chain = engine.verify_chain(row.id)
    report, why = evidence(rules_text, engine.recorded_spans(row.id), evidence_stage(row.status))
    return {"instance_id": row.id, "evidence": report.to_data() if report else None,
            "problem": why, "integrity": chain.__dict__}
