"""The engine's read API for the CLI and the web UI: each function opens its own short session and
returns plain dicts (``engine/queries.py`` builds them from rows) or frozen dataclasses, so callers
never hold an ORM row or a session of their own. Unknown ids raise :class:`NotFound`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, sessionmaker

from scopeflow.engine import people, queries, versions
from scopeflow.engine.errors import NotFound
from scopeflow.engine.models import AuditEvent, HumanTask, Instance, ModelVersion, SpanRow, Timer
from scopeflow.engine.spanstore import load_chain, load_spans
from scopeflow.engine.spiff import deserialize
from scopeflow.processes.catalog import evidence_path
from scopeflow.spans import semconv
from scopeflow.spans.integrity import ChainRow
from scopeflow.spans.record import SpanRecord

Sessions = sessionmaker[Session]


@dataclass(frozen=True)
class InstanceRecord:
    """An instance's columns as the pages show them (times stay datetimes; no state, no lease)."""

    id: str
    model_name: str
    model_version: int
    model_version_id: str
    status: str
    title: str
    mode: str
    progress: int
    incident: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class TaskRecord:
    """A human task's columns, and who started its instance (for the viewer's ownership check)."""

    id: str
    instance_id: str
    spiff_task_id: str
    bpmn_id: str
    name: str
    lane: str
    role: str
    form: str
    form_schema: dict[str, Any]
    instructions: str
    status: str
    assignee: str | None
    due_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    data: dict[str, Any]
    instance_created_by: str


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Activity:
    """What waits in an instance besides its spans: open human tasks' and pending timers' BPMN ids,
    and every human task (id, name, status, role, completed_by) oldest first."""

    open_task_elements: list[str]
    timer_elements: list[str]
    tasks: list[dict[str, Any]]


@dataclass(frozen=True)
class StoredVersion:
    """One stored model version: its bundle's files (relative path → text) and their hash."""

    id: str
    name: str
    version: int
    content_hash: str
    files: dict[str, str]
    created_at: datetime


def instance(sessions: Sessions, instance_id: str, *, open_tasks: bool = False) -> dict[str, Any]:
    """The instance's summary (``queries.instance_summary``), with its open tasks if asked."""
    with sessions() as session:
        out = queries.instance_summary(_instance_row(session, instance_id))
        if open_tasks:
            out["tasks"] = queries.list_tasks(session, instance_id=instance_id)
    return out


def instance_detail(sessions: Sessions, instance_id: str) -> dict[str, Any]:
    """:func:`instance` plus every human task (open or not), pending timers and the audit trail."""
    with sessions() as session:
        row = _instance_row(session, instance_id)
        out = queries.instance_summary(row)
        out["tasks"] = queries.list_tasks(session, instance_id=instance_id, status=None)
        out["timers"] = queries.timers(session, instance_id)
        out["audit"] = queries.audit_events(session, instance_id)
        out["outcome"] = row.outcome
    return out


def instance_record(sessions: Sessions, instance_id: str) -> InstanceRecord:
    """The instance's columns (see :class:`InstanceRecord`); the serialized state is not read (the
    instance page polls this every 2 seconds)."""
    with sessions() as session:
        row = session.get(Instance, instance_id, options=[defer(Instance.state)])
        if row is None:
            raise NotFound(f"unknown instance {instance_id}")
        return InstanceRecord(row.id, row.model_name, row.model_version, row.model_version_id, row.status,
                              row.title, row.mode, row.progress, row.incident, row.created_by, row.created_at,
                              row.updated_at, row.ended_at)


