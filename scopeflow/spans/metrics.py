"""Product metrics computed from the evidence itself: what users judge the suite by.

Per model: instance counts by outcome, time to delivery, retries and regenerations per instance,
and how long each human gate waited. Everything is derived from instance rows and stored spans,
so the figures are as trustworthy as the evidence.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scopeflow.spans.record import SpanRecord


@dataclass
class ModelStats:
    model: str
    instances: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    delivery_seconds_p50: float | None = None
    delivery_seconds_max: float | None = None
    retries_per_instance: float = 0.0
    regenerations_per_instance: float = 0.0
    human_wait_seconds: dict[str, dict[str, float]] = field(default_factory=dict)   # gate → p50/max/count


def compute(instances: list[dict[str, Any]], spans_by_instance: dict[str, list[SpanRecord]]) -> list[ModelStats]:
    """``instances``: dicts with id, model, status, created_at/ended_at (datetimes or None)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in instances:
        grouped[row["model"]].append(row)
    return [_model_stats(model, rows, spans_by_instance) for model, rows in sorted(grouped.items())]


def _model_stats(model: str, rows: list[dict[str, Any]], spans_by_instance: dict[str, list[SpanRecord]]) -> ModelStats:
    stats = ModelStats(model=model, instances=len(rows))
    for row in rows:
        stats.by_status[row["status"]] = stats.by_status.get(row["status"], 0) + 1
    durations = [(r["ended_at"] - r["created_at"]).total_seconds() for r in rows
                 if r["status"] == "completed" and r.get("ended_at")]
    if durations:
        stats.delivery_seconds_p50 = round(statistics.median(durations), 3)
        stats.delivery_seconds_max = round(max(durations), 3)
    retries = regenerations = 0
    waits: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for span in spans_by_instance.get(row["id"], []):
            retries += sum(1 for event in span.events if event.name == "retry")
            if span.attributes.get("scopeflow.failure.kind") == "recoverable":
                regenerations += 1
            if span.attributes.get("scopeflow.human.actor"):
                gate = str(span.attributes.get("scopeflow.bpmn.element.id", span.name))
                waits[gate].append(span.duration_ns / 1e9)
    stats.retries_per_instance = round(retries / len(rows), 3) if rows else 0.0
    stats.regenerations_per_instance = round(regenerations / len(rows), 3) if rows else 0.0
    stats.human_wait_seconds = {
        gate: {"p50": round(statistics.median(values), 3), "max": round(max(values), 3), "count": len(values)}
        for gate, values in sorted(waits.items())}
    return stats
