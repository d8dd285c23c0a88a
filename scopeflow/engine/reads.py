"""The engine's read API for the CLI and the web UI: each function opens its own short session and
returns plain dicts (``engine/queries.py`` builds them from rows), so callers never hold an ORM row
or a session of their own. Unknown ids raise :class:`NotFound`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine import people, queries, versions
from scopeflow.engine.errors import NotFound
from scopeflow.engine.models import HumanTask, Instance, ModelVersion, Timer
from scopeflow.engine.spanstore import load_spans
from scopeflow.engine.spiff import deserialize

Sessions = sessionmaker[Session]


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


def last_task_data(sessions: Sessions, instance_id: str) -> dict[str, Any]:
    """A copy of the data of the task the instance ran last (not redacted: the caller is the
    submitter's own headless run). ``{}`` for a state that cannot be read: a corrupt state row is
    reported by the instance's status and incident, and the caller's summary stays partial."""
    with sessions() as session:
        state = _instance_row(session, instance_id).state
    try:
        task = deserialize(state).last_task
    except Exception:
        return {}
    return dict(task.data) if task is not None else {}


def stored_spans(sessions: Sessions, instance_id: str) -> list:
    """The instance's checkpointed span records, in stored order (an imported trace's too)."""
    with sessions() as session:
        return load_spans(session, instance_id)


def instances_page(sessions: Sessions, *, status: str | None = None, model: str | None = None, limit: int = 50,
                   offset: int = 0, owner: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of instance summaries, newest first, and the total (see ``queries.list_instances``)."""
    with sessions() as session:
        return queries.list_instances(session, status=status, model=model, limit=limit, offset=offset, owner=owner)


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
        row = session.get(HumanTask, task_id)
        if row is None:
            raise NotFound(f"unknown task {task_id}")
        return queries.task_detail(row)


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


def _instance_row(session: Session, instance_id: str) -> Instance:
    row = session.get(Instance, instance_id)
    if row is None:
        raise NotFound(f"unknown instance {instance_id}")
    return row


__all__ = ["accounts_for", "deployed_models", "earlier_task_ids", "instance", "instance_detail", "instance_titles",
           "instances_page", "last_task_data", "latest_versions", "pending_timers", "stored_spans", "task", "tasks"]
