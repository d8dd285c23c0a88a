"""The engine's public face: start, advance, complete human tasks, retry, cancel, messages.

Every state change goes through :meth:`Engine.advance`-style units of work: lease the instance row,
load its workflow, do the work, and *checkpoint* — one transaction holding the serialized state,
the spans recorded since the last checkpoint (hash-chained), human task rows, timers, message
subscriptions and audit events. A crash therefore loses at most the uncheckpointed steps, and
never their spans without their state (or the reverse).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import threading
import uuid
from calendar import monthrange
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scopeflow.config import Settings
from scopeflow.engine import people, versions
from scopeflow.engine.chain_key import load_chain_key
from scopeflow.engine.db import get_engine, private_dir, session_factory
from scopeflow.engine.flow import FlowWorkflow
from scopeflow.engine.leases import Heartbeat, new_token
from scopeflow.engine.models import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    ERROR,
    FINAL_STATUSES,
    RUNNING,
    WAITING,
    AuditEvent,
    HumanTask,
    Instance,
    MessageSubscription,
    ModelVersion,
    Timer,
    new_id,
    utcnow,
)
from scopeflow.engine.plain_json import NotPlainJson
from scopeflow.engine.progress import Snapshot, leftover_incident, snapshot_of, workflow_data
from scopeflow.engine.runner import RunIdentity, Runner, incident_from
from scopeflow.engine.secrets import SecretError, SecretStore, open_store
from scopeflow.engine.spanstore import append_spans, chain_tail, load_chain
from scopeflow.engine.spiff import deserialize, ready_manual_task, serialize, set_spiff_log_level
from scopeflow.handlers import registry
from scopeflow.handlers.failures import CONFIGURATION, TaskFailure, resumable
from scopeflow.processes.bpmn_xml import lane_role
from scopeflow.processes.catalog import Catalog, CatalogError, bundle_hash, evidence_path, scan
from scopeflow.processes.lint import errors, lint_catalog
from scopeflow.redaction import redact_data, secret_redactor
from scopeflow.spans.integrity import ChainReport, genesis, verify_chain
from scopeflow.spans.tracing import Telemetry, records_of, telemetry

log = logging.getLogger(__name__)
UNSAVEABLE_STATE = "UnsaveableState"   # incident type: task data could not be written as plain JSON


class EngineError(Exception):
    """A request the engine refuses; ``code`` says how the CLI/API should answer (2 = bad input)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class NotFound(EngineError):
    pass


class Forbidden(EngineError):
    """The account exists but lacks the role a task needs (a 403 in the API)."""


class Busy(EngineError):
    """Another worker holds the instance's lease."""

    def __init__(self, message: str):
        super().__init__(message, code=1)


@dataclass
class _Work:
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


