"""What an instance page shows, computed from the store: element states, retries, the timeline,
the diagram XML, the latest task data and the report file.

Element states come from the spans (the evidence of record), the open human tasks, the timers and
the incident — never from deserializing the workflow — so the 2-second poll stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scopeflow.engine import versions
from scopeflow.engine.models import HumanTask, Instance, ModelVersion, SpanRow, Timer
from scopeflow.spans import semconv
from scopeflow.spans.record import SpanRecord

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


@dataclass
class TaskSpan:
    """The columns of a task span the instance page needs (not the whole stored record)."""

    span_id: str
    element_id: str
    name: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    event_names: list[str]


def task_spans(session: Session, instance_id: str) -> list[TaskSpan]:
    """The instance's BPMN task spans in chain order, read column-wise from the span table."""
    rows = session.execute(
        select(SpanRow.span_id, SpanRow.bpmn_element_id, SpanRow.name, SpanRow.start_ns, SpanRow.end_ns,
               SpanRow.status, SpanRow.attributes, SpanRow.events)
        .where(SpanRow.instance_id == instance_id, SpanRow.bpmn_element_id.is_not(None))
        .order_by(SpanRow.seq)
    ).all()
    spans = [TaskSpan(r.span_id, r.bpmn_element_id, r.name, r.start_ns, r.end_ns, r.status, r.attributes or {},
                      [e.get("name", "") for e in r.events or []]) for r in rows]
    return [s for s in spans if _is_task(s.attributes)]


def task_spans_of(records: list[SpanRecord]) -> list[TaskSpan]:
    """The same view over already loaded span records (the trace page has them in memory)."""
    return [TaskSpan(r.span_id, r.attributes[semconv.BPMN_ELEMENT_ID], r.name, r.start_ns, r.end_ns, r.status,
                     r.attributes, [e.name for e in r.events])
            for r in records if r.attributes.get(semconv.BPMN_ELEMENT_ID) and _is_task(r.attributes)]


def _is_task(attributes: dict[str, Any]) -> bool:
    return attributes.get(semconv.SPAN_TYPE, semconv.SPAN_TYPE_TASK) == semconv.SPAN_TYPE_TASK


def _retries(span: TaskSpan) -> int:
    from_events = span.event_names.count("retry")
    attempt = span.attributes.get(semconv.TASK_ATTEMPT)
    from_attempt = attempt - 1 if isinstance(attempt, int) and attempt > 1 else 0
    return max(from_events, from_attempt)


def element_states(session: Session, row: Instance, spans: list[TaskSpan]) -> dict[str, ElementState]:
    """bpmn element id → state, from task spans, open human tasks, timers and the incident."""
    states: dict[str, ElementState] = {}
    for span in spans:
        entry = states.setdefault(span.element_id, ElementState("completed", span_ids=[]))
        entry.runs += 1
        entry.retries += _retries(span)
        entry.span_ids.append(span.span_id)
        entry.state = "error" if span.status == "ERROR" else "completed"
    open_tasks = session.scalars(select(HumanTask.bpmn_id).where(HumanTask.instance_id == row.id,
                                                                 HumanTask.status == "open")).all()
    for bpmn_id in open_tasks:
        states.setdefault(bpmn_id, ElementState("active", span_ids=[])).state = "active"
    for bpmn_id in session.scalars(select(Timer.bpmn_id).where(Timer.instance_id == row.id)).all():
        states.setdefault(bpmn_id, ElementState("waiting", span_ids=[])).state = "waiting"
    if row.incident and row.incident.get("bpmn_id"):
        states.setdefault(row.incident["bpmn_id"], ElementState("error", span_ids=[])).state = "error"
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


def state_payload(session: Session, row: Instance, spans: list[TaskSpan]) -> dict[str, Any]:
    """The JSON the instance page polls: status, progress, mode, element states, timeline size."""
    states = element_states(session, row, spans)
    return {
        "id": row.id, "status": row.status, "progress": row.progress, "mode": row.mode,
        "progress_text": progress_text(row.status, row.progress),
        "incident": row.incident.get("message") if row.incident else None,
        "elements": {k: asdict(v) for k, v in states.items()},
        "steps": len(spans),
        "final": row.status in ("completed", "blocked", "cancelled"),
        "tasks": [{"id": t.id, "name": t.name, "status": t.status, "role": t.role, "completed_by": t.completed_by}
                  for t in session.scalars(select(HumanTask).where(HumanTask.instance_id == row.id)
                                           .order_by(HumanTask.created_at))],
    }


def progress_text(status: str, progress: int) -> str:
    """'77%' while it runs; an ended run says how it ended, and only a delivered one says 100%."""
    if status == "completed":
        return "100% · delivered"
    if status in ("blocked", "cancelled", "error"):
        return f"{status} at {progress}%"
    return f"{progress}%"


def diagram_xml(session: Session, row: Instance) -> str:
    """The BPMN XML of the model version the instance runs (from the stored bundle)."""
    version = session.get(ModelVersion, row.model_version_id)
    return version_diagram(version)


def version_diagram(version: ModelVersion | None) -> str:
    if version is None:
        return ""
    loaded = versions.load(version)
    process = loaded.catalog.processes.get(version.name)
    return version.files.get(process.file, "") if process else ""


def latest_data(row: Instance, spiff_task_id: str | None = None) -> dict[str, Any]:
    """The data of a task (by Spiff id) or of the workflow's last task; {} when the state is unreadable."""
    from uuid import UUID

    from scopeflow.engine.spiff import deserialize

    try:
        workflow = deserialize(row.state)
        task = workflow.get_task_from_id(UUID(spiff_task_id)) if spiff_task_id else workflow.last_task
    except Exception:  # a broken state row shows up as the instance's incident; the page stays usable
        return {}
    return dict(task.data) if task is not None else {}


def unwrap(value: Any, key: str) -> dict[str, Any]:
    """Operators return ``{key: {...}}`` into a variable of the same name; give the inner object."""
    if isinstance(value, dict) and isinstance(value.get(key), dict):
        return value[key]
    return value if isinstance(value, dict) else {}


def report(workspace: Path) -> tuple[str, str] | None:
    """(file name, markdown text) of DELIVERY.md or BLOCKERS.md in the workspace, if written."""
    for name in REPORT_FILES:
        path = workspace / name
        if path.is_file():
            return name, path.read_text(encoding="utf-8", errors="replace")
    return None
