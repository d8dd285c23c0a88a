"""The checkpoint: one transaction that writes what a unit of work changed — the serialized state,
the spans recorded since the last checkpoint (hash-chained), human task rows, timers, message
subscriptions and audit events. A crash therefore loses at most the uncheckpointed steps, and never
their spans without their state (or the reverse). Written on one connection with Core statements
(this is the hot path), and only under the unit of work's lease at the row version it loaded."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy import Connection, bindparam, insert, update

from scopeflow.engine.errors import UNSAVEABLE_STATE, Busy
from scopeflow.engine.models import (
    BLOCKED,
    COMPLETED,
    ERROR,
    FINAL_STATUSES,
    RUNNING,
    WAITING,
    AuditEvent,
    Instance,
    utcnow,
)
from scopeflow.engine.plain_json import NotPlainJson
from scopeflow.engine.progress import Snapshot, leftover_incident, snapshot_of
from scopeflow.engine.spanstore import append_spans
from scopeflow.engine.spiff import serialize
from scopeflow.engine.task_rows import sync_human_tasks
from scopeflow.engine.waits import store_waits, waits

if TYPE_CHECKING:
    from scopeflow.engine.service import Engine
    from scopeflow.engine.unit_of_work import Work

log = logging.getLogger(__name__)
INSTANCE = Instance.__table__
AUDIT = AuditEvent.__table__
# The checkpoint's statements, built once (building one costs about half of executing it). The
# UPDATE touches only the row this advance leased, at the version it loaded.
INSERT_INSTANCE = insert(INSTANCE)
INSERT_AUDIT = insert(AUDIT)
UPDATE_LEASED = update(INSTANCE).where(INSTANCE.c.id == bindparam("b_id"), INSTANCE.c.lock_owner == bindparam("b_owner"),
                                       INSTANCE.c.row_version == bindparam("b_version"))


def checkpoint(engine: Engine, work: Work, *, final: bool, incident: dict[str, Any] | None = None,
               audit: list[dict[str, Any]] | None = None, status: str | None = None) -> str:
    """Write state + spans + tasks + timers + messages + audit in one transaction, on one
    connection with Core statements; refused (``Busy``) if this advance's lease was lost.
    ``final`` releases the lease, otherwise it is renewed (a mid-run checkpoint)."""
    if engine.heartbeat.lost(work.lease):
        raise Busy(f"instance {work.instance_id}: lease lost while the advance ran; nothing written")
    wf = work.workflow
    snapshot = snapshot_of(wf)
    if snapshot.ended_with_leftovers and incident is None and status is None:
        incident = leftover_incident(wf)
    status = status or status_of(work, incident, snapshot)
    spans = engine.telemetry.buffer.take(work.instance_id)
    now = utcnow()
    timers, subscriptions, wake_at = waits(work)
    values: dict[str, Any] = dict(
        state=serialize(wf), status=status, row_version=work.row_version + 1, updated_at=now,
        incident=incident, needs_advance=snapshot.ready_automatic and incident is None,
        progress=monotonic_progress(snapshot.progress, status, work.progress), mode=snapshot.mode,
        wake_at=wake_at, trace_carrier=work.carrier,
    )
    if status in FINAL_STATUSES:
        values["ended_at"] = now
        values["outcome"] = outcome(wf)
    if final:
        values.update(lock_owner=None, lock_expires_at=None)
    else:
        values.update(lock_owner=work.lease, lock_expires_at=now + timedelta(seconds=engine.settings.lock_lease_s))
    with engine.db.begin() as conn:
        write_row(conn, work, values)
        if work.completion is not None:
            work.completion(conn)
        chain = append_spans(conn, work.instance_id, spans, work.chain, engine.chain_key)
        store_waits(conn, work, timers, subscriptions)
        sync_human_tasks(conn, work, status, snapshot)
        if audit:
            conn.execute(INSERT_AUDIT, audit)
    work.row_version += 1
    work.progress = values["progress"]
    work.chain, work.completion = chain, None
    if work.new_row is not None:
        work.new_row = None
        if not final:
            engine.heartbeat.hold(work.lease, work.instance_id)
    return status


def refuse_unsaveable(engine: Engine, work: Work, exc: NotPlainJson) -> str:
    """Task data that is not plain JSON cannot be written (nor safely read back): the instance
    keeps its last checkpointed state and gets an incident naming the value; the spans of what
    ran are kept, since it did run."""
    message = work.runner.redact(
        f"{exc}. The state could not be saved, so the instance stays at its last checkpoint; "
        "a script or expression in the model put this value in the task data: fix the model")
    incident = {"message": message[:2000], "task_id": None, "bpmn_id": None,
                "error_type": UNSAVEABLE_STATE, "traceback": ""}
    spans = engine.telemetry.buffer.take(work.instance_id)
    values = dict(status=ERROR, incident=incident, needs_advance=False, lock_owner=None, lock_expires_at=None,
                  updated_at=utcnow(), row_version=work.row_version + 1)
    if work.new_row is not None:  # a fresh start: its last checkpoint is its initial state
        values["state"] = work.initial_state()
    with engine.db.begin() as conn:
        write_row(conn, work, values)
        chain = append_spans(conn, work.instance_id, spans, work.chain, engine.chain_key)
    work.row_version += 1
    work.chain, work.new_row = chain, None
    log.info("instance %s: incident: %s", work.instance_id, message)
    return ERROR


def write_row(conn: Connection, work: Work, values: dict[str, Any]) -> None:
    """The unit of work's instance row: inserted by a fresh start's first write, else updated only
    under this advance's lease at the version it loaded (``Busy`` when the lease was lost)."""
    if work.new_row is not None:
        conn.execute(INSERT_INSTANCE, {**work.new_row, **values})
    elif not conn.execute(UPDATE_LEASED, {"b_id": work.instance_id, "b_owner": work.lease,
                                          "b_version": work.row_version, **values}).rowcount:
        raise Busy(f"instance {work.instance_id}: lease lost before checkpoint; nothing written")