class Engine:
    def __init__(self, settings: Settings, worker_id: str | None = None, telemetry_: Telemetry | None = None):
        self.settings = settings
        registry.load_modules(settings.operator_modules)
        private_dir(settings.home)   # the home holds the key, the workspaces and maybe the database
        self.sessions = session_factory(settings.effective_database_url)
        self.db = get_engine(settings.effective_database_url)   # Core statements for the hot path
        self.telemetry = telemetry_ or telemetry()   # OTLP export follows the OTEL_* variables
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._secrets: SecretStore | None = None
        self._secret_lock = threading.Lock()
        self._catalogs: dict[str, tuple[tuple, Catalog]] = {}
        # model -> (newest version id, models-directory digest known to be stored, that version)
        self._versions: dict[str, tuple[str, str, versions.LoadedVersion]] = {}
        versions.remember_store(self.sessions)
        set_spiff_log_level(settings.spiff_log_level)
        self.heartbeat = Heartbeat(self.db, settings.lock_lease_s)

    # ---------------------------------------------------------------- secrets
    @property
    def secrets(self) -> SecretStore:
        with self._secret_lock:
            if self._secrets is None:
                self._secrets = open_store(self.sessions, self.settings.home, self.settings.secret_key)
            return self._secrets

    def _read_secret(self, name: str, instance_id: str, task: str) -> str:
        try:
            return self.secrets.get(name, actor="engine", instance_id=instance_id, task=task)
        except SecretError as exc:
            raise TaskFailure(CONFIGURATION, str(exc), {"secret": name}) from None

    def _redactor(self):
        """A redactor over the stored secrets, read from the store (and decrypted) on its first
        use only: one advance builds one, and most advances never redact anything."""
        built: list = []

        def redact(text: str) -> str:
            if not built:
                try:
                    values = self.secrets.values()
                except SecretError:
                    values = []
                built.append(secret_redactor(values))
            return built[0](text)

        return redact

    def recorded_spans(self, instance_id: str) -> list:
        """Every span of the instance: stored rows, then those buffered since the last checkpoint."""
        from scopeflow.engine.spanstore import load_spans

        with self.sessions() as session:
            stored = load_spans(session, instance_id)
        return stored + records_of(self.telemetry.buffer.peek(instance_id))

    @cached_property
    def chain_key(self) -> bytes:
        """The span chain's HMAC key, from outside the database (``engine/chain_key.py``)."""
        return load_chain_key(self.settings.home, self.settings.chain_key)

    def verify_chain(self, instance_id: str, expected_head: str | None = None) -> ChainReport:
        """Recompute the instance's stored span chain under the chain key; names the first bad link."""
        with self.sessions() as session:
            rows = load_chain(session, instance_id)
        return verify_chain(rows, instance_id, expected_head=expected_head, key=self.chain_key)

    def instance_data(self, instance_id: str) -> dict[str, Any]:
        """The workflow data the instance has produced so far, secrets redacted (read only: no lease)."""
        with self.sessions() as session:
            row = session.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"unknown instance {instance_id}")
            state = row.state
        try:
            workflow = deserialize(state)
        except Exception as exc:
            raise EngineError(f"instance {instance_id} has a corrupt state row: {type(exc).__name__}", code=1) from None
        return workflow_data(workflow, self._redactor())

    def chain_head(self, instance_id: str) -> tuple[str, int]:
        """(link hash, count) of the instance's stored span chain — what an exported report quotes."""
        with self.sessions() as session:
            seq, head = chain_tail(session, instance_id)
        return head, seq

    # ---------------------------------------------------------------- models
    def deploy(self, models: list[str] | None = None, models_dir: Path | None = None) -> list[dict[str, Any]]:
        """Lint and store new versions of ``models`` (default: all); lint errors refuse the deploy."""
        catalog = self._scan(models_dir or self.settings.models_dir)
        names = models or catalog.models
        for name in names:
            catalog.process(name)
        with self.sessions() as session:
            latest = {name: versions.latest_version(session, name) for name in names}
        if all(v is not None and v.content_hash == bundle_hash(catalog.bundle(n)) for n, v in latest.items()):
            # Already linted when this exact content was deployed.
            return [{"model": n, "version": v.version, "hash": v.content_hash, "created": False}
                    for n, v in latest.items()]
        problems = errors(lint_catalog(catalog, names))
        if problems:
            raise EngineError(f"{len(problems)} lint error(s), first: {problems[0]}")
        try:
            return self._store_versions(catalog, names)
        except IntegrityError:
            # Another thread or process stored the same new version first: this time it reads it back.
            return self._store_versions(catalog, names)

    def _store_versions(self, catalog: Catalog, names: list[str]) -> list[dict[str, Any]]:
        out = []
        with self.sessions.begin() as session:
            for name in names:
                row, created = versions.deploy(session, catalog, name)
                out.append({"model": name, "version": row.version, "hash": row.content_hash, "created": created})
        return out

    def catalog(self) -> Catalog:
        """The models directory's catalog, re-read only when a file in it changed."""
        return self._scan(self.settings.models_dir)

    def _current_version(self, model: str) -> versions.LoadedVersion:
        """The newest stored version of ``model``. The models directory's files are deployed first
        when their content was never stored, so an edit on disk runs next; a version saved later
        (e.g. in the web designer) is newer and runs until the disk changes again. One indexed
        query per start checks that the remembered version is still the newest; whether the disk's
        content was ever stored is asked again only when that content changed."""
        catalog = self._scan(self.settings.models_dir)
        catalog.process(model)
        digest = bundle_hash(catalog.bundle(model))
        cached = self._versions.get(model)
        newest = versions.newest_id(self.db, model)
        if cached is not None and cached[0] == newest and cached[1] == digest:
            return cached[2]   # versions are never deleted: a digest once stored stays stored
        with self.sessions() as session:
            known = newest is not None and session.scalar(select(ModelVersion.id).where(
                ModelVersion.name == model, ModelVersion.content_hash == digest).limit(1)) is not None
        if not known:
            self.deploy([model])
        with self.sessions() as session:
            row = versions.latest_version(session, model)
            loaded = versions.load(row)
        self._versions[model] = (row.id, digest, loaded)
        return loaded

    def _scan(self, root: Path) -> Catalog:
        """The catalog of ``root``, re-read only when a file in it changed (stat signature)."""
        signature = _tree_signature(Path(root))
        cached = self._catalogs.get(str(root))
        if cached is not None and cached[0] == signature:
            return cached[1]
        catalog = scan(root)
        self._catalogs[str(root)] = (signature, catalog)
        return catalog

    # ---------------------------------------------------------------- start
    def start(self, model: str, data: dict[str, Any] | None = None, *, actor: str = "cli",
              title: str = "", advance: bool = True) -> str:
        """Create an instance of the newest version of ``model`` and (by default) advance it.

        The new row is created already leased to this engine, so the first advance runs on the
        workflow in memory instead of reading back the state it just wrote.
        """
        try:
            loaded = self._current_version(model)
        except CatalogError as exc:
            raise NotFound(str(exc)) from None
        now = utcnow()
        instance_id = new_id()
        start_data = self._start_data(loaded, data or {})
        workflow = _new_workflow(loaded, start_data)
        row = dict(id=instance_id, model_name=model, model_version_id=loaded.id, model_version=loaded.version,
                   status=RUNNING, title=(title or model)[:300], needs_advance=True, created_by=actor,
                   created_at=now, updated_at=now, trace_carrier={}, outcome={})
        audit = [AuditEvent(actor=actor, action="instance.start", target=instance_id, instance_id=instance_id,
                            at=now, details={"model": model, "version": loaded.version})]
        self.workspace(instance_id).mkdir(parents=True, exist_ok=True)
        if not advance:
            with self.db.begin() as conn:
                conn.execute(insert(INSTANCE), {**row, "state": serialize(workflow), "row_version": 1})
                conn.execute(insert(AUDIT), _audit_rows(audit))
            return instance_id
        # One transaction for the whole start: the row is inserted by the advance's first checkpoint.
        with self._work(instance_id, fresh=(workflow, loaded, row)) as work:
            # Only for a state that cannot be saved: rebuilt from the caller's data (left untouched).
            work.initial_state = lambda: serialize(_new_workflow(loaded, self._start_data(loaded, data or {})))
            self._run(work, "start", audit=audit)
        return instance_id

    def _start_data(self, loaded: versions.LoadedVersion, data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise EngineError("start data must be a JSON object")
        form_name = loaded.catalog.process(loaded.name).start_form
        if not form_name:
            return copy.deepcopy(data)
        schema = loaded.catalog.form(form_name) or {}
        filled = _with_defaults(schema, data)
        _validate(schema, filled, "start data")
        return filled

    def workspace(self, instance_id: str) -> Path:
        return (self.settings.workspaces_dir / instance_id).resolve()

    # ---------------------------------------------------------------- lease + checkpoint
    @contextmanager
    def _work(self, instance_id: str, fresh: tuple | None = None) -> Iterator[_Work]:
        """Lease the instance under a new token and load it (or take ``fresh`` = (workflow, version,
        row) from :meth:`start`, whose row the first checkpoint inserts). A heartbeat keeps the lease
        alive while the work runs; the final checkpoint releases it, so does an error."""
        token = new_token(self.worker_id)
        try:
            if fresh is not None:
                workflow, loaded, row = fresh
                carrier: dict[str, str] = {}
                row_version, chain, progress = 0, (0, genesis(instance_id)), 0
            else:
                workflow, row_version, loaded, carrier, chain, progress = self._lease_and_load(instance_id, token)
                self.heartbeat.hold(token, instance_id)
                row = None
            work = self._prepare(instance_id, workflow, row_version, loaded, carrier, fresh is None)
            work.lease, work.chain, work.new_row, work.progress = token, chain, row, progress
            yield work
        except Busy:
            self.telemetry.buffer.discard(instance_id)  # the lease is someone else's now: keep nothing
            raise
        except BaseException:
            self.telemetry.buffer.discard(instance_id)
            self._release(instance_id, token)
            raise
        finally:
            self.heartbeat.release(token)

    def _lease_and_load(self, instance_id: str, token: str) -> tuple[FlowWorkflow, int, versions.LoadedVersion,
                                                                     dict, tuple[int, str], int]:
        now = utcnow()
        columns = INSTANCE.c
        with self.db.begin() as conn:
            taken = conn.execute(
                update(INSTANCE)
                .where(columns.id == instance_id,
                       or_(columns.lock_owner.is_(None), columns.lock_expires_at < now,
                           columns.lock_owner == self.worker_id))   # a claim this engine made (claim_due)
                .values(lock_owner=token, lock_expires_at=now + timedelta(seconds=self.settings.lock_lease_s))
            ).rowcount
            row = conn.execute(select(columns.lock_owner, columns.state, columns.row_version, columns.trace_carrier,
                                      columns.model_version_id, columns.progress)
                               .where(columns.id == instance_id)).first()
            if row is None:
                raise NotFound(f"unknown instance {instance_id}")
            if not taken:
                raise Busy(f"instance {instance_id} is being advanced by {row.lock_owner}")
            chain = chain_tail(conn, instance_id)
        loaded = versions.load_id(self.sessions, row.model_version_id)
        try:
            workflow = deserialize(row.state)
        except Exception as exc:
            message = f"instance {instance_id} has a corrupt state row: {type(exc).__name__}: {exc}"
            self._mark_corrupt(instance_id, token, message)
            raise EngineError(message, code=1) from None
        workflow.spec_ref = loaded.id   # a state written with its spec embedded is written by reference from now on
        return workflow, row.row_version, loaded, dict(row.trace_carrier or {}), chain, row.progress or 0

    def _prepare(self, instance_id: str, workflow: FlowWorkflow, row_version: int,
                 loaded: versions.LoadedVersion, carrier: dict[str, str], had_tasks: bool) -> _Work:
        process_file = loaded.catalog.processes[loaded.name].file
        identity = RunIdentity(instance_id, loaded.name, loaded.version, self.workspace(instance_id),
                               dict(loaded.catalog.processes),
                               evidence_rules=loaded.catalog.files.get(evidence_path(process_file), ""))
        runner = Runner(workflow, identity, self.telemetry.tracer, read_secret=self._read_secret,
                        has_secret=self.secrets.has,
                        write_secret=lambda name, value, instance, task: self.secrets.set(
                            name, value, actor="engine", instance_id=instance, task=task),
                        recorded_spans=lambda: self.recorded_spans(instance_id),
                        chain_head=lambda: self.chain_head(instance_id),
                        checkpoint_threshold_s=self.settings.checkpoint_threshold_s,
                        redact=self._redactor(),
                        direct_spans=self.telemetry.record_direct if self.telemetry.direct_task_spans else None)
        work = _Work(instance_id, row_version, loaded, workflow, runner, carrier, had_open_tasks=had_tasks,
                     had_waits=had_tasks)
        runner.on_checkpoint = lambda: self._checkpoint(work, final=False)
        return work

    def _mark_corrupt(self, instance_id: str, token: str, message: str) -> None:
        """An unreadable state is an incident (status ``error``): no worker picks it up again
        until someone repairs the row and retries."""
        with self.db.begin() as conn:
            conn.execute(update(INSTANCE).where(INSTANCE.c.id == instance_id, INSTANCE.c.lock_owner == token)
                         .values(status=ERROR, needs_advance=False, lock_owner=None, lock_expires_at=None,
                                 incident={"message": message[:500], "task_id": None, "bpmn_id": None,
                                           "error_type": "CorruptState", "traceback": ""}))

    def _release(self, instance_id: str, token: str) -> None:
        with self.db.begin() as conn:
            conn.execute(update(INSTANCE).where(INSTANCE.c.id == instance_id, INSTANCE.c.lock_owner == token)
                         .values(lock_owner=None, lock_expires_at=None))

    def _checkpoint(self, work: _Work, *, final: bool, incident: dict[str, Any] | None = None,
                    audit: list[AuditEvent] | None = None, status: str | None = None) -> str:
        """Write state + spans + tasks + timers + messages + audit in one transaction, on one
        connection with Core statements; refused (``Busy``) if this advance's lease was lost."""
        if self.heartbeat.lost(work.lease):
            raise Busy(f"instance {work.instance_id}: lease lost while the advance ran; nothing written")
        wf = work.workflow
        snapshot = snapshot_of(wf)
        if snapshot.ended_with_leftovers and incident is None and status is None:
            incident = leftover_incident(wf)
        status = status or self._status(work, incident, snapshot)
        spans = self.telemetry.buffer.take(work.instance_id)
        now = utcnow()
        timers, subscriptions, wake_at = self._waits(work)
        values: dict[str, Any] = dict(
            state=serialize(wf), status=status, row_version=work.row_version + 1, updated_at=now,
            incident=incident, needs_advance=snapshot.ready_automatic and incident is None,
            progress=_monotonic_progress(snapshot.progress, status, work.progress), mode=snapshot.mode,
            wake_at=wake_at, trace_carrier=work.carrier,
        )
        if status in FINAL_STATUSES:
            values["ended_at"] = now
            values["outcome"] = _outcome(wf)
        if final:
            values.update(lock_owner=None, lock_expires_at=None)
        else:
            values.update(lock_owner=work.lease, lock_expires_at=now + timedelta(seconds=self.settings.lock_lease_s))
        with self.db.begin() as conn:
            _write_row(conn, work, values)
            if work.completion is not None:
                work.completion(conn)
            chain = append_spans(conn, work.instance_id, spans, work.chain, self.chain_key)
            self._store_waits(conn, work, timers, subscriptions)
            self._sync_human_tasks(conn, work, status, snapshot)
            if audit:
                conn.execute(insert(AUDIT), _audit_rows(audit))
        work.row_version += 1
        work.progress = values["progress"]
        work.chain, work.completion = chain, None
        if work.new_row is not None:
            work.new_row = None
            if not final:
                self.heartbeat.hold(work.lease, work.instance_id)
        return status

    def _status(self, work: _Work, incident: dict[str, Any] | None, snapshot: Snapshot) -> str:
        if incident is not None:
            return ERROR
        if snapshot.completed:
            return BLOCKED if _ended_blocked(work, snapshot) else COMPLETED
        return RUNNING if snapshot.ready_automatic else WAITING

    def _waits(self, work: _Work) -> tuple[list[dict], list[dict], datetime | None]:
        """Timer and message-subscription rows for what the workflow waits on, and the earliest due."""
        timers, subscriptions, earliest = [], [], None
        for task in list(work.workflow.event_manager.tasks.values()):
            definition = task.task_spec.event_definition
            if isinstance(definition, TimerEventDefinition):
                due = _timer_due(definition, task)
                if due is not None:
                    timers.append({"instance_id": work.instance_id, "bpmn_id": task.task_spec.bpmn_id, "due_at": due})
                    earliest = due if earliest is None or due < earliest else earliest
            elif isinstance(definition, MessageEventDefinition):
                element = work.runner.element_of(task)
                key_var = element.properties.get("correlationKey") if element else None
                key = task.data.get(key_var) if key_var else None
                subscriptions.append({"instance_id": work.instance_id, "bpmn_id": task.task_spec.bpmn_id,
                                      "message_name": definition.name,
                                      "correlation_key": None if key is None else str(key)})
        return timers, subscriptions, earliest

    def _store_waits(self, conn: Connection, work: _Work, timers: list[dict], subscriptions: list[dict]) -> None:
        if work.had_waits:
            conn.execute(delete(Timer.__table__).where(Timer.__table__.c.instance_id == work.instance_id))
            subs = MessageSubscription.__table__
            conn.execute(delete(subs).where(subs.c.instance_id == work.instance_id))
        if timers:
            conn.execute(insert(Timer.__table__), timers)
        if subscriptions:
            conn.execute(insert(MessageSubscription.__table__), subscriptions)
        work.had_waits = work.had_waits or bool(timers or subscriptions)

    def _sync_human_tasks(self, conn: Connection, work: _Work, status: str, snapshot: Snapshot) -> None:
        ready = {} if status in FINAL_STATUSES else snapshot.ready_human
        if not ready and not work.had_open_tasks:
            return
        work.had_open_tasks = True
        tasks = HumanTask.__table__
        rows = conn.execute(select(tasks.c.id, tasks.c.spiff_task_id).where(
            tasks.c.instance_id == work.instance_id, tasks.c.status == "open")).all()
        known = {r.spiff_task_id for r in rows}
        gone = [r.id for r in rows if r.spiff_task_id not in ready]
        if gone:
            conn.execute(update(tasks).where(tasks.c.id.in_(gone)).values(status="cancelled", completed_at=utcnow()))
        new = []
        for task_id, task in ready.items():
            if task_id in known:
                continue
            if conn.scalar(select(tasks.c.id).where(tasks.c.instance_id == work.instance_id,
                                                    tasks.c.spiff_task_id == task_id)):
                continue
            element = work.runner.element_of(task)
            props = element.properties if element else {}
            form = props.get("formJsonSchemaFilename", "")
            schema = work.version.catalog.form(form) if form else {}
            due_at = None
            if props.get("dueIn"):
                due_at = _add_duration(utcnow(), props["dueIn"])
            lane = getattr(task.task_spec, "lane", None) or ""
            new.append(dict(
                id=new_id(), instance_id=work.instance_id, spiff_task_id=task_id, bpmn_id=task.task_spec.bpmn_id,
                name=task.task_spec.bpmn_name or task.task_spec.bpmn_id, lane=lane, role=lane_role(lane),
                form=form, form_schema=schema or {}, instructions=_instructions(props, task.data),
                status="open", due_at=due_at, created_at=utcnow(), data={},
            ))
        if new:
            conn.execute(insert(tasks), new)

    # ---------------------------------------------------------------- advance
    def advance(self, instance_id: str, *, reason: str = "advance") -> str:
        """Run the instance until nothing is READY; returns its status."""
        with self._work(instance_id) as work:
            return self._run(work, reason)

    def _run(self, work: _Work, reason: str, before=None, audit: list[AuditEvent] | None = None,
             steps: bool = True) -> str:
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
            return self._checkpoint(work, final=True, incident=incident, audit=audit)
        except NotPlainJson as exc:
            return self._refuse_unsaveable(work, exc)

    def _refuse_unsaveable(self, work: _Work, exc: NotPlainJson) -> str:
        """Task data that is not plain JSON cannot be written (nor safely read back): the instance
        keeps its last checkpointed state and gets an incident naming the value; the spans of what
        ran are kept, since it did run."""
        message = work.runner.redact(
            f"{exc}. The state could not be saved, so the instance stays at its last checkpoint; "
            "a script or expression in the model put this value in the task data: fix the model")
        incident = {"message": message[:2000], "task_id": None, "bpmn_id": None,
                    "error_type": UNSAVEABLE_STATE, "traceback": ""}
        spans = self.telemetry.buffer.take(work.instance_id)
        values = dict(status=ERROR, incident=incident, needs_advance=False, lock_owner=None, lock_expires_at=None,
                      updated_at=utcnow(), row_version=work.row_version + 1)
        if work.new_row is not None:  # a fresh start: its last checkpoint is its initial state
            values["state"] = work.initial_state()
        with self.db.begin() as conn:
            _write_row(conn, work, values)
            chain = append_spans(conn, work.instance_id, spans, work.chain, self.chain_key)
        work.row_version += 1
        work.chain, work.new_row = chain, None
        log.info("instance %s: incident: %s", work.instance_id, message)
        return ERROR

    # ---------------------------------------------------------------- human tasks
    def complete_task(self, task_row_id: str, data: dict[str, Any], *, actor: str, advance: bool = True,
                      policy: str | None = None) -> str:
        """Validate ``data`` against the task's form, complete it, and advance the instance.

        ``actor`` must be an active account holding the role of the task's lane (or admin), whatever
        the channel; with ``policy`` (e.g. ``--yes``) the completion is an automatic decision on
        ``actor``'s behalf and is recorded as automated, never as a person's.
        With ``advance=False`` only the completion is checkpointed; the instance is left ``running``
        and marked for a worker (what the web UI does, so a request never waits for a build).
        """
        if not isinstance(data, dict):
            raise EngineError("task data must be a JSON object")
        with self.sessions() as session:
            row = session.get(HumanTask, task_row_id)
            if row is None:
                raise NotFound(f"unknown task {task_row_id}")
            if row.status != "open":
                raise EngineError(f"task {task_row_id} is {row.status}, not open")
            instance_id, spiff_id, schema = row.instance_id, row.spiff_task_id, row.form_schema or {}
            decider = self._decider(session, actor, policy, row)
        filled = _with_defaults(schema, data) if schema else dict(data)
        if schema:
            _validate(schema, filled, f"task {task_row_id}")
        secrets, filled = _split_secrets(schema, filled)
        for name, value in secrets.items():
            self.secrets.set(name, value, actor=actor, instance_id=instance_id)
        filled = redact_data(filled, self._redactor())   # a stored secret typed into a free-text field
        variable = schema.get("x-variable") if schema else None
        task_data = {variable: filled} if variable else filled

        def mark_completed(conn: Connection) -> None:
            """The task row's completion, written in the same transaction as the state that says so."""
            tasks = HumanTask.__table__
            done = conn.execute(update(tasks).where(tasks.c.id == task_row_id, tasks.c.status == "open").values(
                status="completed", completed_at=utcnow(), completed_by=decider.actor, data=filled)).rowcount
            if not done:
                raise EngineError(f"task {task_row_id} is no longer open")

        def complete(work: _Work) -> None:
            task = ready_manual_task(work.workflow, spiff_id)
            work.runner.complete_human_task(task, task_data, decider)
            work.completion = mark_completed

        audit = [AuditEvent(actor=decider.actor, action="task.complete", target=task_row_id, instance_id=instance_id,
                            details={"fields": sorted(filled), "secrets": sorted(secrets),
                                     "automated": decider.automated, "policy": decider.policy})]
        with self._work(instance_id) as work:
            try:
                status = self._run(work, "task completed", before=complete, audit=audit, steps=advance)
            except LookupError as exc:
                raise EngineError(str(exc)) from None
        return status

    @staticmethod
    def _decider(session: Session, actor: str, policy: str | None, row: HumanTask) -> people.Decider:
        if policy is not None:
            return people.automatic(policy, actor)
        try:
            return people.person(session, actor, row.role, row.name)
        except people.AccountRefused as exc:
            raise (Forbidden(str(exc)) if exc.forbidden else EngineError(str(exc))) from None

    # ---------------------------------------------------------------- operator actions
    def retry(self, instance_id: str, data: dict[str, Any] | None = None, *, actor: str = "cli") -> str:
        """Run the failed task again (with edited data) and advance.

        For an instance in ``error`` that is the task of the incident. For a ``blocked`` instance it
        is the last task whose failure was routed to the blocker path (e.g. the credentials check,
        once the credential is stored); a run blocked by a person's decision cannot be retried.
        """
        with self.sessions() as session:
            row = session.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"unknown instance {instance_id}")
            if row.status == ERROR and row.incident:
                task_id = row.incident.get("task_id")
            elif row.status == BLOCKED:
                task_id = None
            else:
                raise EngineError(f"instance {instance_id} is {row.status}; only an instance in error or "
                                  "blocked by a failure can be retried")
            blocked = row.status == BLOCKED
            error_type = (row.incident or {}).get("error_type")

        def reset(work: _Work) -> None:
            if not blocked and error_type == UNSAVEABLE_STATE:
                return  # nothing failed in the saved state: run on from the last checkpoint
            if blocked:
                _refuse_unless_resumable(work.workflow, instance_id)
            target = _last_routed_failure(work.workflow) if blocked else _errored_task(work.workflow, task_id)
            if target is None:
                raise EngineError(f"instance {instance_id} was not stopped by a failed task "
                                  "(a person's decision ended it): submit the scope again")
            work.workflow.reset_from_task_id(target.id, data=None)
            work.workflow.completed = False  # Spiff leaves a finished workflow marked completed after a reset
            reset_task = work.workflow.get_task_from_id(target.id)
            reset_task.internal_data.pop("scopeflow_failure", None)
            if data:
                reset_task.data.update(data)

        audit = [AuditEvent(actor=actor, action="instance.retry", target=instance_id, instance_id=instance_id,
                            details={"edited": sorted(data or {}), "was": "blocked" if blocked else "error"})]
        with self._work(instance_id) as work:
            status = self._run(work, "retry", before=reset, audit=audit)
        if blocked:
            with self.sessions.begin() as session:
                session.execute(update(Instance).where(Instance.id == instance_id).values(
                    ended_at=None if status not in FINAL_STATUSES else utcnow()))
        return status

    def cancel(self, instance_id: str, *, actor: str = "cli") -> str:
        with self.sessions() as session:
            row = session.get(Instance, instance_id)
            if row is None:
                raise NotFound(f"unknown instance {instance_id}")
            if row.status in FINAL_STATUSES:
                raise EngineError(f"instance {instance_id} is already {row.status}")
        audit = [AuditEvent(actor=actor, action="instance.cancel", target=instance_id, instance_id=instance_id)]
        with self._work(instance_id) as work:
            with work.runner.advance_span(work.carrier, "cancel") as carrier:
                work.carrier = carrier
                work.workflow.cancel()
            return self._checkpoint(work, final=True, audit=audit, status=CANCELLED)

    def send_message(self, name: str, payload: dict[str, Any] | None = None, *, correlation_key: str | None = None,
                     actor: str = "cli") -> list[str]:
        """Deliver a message to every instance waiting for ``name`` (with that correlation key)."""
        with self.sessions() as session:
            query = select(MessageSubscription.instance_id).where(MessageSubscription.message_name == name)
            if correlation_key is not None:
                query = query.where(MessageSubscription.correlation_key == str(correlation_key))
            targets = sorted(set(session.scalars(query).all()))
        delivered = []
        for instance_id in targets:
            def deliver(work: _Work) -> None:
                waiting = [t.task_spec.event_definition for t in work.workflow.event_manager.tasks.values()
                           if isinstance(t.task_spec.event_definition, MessageEventDefinition)
                           and t.task_spec.event_definition.name == name]
                if not waiting:
                    raise EngineError(f"instance {work.instance_id} is no longer waiting for {name!r}", code=1)
                # The waiting task's own definition: matching compares the definition class too.
                work.workflow.send_event(BpmnEvent(waiting[0], payload=payload or {}))

            audit = [AuditEvent(actor=actor, action="message.deliver", target=name, instance_id=instance_id,
                                details={"correlation_key": correlation_key})]
            with self._work(instance_id) as work:
                self._run(work, f"message {name}", before=deliver, audit=audit)
            delivered.append(instance_id)
        return delivered

    # ---------------------------------------------------------------- worker support
    def due_instances(self, limit: int = 50) -> list[str]:
        """Instances a worker should advance now (read only; :meth:`claim_due` also leases them).

        Due means: marked ready, waiting with a timer that is due, or running under a lease that
        expired (its worker died mid-advance, after a checkpoint that cleared ``needs_advance``).
        """
        now = utcnow()
        with self.sessions() as session:
            query = select(Instance.id).where(_due(now)).order_by(Instance.updated_at).limit(limit)
            return list(session.scalars(query).all())

    def claim_due(self, limit: int = 1, *, lease_s: float | None = None) -> list[str]:
        """Lease up to ``limit`` due instances to this engine's worker id and return their ids.

        One statement: an UPDATE of the rows a sub-select picks. On PostgreSQL the sub-select is
        ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait for or share a row; SQLite
        serialises writers, so the same conditional UPDATE is atomic there. A claimed row is
        advanced with :meth:`advance` by this engine (the lease is re-entrant for its owner).
        ``lease_s`` overrides the lease length (the Celery dispatcher's claim until a worker
        takes the row over); the default is ``settings.lock_lease_s``.
        """
        if limit < 1:
            return []
        now = utcnow()
        expires = now + timedelta(seconds=self.settings.lock_lease_s if lease_s is None else lease_s)
        with self.sessions.begin() as session:
            pick = select(Instance.id).where(_due(now)).order_by(Instance.updated_at).limit(limit)
            if session.get_bind().dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            claimed = session.execute(
                update(Instance)
                .where(Instance.id.in_(pick.scalar_subquery()), _lease_free(now))
                .values(lock_owner=self.worker_id, lock_expires_at=expires)
                .returning(Instance.id)
                .execution_options(synchronize_session=False)
            ).scalars().all()
        return list(claimed)

    def run_due(self, limit: int = 50) -> list[tuple[str, str]]:
        """Claim up to ``limit`` due instances and advance each once.

        Returns (instance id, status), or (id, 'busy') when the lease was lost meanwhile, or
        (id, 'failed: <message>') when the engine refused it (e.g. a corrupt state row) — one bad
        instance never stops the others.
        """
        results = []
        for instance_id in self.claim_due(limit):
            try:
                results.append((instance_id, self.advance(instance_id, reason="worker")))
            except Busy:
                results.append((instance_id, "busy"))
            except EngineError as exc:
                log.error("instance %s: advance refused: %s", instance_id, exc)
                results.append((instance_id, f"failed: {exc}"))
        return results