def last_task_data(sessions: Sessions, instance_id: str, spiff_task_id: str | None = None) -> dict[str, Any]:
    """A copy of the data of the task the instance ran last, or of the task with that Spiff id (not
    redacted: the callers are the submitter's own run and the people deciding its tasks). ``{}`` for
    a state that cannot be read: a corrupt state row is reported by the instance's status and
    incident, and the caller's page or summary stays usable."""
    with sessions() as session:
        state = _instance_row(session, instance_id).state
    try:
        workflow = deserialize(state)
        task = workflow.get_task_from_id(UUID(spiff_task_id)) if spiff_task_id else workflow.last_task
    except Exception:
        return {}
    return dict(task.data) if task is not None else {}


def cancelled_by(sessions: Sessions, instance_id: str) -> dict[str, Any] | None:
    """Who cancelled the instance last and when (``{"actor", "at"}``, from the audit log), or None."""
    with sessions() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.instance_id == instance_id,
                                                        AuditEvent.action == "instance.cancel")
                               .order_by(AuditEvent.id.desc()).limit(1))
        return {"actor": event.actor, "at": event.at} if event else None


def task_spans(sessions: Sessions, instance_id: str) -> list[TaskSpan]:
    """The instance's BPMN task spans in chain order, read column-wise from the span table (the
    instance page's 2-second poll reads these, not whole span records)."""
    with sessions() as session:
        rows = session.execute(
            select(SpanRow.span_id, SpanRow.bpmn_element_id, SpanRow.name, SpanRow.start_ns, SpanRow.end_ns,
                   SpanRow.status, SpanRow.attributes, SpanRow.events)
            .where(SpanRow.instance_id == instance_id, SpanRow.bpmn_element_id.is_not(None))
            .order_by(SpanRow.seq)
        ).all()
    spans = [TaskSpan(r.span_id, r.bpmn_element_id, r.name, r.start_ns, r.end_ns, r.status, r.attributes or {},
                      [e.get("name", "") for e in r.events or []]) for r in rows]
    return [s for s in spans if is_task_span(s.attributes)]


def task_spans_of(records: list[SpanRecord]) -> list[TaskSpan]:
    """The same view over already loaded span records (the trace page has them in memory)."""
    return [TaskSpan(r.span_id, r.attributes[semconv.BPMN_ELEMENT_ID], r.name, r.start_ns, r.end_ns, r.status,
                     r.attributes, [e.name for e in r.events])
            for r in records if r.attributes.get(semconv.BPMN_ELEMENT_ID) and is_task_span(r.attributes)]


def is_task_span(attributes: dict[str, Any]) -> bool:
    """A BPMN task's span (not an advance's or a handler's)."""
    return attributes.get(semconv.SPAN_TYPE, semconv.SPAN_TYPE_TASK) == semconv.SPAN_TYPE_TASK


def activity(sessions: Sessions, instance_id: str) -> Activity:
    """The instance's open human tasks, pending timers and task list (see :class:`Activity`)."""
    with sessions() as session:
        open_tasks = session.scalars(select(HumanTask.bpmn_id).where(HumanTask.instance_id == instance_id,
                                                                     HumanTask.status == "open")).all()
        timers = session.scalars(select(Timer.bpmn_id).where(Timer.instance_id == instance_id)).all()
        tasks = [{"id": t.id, "name": t.name, "status": t.status, "role": t.role, "completed_by": t.completed_by}
                 for t in session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)
                                          .order_by(HumanTask.created_at))]
    return Activity(list(open_tasks), list(timers), tasks)


def span_chain(sessions: Sessions, instance_id: str) -> list[ChainRow]:
    """The instance's stored span chain (records with their hashes), in chain order; [] for none."""
    with sessions() as session:
        return load_chain(session, instance_id)


def stored_spans(sessions: Sessions, instance_id: str) -> list:
    """The instance's checkpointed span records, in stored order (an imported trace's too)."""
    with sessions() as session:
        return load_spans(session, instance_id)