def audit_row(actor: str, action: str, target: str = "", instance_id: str | None = None,
              details: dict[str, Any] | None = None) -> dict[str, Any]:
    """An audit event as the row a checkpoint inserts with the state change it records."""
    return {"at": utcnow(), "actor": actor, "action": action, "target": target, "instance_id": instance_id,
            "details": details or {}}


def status_of(work: Work, incident: dict[str, Any] | None, snapshot: Snapshot) -> str:
    """The status a checkpoint writes: an incident is ``error``; a finished run ``completed`` unless
    it ended on an end event the model marks ``instanceStatus=blocked``; else running or waiting."""
    if incident is not None:
        return ERROR
    if snapshot.completed:
        return BLOCKED if _ended_blocked(work, snapshot) else COMPLETED
    return RUNNING if snapshot.ready_automatic else WAITING


def monotonic_progress(measured: int, status: str, stored: int) -> int:
    """The progress column's new value: 100 only for ``completed``; a blocked, cancelled or failed
    run keeps what it had reached (its workflow may be "complete" on the blocker path, which is not
    delivery); otherwise never below the last checkpoint's value (``stored``), since a loop (rebuild,
    re-plan) adds tasks to the tree and would make done/total fall."""
    if status == COMPLETED:
        return 100
    if status in FINAL_STATUSES:
        return stored
    return max(stored, min(measured, 99))


def _ended_blocked(work: Work, snapshot: Snapshot) -> bool:
    process = work.version.catalog.processes.get(work.version.name)
    if process is None:
        return False
    for element_id in snapshot.completed_elements:
        element = process.element(element_id)
        if element and element.tag == "endEvent" and element.properties.get("instanceStatus") == "blocked":
            return True
    return False


def outcome(wf: BpmnWorkflow) -> dict[str, Any]:
    """The finished run's ``report`` and ``release`` (as plain JSON), kept on the row for listings."""
    data = wf.last_task.data if wf.last_task is not None else {}
    try:
        kept = {k: data[k] for k in ("report", "release") if isinstance(data.get(k), dict)}
        return json.loads(json.dumps(kept, default=str))
    except (TypeError, ValueError):
        return {}