INSTANCE = Instance.__table__
AUDIT = AuditEvent.__table__
# The checkpoint's UPDATE, built once: only the row this advance leased, at the version it loaded.
UPDATE_LEASED = update(INSTANCE).where(INSTANCE.c.id == bindparam("b_id"), INSTANCE.c.lock_owner == bindparam("b_owner"),
                                       INSTANCE.c.row_version == bindparam("b_version"))


def _write_row(conn: Connection, work: _Work, values: dict[str, Any]) -> None:
    """The unit of work's instance row: inserted by a fresh start's first write, else updated only
    under this advance's lease at the version it loaded (``Busy`` when the lease was lost)."""
    if work.new_row is not None:
        conn.execute(insert(INSTANCE), {**work.new_row, **values})
    elif not conn.execute(UPDATE_LEASED, {"b_id": work.instance_id, "b_owner": work.lease,
                                          "b_version": work.row_version, **values}).rowcount:
        raise Busy(f"instance {work.instance_id}: lease lost before checkpoint; nothing written")


def _new_workflow(loaded: versions.LoadedVersion, start_data: dict[str, Any]) -> FlowWorkflow:
    workflow = FlowWorkflow(loaded.spec, loaded.subprocess_specs)
    workflow.spec_ref = loaded.id   # its state refers to the version's spec instead of embedding it
    workflow.get_next_task(state=TaskState.READY).data.update(start_data)  # a copy: _start_data made it
    return workflow