def instances_page(sessions: Sessions, *, status: str | None = None, model: str | None = None, limit: int = 50,
                   offset: int = 0, owner: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of instance summaries, newest first, and the total (see ``queries.list_instances``)."""
    with sessions() as session:
        return queries.list_instances(session, status=status, model=model, limit=limit, offset=offset, owner=owner)


def run_history(sessions: Sessions, model: str | None = None) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """Every instance (of ``model`` when given) as ``{"id", "model", "status", "created_at",
    "ended_at"}`` (datetimes), and instance id → its stored span records: what ``scopeflow stats``
    computes its figures from."""
    with sessions() as session:
        query = select(Instance.id, Instance.model_name, Instance.status, Instance.created_at, Instance.ended_at)
        if model:
            query = query.where(Instance.model_name == model)
        rows = [{"id": r[0], "model": r[1], "status": r[2], "created_at": r[3], "ended_at": r[4]}
                for r in session.execute(query)]
        return rows, {row["id"]: load_spans(session, row["id"]) for row in rows}


def instance_titles(sessions: Sessions, instance_ids: Iterable[str]) -> dict[str, str]:
    """instance id → title, for the given ids (unknown ids are left out)."""
    with sessions() as session:
        return dict(session.execute(select(Instance.id, Instance.title).where(Instance.id.in_(set(instance_ids)))).all())


def pending_timers(sessions: Sessions, instance_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """instance id → its pending timers as ``{"bpmn_id", "due_at"}`` (a datetime), earliest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    with sessions() as session:
        rows = session.scalars(select(Timer).where(Timer.instance_id.in_(set(instance_ids))).order_by(Timer.due_at))
        for timer in rows:
            found.setdefault(timer.instance_id, []).append({"bpmn_id": timer.bpmn_id, "due_at": timer.due_at})
    return found


def tasks(sessions: Sessions, *, status: str | None = "open", instance_id: str | None = None,
          roles: list[str] | None = None, limit: int = 100, owner: str | None = None) -> list[dict[str, Any]]:
    """Human task summaries, oldest first (see ``queries.list_tasks``)."""
    with sessions() as session:
        return queries.list_tasks(session, status=status, instance_id=instance_id, roles=roles, limit=limit,
                                  owner=owner)


def task(sessions: Sessions, task_id: str) -> dict[str, Any]:
    """The task's summary with its instructions, form schema and submitted data."""
    with sessions() as session:
        return queries.task_detail(_task_row(session, task_id))


def task_record(sessions: Sessions, task_id: str) -> TaskRecord:
    """The task's columns and its instance's starter (see :class:`TaskRecord`)."""
    with sessions() as session:
        row = _task_row(session, task_id)
        owner = session.scalar(select(Instance.created_by).where(Instance.id == row.instance_id)) or ""
        return TaskRecord(row.id, row.instance_id, row.spiff_task_id, row.bpmn_id, row.name, row.lane, row.role,
                          row.form, row.form_schema or {}, row.instructions, row.status, row.assignee, row.due_at,
                          row.created_at, row.completed_at, row.completed_by, row.data, owner)


def earlier_task_ids(sessions: Sessions, instance_id: str, form: str, before: datetime) -> list[str]:
    """Ids of the instance's tasks on ``form`` created before ``before``, newest first (earlier rounds
    of the same review)."""
    with sessions() as session:
        return list(session.scalars(select(HumanTask.id).where(
            HumanTask.instance_id == instance_id, HumanTask.form == form,
            HumanTask.created_at < before).order_by(HumanTask.created_at.desc())).all())


def accounts_for(sessions: Sessions, role: str) -> list[str]:
    """Names of the accounts the engine would accept for a task of ``role`` (``people.accounts_for``)."""
    with sessions() as session:
        return people.accounts_for(session, role)


def deployed_models(sessions: Sessions) -> list[str]:
    """Names of the models with at least one stored version, sorted."""
    with sessions() as session:
        return sorted(session.scalars(select(ModelVersion.name).distinct()).all())


def latest_versions(sessions: Sessions, names: Iterable[str]) -> dict[str, int | None]:
    """model name → its newest stored version number (None when never deployed)."""
    with sessions() as session:
        out = {}
        for name in names:
            row = versions.latest_version(session, name)
            out[name] = row.version if row else None
        return out


def model_versions(sessions: Sessions, *, newest_first: bool = False) -> list[dict[str, Any]]:
    """Every stored version as ``{"name", "version", "content_hash", "created_at"}`` (a datetime), by
    name, then by version (newest first when asked)."""
    order = ModelVersion.version.desc() if newest_first else ModelVersion.version
    with sessions() as session:
        rows = session.execute(select(ModelVersion.name, ModelVersion.version, ModelVersion.content_hash,
                                      ModelVersion.created_at).order_by(ModelVersion.name, order)).all()
    return [{"name": r.name, "version": r.version, "content_hash": r.content_hash, "created_at": r.created_at}
            for r in rows]


def version_numbers(sessions: Sessions, name: str) -> list[int]:
    """The stored version numbers of model ``name``, newest first."""
    with sessions() as session:
        return list(session.scalars(select(ModelVersion.version).where(ModelVersion.name == name)
                                    .order_by(ModelVersion.version.desc())).all())


def model_version(sessions: Sessions, name: str, number: int | None) -> StoredVersion:
    """Version ``number`` of model ``name`` (NotFound when it is not stored)."""
    with sessions() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == number))
        if row is None:
            raise NotFound(f"unknown model version {name} v{number}")
        return _stored(row)


