"""The engine's public face: one :class:`Engine` per process (or per worker thread) that the CLI,
the web UI, the lifecycle commands and the workers call. It holds the shared pieces — settings,
database, telemetry, the lease heartbeat, the secret store, the span-chain key — and delegates each
job to the module that owns it:

- ``engine/unit_of_work.py`` + ``engine/checkpoint.py``: lease, load, run, checkpoint (every state change);
- ``engine/model_versions.py``: deploy the models directory, pick the version a start runs;
- ``engine/human_tasks.py``: complete a human task (``engine/task_rows.py`` opens the rows);
- ``engine/recovery.py``: retry and cancel; ``engine/messages.py``: deliver messages;
- ``engine/scheduler.py``: which instances are due, claiming them for a worker.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import uuid
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import Any

from SpiffWorkflow.util.task import TaskState

from scopeflow.config import Settings
from scopeflow.engine import human_tasks, messages, recovery, scheduler, versions
from scopeflow.engine.chain_key import load_chain_key
from scopeflow.engine.checkpoint import INSERT_AUDIT, INSERT_INSTANCE, audit_row
from scopeflow.engine.db import get_engine, private_dir, session_factory
from scopeflow.engine.errors import UNSAVEABLE_STATE, Busy, EngineError, Forbidden, NotFound
from scopeflow.engine.flow import FlowWorkflow
from scopeflow.engine.forms import validate, with_defaults
from scopeflow.engine.leases import Heartbeat
from scopeflow.engine.model_versions import ModelVersions
from scopeflow.engine.models import RUNNING, AuditEvent, Instance, new_instance_id, utcnow
from scopeflow.engine.progress import workflow_data
from scopeflow.engine.secrets import SecretError, SecretStore, open_store
from scopeflow.engine.spanstore import chain_tail, load_chain
from scopeflow.engine.spiff import deserialize, serialize, set_spiff_log_level
from scopeflow.engine.unit_of_work import Work, open_work, run
from scopeflow.handlers import registry
from scopeflow.handlers.failures import CONFIGURATION, TaskFailure
from scopeflow.processes.catalog import Catalog, CatalogError
from scopeflow.redaction import secret_redactor
from scopeflow.spans.integrity import ChainReport, verify_chain
from scopeflow.spans.tracing import Telemetry, records_of, telemetry

__all__ = ["UNSAVEABLE_STATE", "Busy", "Engine", "EngineError", "Forbidden", "NotFound"]
log = logging.getLogger(__name__)


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
        self.models = ModelVersions(self.sessions, self.db, settings)
        versions.remember_store(self.sessions)
        set_spiff_log_level(settings.spiff_log_level)
        self.heartbeat = Heartbeat(self.db, settings.lock_lease_s)
        self._workspaces: tuple[tuple | None, Path] = (None, Path())   # ((workspaces dir, cwd), resolved)

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

    # ---------------------------------------------------------------- models (engine/model_versions.py)
    def deploy(self, models: list[str] | None = None, models_dir: Path | None = None) -> list[dict[str, Any]]:
        """Lint and store new versions of ``models`` (default: all); lint errors refuse the deploy."""
        return self.models.deploy(models, models_dir)

    def catalog(self) -> Catalog:
        """The models directory's catalog, re-read only when a file in it changed."""
        return self.models.scan(self.settings.models_dir)

    # ---------------------------------------------------------------- start
    def start(self, model: str, data: dict[str, Any] | None = None, *, actor: str = "cli",
              title: str = "", advance: bool = True) -> str:
        """Create an instance of the newest version of ``model`` and (by default) advance it.

        The new row is created already leased to this engine, so the first advance runs on the
        workflow in memory instead of reading back the state it just wrote.
        """
        try:
            loaded = self.models.current(model)
        except CatalogError as exc:
            raise NotFound(str(exc)) from None
        now = utcnow()
        instance_id = new_instance_id()
        start_data = self._start_data(loaded, data or {})
        workflow = _new_workflow(loaded, start_data)
        row = dict(id=instance_id, model_name=model, model_version_id=loaded.id, model_version=loaded.version,
                   status=RUNNING, title=(title or model)[:300], needs_advance=True, created_by=actor,
                   created_at=now, updated_at=now, trace_carrier={}, outcome={})
        audit = [audit_row(actor, "instance.start", instance_id, instance_id, {"model": model, "version": loaded.version})]
        self.workspace(instance_id).mkdir(parents=True, exist_ok=True)
        if not advance:
            with self.db.begin() as conn:
                conn.execute(INSERT_INSTANCE, {**row, "state": serialize(workflow), "row_version": 1})
                conn.execute(INSERT_AUDIT, audit)
            return instance_id
        # One transaction for the whole start: the row is inserted by the advance's first checkpoint.
        with open_work(self, instance_id, fresh=(workflow, loaded, row)) as work:
            # Only for a state that cannot be saved: rebuilt from the caller's data (left untouched).
            work.initial_state = lambda: serialize(_new_workflow(loaded, self._start_data(loaded, data or {})))
            run(self, work, "start", audit=audit)
        return instance_id

    def _start_data(self, loaded: versions.LoadedVersion, data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise EngineError("start data must be a JSON object")
        form_name = loaded.catalog.process(loaded.name).start_form
        if not form_name:
            return copy.deepcopy(data)
        schema = loaded.catalog.form(form_name) or {}
        filled = with_defaults(schema, data)
        validate(schema, filled, "start data")
        return filled

    def workspace(self, instance_id: str) -> Path:
        """The instance's working directory (absolute). The workspaces directory is resolved once
        (a start asks twice, and ``resolve`` stats every component of the path)."""
        base = self.settings.workspaces_dir
        if "/" in instance_id or instance_id in ("", ".", ".."):
            return (base / instance_id).resolve()
        key = (base, "" if base.is_absolute() else os.getcwd())   # a relative one follows the cwd
        if self._workspaces[0] != key:
            self._workspaces = (key, base.resolve())
        return self._workspaces[1] / instance_id

    # ---------------------------------------------------------------- units of work (engine/unit_of_work.py)
    def _work(self, instance_id: str, fresh: tuple | None = None) -> AbstractContextManager[Work]:
        """Lease and load the instance for one unit of work (see ``unit_of_work.open_work``)."""
        return open_work(self, instance_id, fresh)

    def _run(self, work: Work, reason: str, before=None, audit: list[AuditEvent] | None = None,
             steps: bool = True) -> str:
        return run(self, work, reason, before, audit, steps)

    def advance(self, instance_id: str, *, reason: str = "advance") -> str:
        """Run the instance until nothing is READY; returns its status."""
        with open_work(self, instance_id) as work:
            return run(self, work, reason)

    # ---------------------------------------------------------------- human tasks (engine/human_tasks.py)
    def complete_task(self, task_row_id: str, data: dict[str, Any], *, actor: str, advance: bool = True,
                      policy: str | None = None) -> str:
        """Validate ``data`` against the task's form, complete it, and advance the instance.

        ``actor`` must be an active account holding the role of the task's lane (or admin), whatever
        the channel, and a task someone claimed is completed by that person or an admin only
        (``Forbidden``); with ``policy`` (e.g. ``--yes``) the completion is an automatic decision on
        ``actor``'s behalf and is recorded as automated, never as a person's.
        With ``advance=False`` only the completion is checkpointed; the instance is left ``running``
        and marked for a worker (what the web UI does, so a request never waits for a build).
        """
        return human_tasks.complete_task(self, task_row_id, data, actor=actor, advance=advance, policy=policy)

    # ---------------------------------------------------------------- operator actions (engine/recovery.py)
    def retry(self, instance_id: str, data: dict[str, Any] | None = None, *, actor: str = "cli") -> str:
        """Run the failed task again (with edited data) and advance.

        For an instance in ``error`` that is the task of the incident. For a ``blocked`` instance it
        is the last task whose failure was routed to the blocker path (e.g. the credentials check,
        once the credential is stored); a run blocked by a person's decision cannot be retried.
        """
        return recovery.retry(self, instance_id, data, actor=actor)

    def cancel(self, instance_id: str, *, actor: str = "cli") -> str:
        return recovery.cancel(self, instance_id, actor=actor)

    def send_message(self, name: str, payload: dict[str, Any] | None = None, *, correlation_key: str | None = None,
                     actor: str = "cli") -> list[str]:
        """Deliver a message to every instance waiting for ``name`` (with that correlation key)."""
        return messages.send_message(self, name, payload, correlation_key=correlation_key, actor=actor)

    # ---------------------------------------------------------------- worker support (engine/scheduler.py)
    def due_instances(self, limit: int = 50) -> list[str]:
        """Instances a worker should advance now (read only; :meth:`claim_due` also leases them).

        Due means: marked ready, waiting with a timer that is due, or running under a lease that
        expired (its worker died mid-advance, after a checkpoint that cleared ``needs_advance``).
        """
        return scheduler.due_instances(self, limit)

    def claim_due(self, limit: int = 1, *, lease_s: float | None = None) -> list[str]:
        """Lease up to ``limit`` due instances to this engine's worker id and return their ids.

        One statement: an UPDATE of the rows a sub-select picks. On PostgreSQL the sub-select is
        ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait for or share a row; SQLite
        serialises writers, so the same conditional UPDATE is atomic there. A claimed row is
        advanced with :meth:`advance` by this engine (the lease is re-entrant for its owner).
        ``lease_s`` overrides the lease length (the Celery dispatcher's claim until a worker
        takes the row over); the default is ``settings.lock_lease_s``.
        """
        return scheduler.claim_due(self, limit, lease_s=lease_s)

    def run_due(self, limit: int = 50) -> list[tuple[str, str]]:
        """Claim up to ``limit`` due instances and advance each once.

        Returns (instance id, status), or (id, 'busy') when the lease was lost meanwhile, or
        (id, 'failed: <message>') when the engine refused it (e.g. a corrupt state row) — one bad
        instance never stops the others.
        """
        return scheduler.run_due(self, limit)


def _new_workflow(loaded: versions.LoadedVersion, start_data: dict[str, Any]) -> FlowWorkflow:
    workflow = FlowWorkflow(loaded.spec, loaded.subprocess_specs)
    workflow.spec_ref = loaded.id   # its state refers to the version's spec instead of embedding it
    workflow.get_next_task(state=TaskState.READY).data.update(start_data)  # a copy: _start_data made it
    return workflow