def _audit_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Audit events (built as ORM objects by the callers) as rows for one Core executemany."""
    rows = []
    for event in events:
        row = {column.key: getattr(event, column.key) for column in AUDIT.columns}
        rows.append({key: value for key, value in row.items() if value is not None})
    for row in rows:
        row.setdefault("at", utcnow())
        row.setdefault("details", {})
        row.setdefault("target", "")
    return rows


def _lease_free(now: datetime):
    """No worker holds the row, or its lease expired (a live lease of this engine counts as held)."""
    return or_(Instance.lock_owner.is_(None), Instance.lock_expires_at < now)


def _due(now: datetime):
    """The SQL condition of an instance a worker should advance now (see ``due_instances``)."""
    abandoned = (Instance.status == RUNNING) & Instance.lock_owner.is_not(None)
    timer_due = (Instance.status == WAITING) & (Instance.wake_at <= now)
    return and_(or_(Instance.needs_advance.is_(True), timer_due, abandoned),
                Instance.status.in_([RUNNING, WAITING]), _lease_free(now))


# -------------------------------------------------------------------- helpers
def _errored_task(wf: BpmnWorkflow, task_id: str | None):
    """The incident's task, else any errored task. ``get_tasks(state=ERROR)`` misses an errored
    multi-instance child in SpiffWorkflow 3.2, so look the id up directly and scan every task."""
    if task_id:
        task = wf.tasks.get(_uuid(task_id))
        for sub in wf.subprocesses.values():
            task = task or sub.tasks.get(_uuid(task_id))
        if task is not None and task.state == TaskState.ERROR:
            return task
    failed = [t for t in wf.get_tasks() if t.state == TaskState.ERROR]
    return failed[0] if failed else None


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _refuse_unless_resumable(wf: BpmnWorkflow, instance_id: str) -> None:
    """A run ended by a decision or a verdict (not a failure of the taxonomy) cannot be retried."""
    blocker = (wf.last_task.data.get("blocker") if wf.last_task is not None else None) or {}
    kind = blocker.get("kind") if isinstance(blocker, dict) else None
    if isinstance(kind, str) and not resumable(kind):
        raise EngineError(f"instance {instance_id} cannot be resumed: it stopped on a blocker of kind {kind} "
                          f"({blocker.get('message', 'see BLOCKERS.md')}), and running the same steps again "
                          "would decide the same; edit the scope and submit it again (BLOCKERS.md names the file)")


def _last_routed_failure(wf: BpmnWorkflow):
    """The most recent task whose failure a boundary event caught (it led to the blocker path)."""
    failed = [t for t in wf.get_tasks() if t.internal_data.get("scopeflow_failure")]
    task = max(failed, key=lambda t: t.last_state_change, default=None)
    # The caught failure's path hangs off the boundary-event split above the task; resetting there
    # discards that path too (resetting the task alone would leave the finished blocker path in place).
    if task is not None and isinstance(task.parent.task_spec, BoundaryEventSplit):
        return task.parent
    return task


def _tree_signature(root: Path) -> tuple:
    if not root.is_dir():
        return ()
    entries = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            stat = os.stat(os.path.join(directory, name))
            entries.append((directory, name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(entries))


def _validate(schema: dict[str, Any], data: dict[str, Any], what: str) -> None:
    validator = Draft202012Validator(schema)
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        first = problems[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(root)"
        raise EngineError(f"{what} is invalid at {where}: {first.message}")


def _with_defaults(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


def _split_secrets(schema: dict[str, Any], data: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Take ``x-secret`` fields out of the data (their values go to the secret store only)."""
    secrets: dict[str, str] = {}
    clean = dict(data)
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or key not in clean:
            continue
        if prop.get("x-secret"):
            value = clean.pop(key)
            if isinstance(value, dict):
                secrets.update({str(k): str(v) for k, v in value.items() if v})
                clean[key] = sorted(str(k) for k, v in value.items() if v)
            elif value:
                secrets[key] = str(value)
        elif prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict) \
                and prop["additionalProperties"].get("x-secret") and isinstance(clean[key], dict):
            value = clean.pop(key)
            secrets.update({str(k): str(v) for k, v in value.items() if v})
            clean[key] = sorted(str(k) for k, v in value.items() if v)
    return secrets, clean


