"""Human task rows kept in step with the workflow: every checkpoint opens a row for each READY
manual task (lane, role, form, rendered instructions, due date) and cancels the rows of tasks that
are no longer READY. The completion side is ``engine/human_tasks.py``."""

from __future__ import annotations

import logging
from calendar import monthrange
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import Connection, insert, select, update

from scopeflow.engine.models import FINAL_STATUSES, HumanTask, new_id, utcnow
from scopeflow.engine.progress import Snapshot
from scopeflow.processes.bpmn_xml import lane_role

if TYPE_CHECKING:
    from scopeflow.engine.unit_of_work import Work

log = logging.getLogger(__name__)
TASKS = HumanTask.__table__


def sync_human_tasks(conn: Connection, work: Work, status: str, snapshot: Snapshot) -> None:
    """Open rows for newly READY manual tasks and cancel the open rows of tasks no longer READY."""
    ready = {} if status in FINAL_STATUSES else snapshot.ready_human
    if not ready and not work.had_open_tasks:
        return
    work.had_open_tasks = True
    rows = conn.execute(select(TASKS.c.id, TASKS.c.spiff_task_id).where(
        TASKS.c.instance_id == work.instance_id, TASKS.c.status == "open")).all()
    known = {r.spiff_task_id for r in rows}
    gone = [r.id for r in rows if r.spiff_task_id not in ready]
    if gone:
        conn.execute(update(TASKS).where(TASKS.c.id.in_(gone)).values(status="cancelled", completed_at=utcnow()))
    new = []
    for task_id, task in ready.items():
        if task_id in known:
            continue
        if conn.scalar(select(TASKS.c.id).where(TASKS.c.instance_id == work.instance_id,
                                                TASKS.c.spiff_task_id == task_id)):
            continue
        new.append(_new_row(work, task_id, task))
    if new:
        conn.execute(insert(TASKS), new)


def _new_row(work: Work, task_id: str, task) -> dict[str, Any]:
    element = work.runner.element_of(task)
    props = element.properties if element else {}
    form = props.get("formJsonSchemaFilename", "")
    schema = work.version.catalog.form(form) if form else {}
    due_at = None
    if props.get("dueIn"):
        due_at = add_duration(utcnow(), props["dueIn"])
    lane = getattr(task.task_spec, "lane", None) or ""
    return dict(
        id=new_id(), instance_id=work.instance_id, spiff_task_id=task_id, bpmn_id=task.task_spec.bpmn_id,
        name=task.task_spec.bpmn_name or task.task_spec.bpmn_id, lane=lane, role=lane_role(lane),
        form=form, form_schema=schema or {}, instructions=instructions(props, task.data),
        status="open", due_at=due_at, created_at=utcnow(), data={},
    )


def add_duration(start: datetime, iso: str) -> datetime | None:
    """``start`` plus an ISO 8601 duration (a task's ``dueIn``); None when ``iso`` does not parse.

    SpiffWorkflow 3.2's ``parse_iso_duration`` returns the parts as a dict, not a timedelta: years
    and months move the calendar date (31 January + P1M is the last day of February), a fraction
    of a month is that fraction of the month reached, the rest is a plain timedelta.
    """
    try:
        parts = dict(TimerEventDefinition.parse_iso_duration(iso))
    except Exception:  # SpiffWorkflow raises a bare Exception('Invalid duration')
        log.warning("dueIn %r is not an ISO 8601 duration; the task gets no due date", iso)
        return None
    months = parts.pop("years", 0) * 12 + parts.pop("months", 0)
    whole = int(months)
    index = start.month - 1 + whole
    year, month = start.year + index // 12, index % 12 + 1
    moved = start.replace(year=year, month=month, day=min(start.day, monthrange(year, month)[1]))
    extra_days = (months - whole) * monthrange(year, month)[1]
    return moved + timedelta(days=parts.pop("days", 0) + extra_days, **parts)


def instructions(props: dict[str, str], data: dict[str, Any]) -> str:
    """The task's ``instructionsForEndUser`` rendered over its data in an immutable Jinja sandbox."""
    text = props.get("instructionsForEndUser", "")
    if not text:
        return ""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:   # immutable: rendering instructions must never change the task data it reads
        return ImmutableSandboxedEnvironment(autoescape=False).from_string(text).render(**data)
    except Exception as exc:  # a template error must not stop the instance
        return f"{text}\n\n(instructions could not be rendered: {type(exc).__name__}: {exc})"
