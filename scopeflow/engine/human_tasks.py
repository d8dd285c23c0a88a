"""Claiming and completing a human task: who may decide (``engine/people.py``), the form's defaults
and validation, ``x-secret`` fields to the secret store, and the completion written by the same
checkpoint as the state that records it. Opening task rows is ``engine/task_rows.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, update
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine import people
from scopeflow.engine.checkpoint import audit_row
from scopeflow.engine.errors import EngineError, Forbidden, NotFound
from scopeflow.engine.forms import split_secrets, validate, with_defaults
from scopeflow.engine.models import AuditEvent, HumanTask, utcnow
from scopeflow.engine.spiff import ready_manual_task
from scopeflow.engine.unit_of_work import Work, open_work, run
from scopeflow.redaction import redact_data

if TYPE_CHECKING:
    from scopeflow.engine.service import Engine

TASKS = HumanTask.__table__


def complete_task(engine: Engine, task_row_id: str, data: dict[str, Any], *, actor: str, advance: bool = True,
                  policy: str | None = None) -> str:
    """Validate ``data`` against the task's form, complete it, and advance the instance (see
    :meth:`Engine.complete_task` for who may complete it and what ``policy``/``advance`` do). A
    task someone claimed is completed by that person or an ``admin`` only, whatever the channel
    (``Forbidden`` otherwise), checked again in the transaction that completes it."""
    if not isinstance(data, dict):
        raise EngineError("task data must be a JSON object")
    with engine.sessions() as session:
        row = session.get(HumanTask, task_row_id)
        if row is None:
            raise NotFound(f"unknown task {task_row_id}")
        if row.status != "open":
            raise EngineError(f"task {task_row_id} is {row.status}, not open")
        instance_id, spiff_id, schema = row.instance_id, row.spiff_task_id, row.form_schema or {}
        decider = decider_for(session, actor, policy, row)
        overrides_claim = people.ADMIN_ROLE in decider.roles
        if row.assignee and row.assignee != decider.actor and not overrides_claim:
            raise Forbidden(f"task {task_row_id} is claimed by {row.assignee}")
    filled = with_defaults(schema, data) if schema else dict(data)
    if schema:
        validate(schema, filled, f"task {task_row_id}")
    secrets, filled = split_secrets(schema, filled)
    for name, value in secrets.items():
        engine.secrets.set(name, value, actor=actor, instance_id=instance_id)
    # One redactor for the whole completion: it decrypts the stored secrets (those just set included)
    # on its first use, and the unit of work's runner below reuses it instead of decrypting them again.
    redact = engine._redactor()
    filled = redact_data(filled, redact)   # a stored secret typed into a free-text field
    variable = schema.get("x-variable") if schema else None
    task_data = {variable: filled} if variable else filled

    def mark_completed(conn: Connection) -> None:
        """The task row's completion, written in the same transaction as the state that says so."""
        still_theirs = [TASKS.c.id == task_row_id, TASKS.c.status == "open"]
        if not overrides_claim:   # nobody claimed it since the check above (or the decider did)
            still_theirs.append(or_(TASKS.c.assignee.is_(None), TASKS.c.assignee == decider.actor))
        done = conn.execute(update(TASKS).where(*still_theirs).values(
            status="completed", completed_at=utcnow(), completed_by=decider.actor, data=filled)).rowcount
        if not done:
            raise EngineError(f"task {task_row_id} is no longer open to {decider.actor} (completed, or claimed "
                              "by another person meanwhile)")

    def complete(work: Work) -> None:
        task = ready_manual_task(work.workflow, spiff_id)
        work.runner.complete_human_task(task, task_data, decider)
        work.completion = mark_completed

    audit = [audit_row(decider.actor, "task.complete", task_row_id, instance_id,
                       {"fields": sorted(filled), "secrets": sorted(secrets),
                        "automated": decider.automated, "policy": decider.policy})]
    with open_work(engine, instance_id) as work:
        work.runner.redact = redact
        try:
            status = run(engine, work, "task completed", before=complete, audit=audit, steps=advance)
        except LookupError as exc:
            raise EngineError(str(exc)) from None
    return status


def claim(sessions: sessionmaker[Session], task_row_id: str, actor: str, *, release: bool = False,
          admin: bool = False) -> None:
    """``actor`` claims the open task (``release``: gives up the claim), audited. Refused with an
    :class:`EngineError` saying why when the task is not open, another person holds it, or, to
    release, ``actor`` neither holds it nor is an ``admin``; checked and written in one transaction,
    so two people claiming at once cannot both win. Who may see the task is the caller's check."""
    with sessions.begin() as session:
        row = session.get(HumanTask, task_row_id, with_for_update=True)
        if row is None:
            raise NotFound(f"unknown task {task_row_id}")
        if row.status != "open":
            raise EngineError(f"task is {row.status}")
        if not release and row.assignee and row.assignee != actor:
            raise EngineError(f"already claimed by {row.assignee}")
        if release and row.assignee not in (None, actor) and not admin:
            raise EngineError(f"only {row.assignee} or an admin can unclaim this task")
        row.assignee = None if release else actor
        session.add(AuditEvent(actor=actor, action="task.unclaim" if release else "task.claim",
                               target=row.id, instance_id=row.instance_id))


def decider_for(session: Session, actor: str, policy: str | None, row: HumanTask) -> people.Decider:
    """An automatic decision under ``policy`` on ``actor``'s behalf, else ``actor`` as a person who
    must hold the task lane's role (``Forbidden`` when the account lacks it)."""
    if policy is not None:
        return people.automatic(policy, actor)
    try:
        return people.person(session, actor, row.role, row.name)
    except people.AccountRefused as exc:
        raise (Forbidden(str(exc)) if exc.forbidden else EngineError(str(exc))) from None
