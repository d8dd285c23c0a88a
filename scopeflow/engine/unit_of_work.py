"""The instance store's unit of work: lease the instance row, load its workflow, let the caller
change it, and checkpoint (``engine/checkpoint.py``). Every state change of an instance — start,
advance, a completed human task, retry, cancel, a delivered message — is one of these.

A heartbeat keeps the lease alive while the work runs; the final checkpoint releases it, so does an
error. A lease lost meanwhile (another worker took the row over) makes the checkpoint refuse to
write (``Busy``), and the spans recorded under it are discarded with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select, update

from scopeflow.engine import versions
from scopeflow.engine.checkpoint import INSTANCE, checkpoint, refuse_unsaveable
from scopeflow.engine.errors import Busy, EngineError, NotFound
from scopeflow.engine.flow import FlowWorkflow
from scopeflow.engine.leases import new_token
from scopeflow.engine.models import ERROR, utcnow
from scopeflow.engine.plain_json import NotPlainJson
from scopeflow.engine.runner import RunIdentity, Runner, incident_from
from scopeflow.engine.spanstore import chain_tail
from scopeflow.engine.spiff import deserialize
from scopeflow.processes.catalog import evidence_path
from scopeflow.spans.integrity import genesis

if TYPE_CHECKING:
    from scopeflow.engine.service import Engine

log = logging.getLogger(__name__)


@dataclass
class Work:
    """What one unit of work has loaded: the row's identity, the workflow and its runner."""

    instance_id: str
    row_version: int
    version: versions.LoadedVersion
    workflow: FlowWorkflow
    runner: Runner
    carrier: dict[str, str]
    lease: str = ""                     # this advance's lease token (the row's lock_owner)
    progress: int = 0                   # the progress stored at the last checkpoint (it never goes down)
    chain: tuple[int, str] = (0, "")    # (seq, link hash) of the stored span chain's head
    new_row: dict[str, Any] | None = None   # a fresh start's row: the first checkpoint inserts it
    initial_state: Callable[[], str] | None = None  # a fresh start's state before it ran (built on demand)
    completion: Callable[[Connection], None] | None = None  # a human task's row update, for the next checkpoint
    had_open_tasks: bool = True         # False only for a fresh instance (nothing to close yet)
    had_waits: bool = True              # likewise for timer and message-subscription rows


@contextmanager
def open_work(engine: Engine, instance_id: str, fresh: tuple | None = None) -> Iterator[Work]:
    """Lease the instance under a new token and load it (or take ``fresh`` = (workflow, version,
    row) from a start, whose row the first checkpoint inserts). A heartbeat keeps the lease
    alive while the work runs; the final checkpoint releases it, so does an error."""
    token = new_token(engine.worker_id)
    try:
        if fresh is not None:
            workflow, loaded, row = fresh
            carrier: dict[str, str] = {}
            row_version, chain, progress = 0, (0, genesis(instance_id)), 0
        else:
            workflow, row_version, loaded, carrier, chain, progress = _lease_and_load(engine, instance_id, token)
            engine.heartbeat.hold(token, instance_id)
            row = None
        work = _prepare(engine, instance_id, workflow, row_version, loaded, carrier, fresh is None)
        work.lease, work.chain, work.new_row, work.progress = token, chain, row, progress
        yield work
    except Busy:
        engine.telemetry.buffer.discard(instance_id)  # the lease is someone else's now: keep nothing
        raise
    except BaseException:
        engine.telemetry.buffer.discard(instance_id)
        _release(engine, instance_id, token)
        raise
    finally:
        engine.heartbeat.release(token)


def run(engine: Engine, work: Work, reason: str, before=None, audit: list[dict[str, Any]] | None = None,
        steps: bool = True) -> str:
    """One advance inside the unit of work: ``before`` (the change the caller makes), then the
    engine steps, then the final checkpoint. A failure of the model becomes an incident on the
    row; a refusal of the engine (``EngineError``, ``LookupError``) rolls everything back."""
    incident = None
    with work.runner.advance_span(work.carrier, reason) as carrier:
        work.carrier = carrier
        try:
            if before is not None:
                before(work)
            if steps:
                work.runner.run_steps()
        except (EngineError, LookupError):
            raise
        except Exception as exc:
            incident = incident_from(exc, work.runner.redact)
            log.info("instance %s: incident: %s", work.instance_id, incident["message"])
    try:
        return checkpoint(engine, work, final=True, incident=incident, audit=audit)
    except NotPlainJson as exc:
        return refuse_unsaveable(engine, work, exc)


