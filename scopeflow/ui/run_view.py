"""What an instance page shows, computed from what ``engine/reads.py`` returns: element states,
retries, the timeline, and the report file.

Element states come from the spans (the evidence of record), the open human tasks, the timers and
the incident — never from deserializing the workflow — so the 2-second poll stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scopeflow.engine.reads import Activity, InstanceRecord, TaskSpan
from scopeflow.spans import semconv

REPORT_FILES = ("DELIVERY.md", "BLOCKERS.md")


@dataclass
class ElementState:
    """How one BPMN element stands: completed / active / error / waiting, plus its retry count."""

    state: str
    runs: int = 0
    retries: int = 0
    span_ids: list[str] | None = None


@dataclass
class Step:
    """One task run on the timeline."""

    span_id: str
    element_id: str
    name: str
    start_ns: int
    duration_ns: int
    status: str
    outcome: str
    attempt: int
    item: str = ""       # what tells repeated runs of one element apart (a multi-instance's item)


def _retries(span: TaskSpan) -> int:
    from_events = span.event_names.count("retry")
    attempt = span.attributes.get(semconv.TASK_ATTEMPT)
    from_attempt = attempt - 1 if isinstance(attempt, int) and attempt > 1 else 0
    return max(from_events, from_attempt)


def element_states(activity: Activity, incident: dict[str, Any] | None,
                   spans: list[TaskSpan]) -> dict[str, ElementState]:
    """bpmn element id → state, from task spans, open human tasks, timers and the incident."""
    states: dict[str, ElementState] = {}
    for span in spans:
        entry = states.setdefault(span.element_id, ElementState("completed", span_ids=[]))
        entry.runs += 1
        entry.retries += _retries(span)
        entry.span_ids.append(span.span_id)
        entry.state = "error" if span.status == "ERROR" else "completed"
    for bpmn_id in activity.open_task_elements:
        states.setdefault(bpmn_id, ElementState("active", span_ids=[])).state = "active"
    for bpmn_id in activity.timer_elements:
        states.setdefault(bpmn_id, ElementState("waiting", span_ids=[])).state = "waiting"
    if incident and incident.get("bpmn_id"):
        states.setdefault(incident["bpmn_id"], ElementState("error", span_ids=[])).state = "error"
    return states


_NOT_ITEM_KEYS = {semconv.TASK_ATTEMPT, semconv.TASK_OUTCOME, semconv.TASK_ID}


def distinguishing_labels(groups: list[list[tuple[str, dict[str, Any]]]]) -> dict[str, str]:
    """span id → 'task: app-core' for each group of repeated runs (span id, attributes) that differ
    in a text attribute: the first such attribute, so the children of a multi-instance say which
    item each one handled instead of repeating one name ten times."""
    labels: dict[str, str] = {}
    for group in groups:
        if len(group) < 2:
            continue
        values: dict[str, dict[str, str]] = {}       # key → span id → its text value
        for sid, attrs in group:
            for key, value in attrs.items():
                if isinstance(value, str) and key not in _NOT_ITEM_KEYS:
                    values.setdefault(key, {})[sid] = value
        telling = [k for k, seen in values.items() if len(set(seen.values())) > 1]
        if telling:   # the key with the most distinct values (the multi-instance's own span lacks it)
            key = max(sorted(telling), key=lambda k: (len(set(values[k].values())), len(values[k])))
            labels.update({sid: f"{key.rsplit('.', 1)[-1]}: {value}" for sid, value in values[key].items()})
    return labels


def item_labels(spans: list[TaskSpan]) -> dict[str, str]:
    """Labels for the runs of each element (see ``distinguishing_labels``)."""
    by_element: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for span in spans:
        by_element.setdefault(span.element_id, []).append((span.span_id, span.attributes))
    return distinguishing_labels(list(by_element.values()))


def timeline(spans: list[TaskSpan]) -> list[Step]:
    """Task runs in start order (advance and handler spans are left to the trace view)."""
    steps = []
    items = item_labels(spans)
    for span in sorted(spans, key=lambda s: s.start_ns):
        attempt = span.attributes.get(semconv.TASK_ATTEMPT, 1)
        steps.append(Step(span.span_id, span.element_id, span.name, span.start_ns, span.end_ns - span.start_ns,
                          span.status, str(span.attributes.get(semconv.TASK_OUTCOME, "")),
                          attempt if isinstance(attempt, int) else 1, items.get(span.span_id, "")))
    return steps


def state_payload(row: InstanceRecord, activity: Activity, spans: list[TaskSpan]) -> dict[str, Any]:
    """The JSON the instance page polls: status, progress, mode, element states, timeline size."""
    states = element_states(activity, row.incident, spans)
    return {
        "id": row.id, "status": row.status, "progress": row.progress, "mode": row.mode,
        "progress_text": progress_text(row.status, row.progress),
        "incident": row.incident.get("message") if row.incident else None,
        "elements": {k: asdict(v) for k, v in states.items()},
        "steps": len(spans),
        "final": row.status in ("completed", "blocked", "cancelled"),
        "tasks": activity.tasks,
    }


def progress_text(status: str, progress: int) -> str:
    """'77%' while it runs; an ended run says how it ended, and only a delivered one says 100%."""
    if status == "completed":
        return "100% · delivered"
    if status in ("blocked", "cancelled", "error"):
        return f"{status} at {progress}%"
    return f"{progress}%"


def report(workspace: Path) -> tuple[str, str] | None:
    """(file name, markdown text) of DELIVERY.md or BLOCKERS.md in the workspace, if written."""
    for name in REPORT_FILES:
        path = workspace / name
        if path.is_file():
            return name, path.read_text(encoding="utf-8", errors="replace")
    return None
