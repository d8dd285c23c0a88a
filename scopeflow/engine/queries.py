"""Read-side queries the CLI and UI share: instances, human tasks, spans, audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scopeflow.engine.models import AuditEvent, HumanTask, Instance, Timer


def instance_summary(row: Instance) -> dict[str, Any]:
    return {
        "id": row.id, "model": row.model_name, "version": row.model_version, "status": row.status,
        "title": row.title, "mode": row.mode, "progress": row.progress,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "incident": ({k: v for k, v in row.incident.items() if k != "traceback"} if row.incident else None),
        "wake_at": row.wake_at.isoformat() if row.wake_at else None,
    }


def list_instances(session: Session, *, status: str | None = None, model: str | None = None,
                   limit: int = 50, offset: int = 0, owner: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of instances, newest first, and the total; ``owner``: only those that user started."""
    query = select(Instance)
    count = select(func.count()).select_from(Instance)
    if owner is not None:
        query, count = query.where(Instance.created_by == owner), count.where(Instance.created_by == owner)
    if status:
        query, count = query.where(Instance.status == status), count.where(Instance.status == status)
    if model:
        query, count = query.where(Instance.model_name == model), count.where(Instance.model_name == model)
    rows = session.scalars(query.order_by(Instance.created_at.desc()).limit(limit).offset(offset)).all()
    return [instance_summary(r) for r in rows], session.scalar(count) or 0


def task_summary(row: HumanTask) -> dict[str, Any]:
    return {
        "id": row.id, "instance_id": row.instance_id, "bpmn_id": row.bpmn_id, "name": row.name,
        "lane": row.lane, "role": row.role, "form": row.form, "status": row.status,
        "assignee": row.assignee, "due_at": row.due_at.isoformat() if row.due_at else None,
        "created_at": row.created_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "completed_by": row.completed_by,
    }


def list_tasks(session: Session, *, status: str | None = "open", instance_id: str | None = None,
               roles: list[str] | None = None, limit: int = 100, owner: str | None = None) -> list[dict[str, Any]]:
    """Human tasks, oldest first; ``owner``: only tasks of instances that user started."""
    query = select(HumanTask)
    if owner is not None:
        query = query.join(Instance, Instance.id == HumanTask.instance_id).where(Instance.created_by == owner)
    if status:
        query = query.where(HumanTask.status == status)
    if instance_id:
        query = query.where(HumanTask.instance_id == instance_id)
    if roles:
        query = query.where(HumanTask.role.in_(roles))
    rows = session.scalars(query.order_by(HumanTask.created_at).limit(limit)).all()
    return [task_summary(r) for r in rows]


def task_detail(row: HumanTask) -> dict[str, Any]:
    return {**task_summary(row), "instructions": row.instructions, "form_schema": row.form_schema,
            "data": row.data}


def timers(session: Session, instance_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(Timer).where(Timer.instance_id == instance_id).order_by(Timer.due_at)).all()
    return [{"bpmn_id": r.bpmn_id, "due_at": r.due_at.isoformat()} for r in rows]


def audit_events(session: Session, instance_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id)
                           .order_by(AuditEvent.at, AuditEvent.id)).all()
    return [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action, "target": r.target,
             "details": r.details} for r in rows]