def _lease_and_load(engine: Engine, instance_id: str, token: str) -> tuple[FlowWorkflow, int, versions.LoadedVersion,
                                                                         dict, tuple[int, str], int]:
    now = utcnow()
    columns = INSTANCE.c
    with engine.db.begin() as conn:
        taken = conn.execute(
            update(INSTANCE)
            .where(columns.id == instance_id,
                   or_(columns.lock_owner.is_(None), columns.lock_expires_at < now,
                       columns.lock_owner == engine.worker_id))   # a claim this engine made (claim_due)
            .values(lock_owner=token, lock_expires_at=now + timedelta(seconds=engine.settings.lock_lease_s))
        ).rowcount
        row = conn.execute(select(columns.lock_owner, columns.state, columns.row_version, columns.trace_carrier,
                                  columns.model_version_id, columns.progress)
                           .where(columns.id == instance_id)).first()
        if row is None:
            raise NotFound(f"unknown instance {instance_id}")
        if not taken:
            raise Busy(f"instance {instance_id} is being advanced by {row.lock_owner}")
        chain = chain_tail(conn, instance_id)
    loaded = versions.load_id(engine.sessions, row.model_version_id)
    try:
        workflow = deserialize(row.state)
    except Exception as exc:
        message = f"instance {instance_id} has a corrupt state row: {type(exc).__name__}: {exc}"
        _mark_corrupt(engine, instance_id, token, message)
        raise EngineError(message, code=1) from None
    workflow.spec_ref = loaded.id   # a state written with its spec embedded is written by reference from now on
    return workflow, row.row_version, loaded, dict(row.trace_carrier or {}), chain, row.progress or 0


def _prepare(engine: Engine, instance_id: str, workflow: FlowWorkflow, row_version: int,
             loaded: versions.LoadedVersion, carrier: dict[str, str], had_tasks: bool) -> Work:
    """The runner for this unit of work, wired to the engine's secrets, spans and checkpoint."""
    process_file = loaded.catalog.processes[loaded.name].file
    identity = RunIdentity(instance_id, loaded.name, loaded.version, engine.workspace(instance_id),
                           dict(loaded.catalog.processes),
                           evidence_rules=loaded.catalog.files.get(evidence_path(process_file), ""))
    secrets = engine.secrets
    runner = Runner(workflow, identity, engine.telemetry.tracer, read_secret=engine._read_secret,
                    has_secret=secrets.has,
                    write_secret=lambda name, value, instance, task: engine.secrets.set(
                        name, value, actor="engine", instance_id=instance, task=task),
                    recorded_spans=lambda: engine.recorded_spans(instance_id),
                    chain_head=lambda: engine.chain_head(instance_id),
                    checkpoint_threshold_s=engine.settings.checkpoint_threshold_s,
                    redact=engine._redactor(),
                    direct_spans=engine.telemetry.record_direct if engine.telemetry.direct_task_spans else None)
    work = Work(instance_id, row_version, loaded, workflow, runner, carrier, had_open_tasks=had_tasks,
                had_waits=had_tasks)
    runner.on_checkpoint = lambda: checkpoint(engine, work, final=False)
    return work


def _mark_corrupt(engine: Engine, instance_id: str, token: str, message: str) -> None:
    """An unreadable state is an incident (status ``error``): no worker picks it up again
    until someone repairs the row and retries."""
    with engine.db.begin() as conn:
        conn.execute(update(INSTANCE).where(INSTANCE.c.id == instance_id, INSTANCE.c.lock_owner == token)
                     .values(status=ERROR, needs_advance=False, lock_owner=None, lock_expires_at=None,
                             incident={"message": message[:500], "task_id": None, "bpmn_id": None,
                                       "error_type": "CorruptState", "traceback": ""}))


def _release(engine: Engine, instance_id: str, token: str) -> None:
    with engine.db.begin() as conn:
        conn.execute(update(INSTANCE).where(INSTANCE.c.id == instance_id, INSTANCE.c.lock_owner == token)
                     .values(lock_owner=None, lock_expires_at=None))