def version_by_id(sessions: Sessions, version_id: str) -> StoredVersion:
    """The stored version with that id (an instance's ``model_version_id``)."""
    with sessions() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise NotFound(f"unknown model version {version_id}")
        return _stored(row)


def main_file(version: StoredVersion) -> str:
    """The bundle file that defines the version's own process ('' when none does)."""
    process = versions.load(version).catalog.processes.get(version.name)
    return process.file if process else ""


def diagram_xml(sessions: Sessions, version_id: str) -> str:
    """The BPMN XML of a stored version's own process ('' for an unknown version)."""
    return _file_beside_main(sessions, version_id, lambda main: main)


def evidence_rules(sessions: Sessions, version_id: str) -> str:
    """The ``*.evidence.toml`` stored with a model version ('' when it has none or is unknown)."""
    return _file_beside_main(sessions, version_id, evidence_path)


def _file_beside_main(sessions: Sessions, version_id: str, path_of: Callable[[str], str]) -> str:
    """The stored file at ``path_of(<the version's main file>)``; '' when any of them is missing."""
    try:
        version = version_by_id(sessions, version_id)
    except NotFound:
        return ""
    path = main_file(version)
    return version.files.get(path_of(path), "") if path else ""


def _stored(row: ModelVersion) -> StoredVersion:
    return StoredVersion(row.id, row.name, row.version, row.content_hash, dict(row.files), row.created_at)


def _task_row(session: Session, task_id: str) -> HumanTask:
    row = session.get(HumanTask, task_id)
    if row is None:
        raise NotFound(f"unknown task {task_id}")
    return row


def _instance_row(session: Session, instance_id: str) -> Instance:
    row = session.get(Instance, instance_id)
    if row is None:
        raise NotFound(f"unknown instance {instance_id}")
    return row


__all__ = ["Activity", "ChainRow", "InstanceRecord", "StoredVersion", "TaskRecord", "TaskSpan", "accounts_for", "activity",
           "cancelled_by", "deployed_models", "diagram_xml", "earlier_task_ids", "evidence_rules", "instance",
           "instance_detail", "instance_record", "instance_titles", "instances_page", "is_task_span",
           "last_task_data", "latest_versions", "main_file", "model_version", "model_versions", "pending_timers",
           "run_history", "span_chain", "stored_spans", "task", "task_record", "task_spans", "task_spans_of", "tasks",
           "version_by_id", "version_numbers"]