def _timer_due(definition, task) -> datetime | None:
    value = definition.details(task).value
    if isinstance(value, str):
        try:
            due = datetime.fromisoformat(value)
        except ValueError:
            return None
        return due if due.tzinfo else due.replace(tzinfo=UTC)
    return None


def _add_duration(start: datetime, iso: str) -> datetime | None:
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


def _instructions(props: dict[str, str], data: dict[str, Any]) -> str:
    text = props.get("instructionsForEndUser", "")
    if not text:
        return ""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:   # immutable: rendering instructions must never change the task data it reads
        return ImmutableSandboxedEnvironment(autoescape=False).from_string(text).render(**data)
    except Exception as exc:  # a template error must not stop the instance
        return f"{text}\n\n(instructions could not be rendered: {type(exc).__name__}: {exc})"


def _monotonic_progress(measured: int, status: str, stored: int) -> int:
    """The progress column's new value: 100 only for ``completed``; a blocked, cancelled or failed
    run keeps what it had reached (its workflow may be "complete" on the blocker path, which is not
    delivery); otherwise never below the last checkpoint's value (``stored``), since a loop (rebuild,
    re-plan) adds tasks to the tree and would make done/total fall."""
    if status == COMPLETED:
        return 100
    if status in FINAL_STATUSES:
        return stored
    return max(stored, min(measured, 99))


def _ended_blocked(work: _Work, snapshot: Snapshot) -> bool:
    process = work.version.catalog.processes.get(work.version.name)
    if process is None:
        return False
    for element_id in snapshot.completed_elements:
        element = process.element(element_id)
        if element and element.tag == "endEvent" and element.properties.get("instanceStatus") == "blocked":
            return True
    return False


def _outcome(wf: BpmnWorkflow) -> dict[str, Any]:
    data = wf.last_task.data if wf.last_task is not None else {}
    try:
        kept = {k: data[k] for k in ("report", "release") if isinstance(data.get(k), dict)}
        return json.loads(json.dumps(kept, default=str))
    except (TypeError, ValueError):
        return {}
