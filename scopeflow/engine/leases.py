"""Instance leases: one token per advance, kept alive by a heartbeat while the advance runs.

An advance owns its instance row through ``lock_owner = <token>`` and ``lock_expires_at``. The token
is new for every advance (``<worker id>#<random>``), so two threads of one process — which share an
``Engine`` and its worker id, like the web UI's — never both hold the same instance. A claim made by
``Engine.claim_due`` is written under the plain worker id; only that engine's advance takes it over.

A task may run far longer than the lease (a verification can take four times 300 s), so a
:class:`Heartbeat` thread renews every live lease of its engine every third of the lease length. A
renewal that finds the row no longer carrying the token marks the lease *lost*: the checkpoint then
refuses to write (it also conditions its UPDATE on the token, so a lost lease never writes).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import Engine as DbEngine
from sqlalchemy import update

from scopeflow.engine.models import Instance, utcnow

log = logging.getLogger(__name__)

_OWNER_LEN = 100  # instance.lock_owner is VARCHAR(100)


def new_token(worker_id: str) -> str:
    """A lease owner name unique to one advance that still says which worker holds it."""
    suffix = "#" + uuid.uuid4().hex[:12]
    return worker_id[: _OWNER_LEN - len(suffix)] + suffix


class Heartbeat:
    """Renews the leases its engine holds, every third of the lease length, from one daemon
    thread per process (:class:`_Pump`) that exits when no engine holds a lease."""

    def __init__(self, db: DbEngine, lease_s: float):
        self.db = db
        self.lease_s = lease_s
        self.interval_s = max(lease_s / 3.0, 0.05)
        self.due_at = 0.0                    # monotonic time of the next renewal
        self._held: dict[str, str] = {}      # token -> instance id
        self._lost: set[str] = set()
        self._lock = threading.Lock()

    def hold(self, token: str, instance_id: str) -> None:
        """Keep ``token``'s lease on ``instance_id`` alive until :meth:`release`."""
        with self._lock:
            if not self._held:
                self.due_at = time.monotonic() + self.interval_s
            self._held[token] = instance_id
        _PUMP.add(self)

    def release(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)
            self._lost.discard(token)

    def holds_any(self) -> bool:
        with self._lock:
            return bool(self._held)

    def lost(self, token: str) -> bool:
        """Whether a renewal found the lease taken over (or the row gone)."""
        with self._lock:
            return token in self._lost

    def renew(self) -> int:
        """Renew every held lease now; returns how many were still held."""
        with self._lock:
            held = dict(self._held)
            self.due_at = time.monotonic() + self.interval_s
        kept = 0
        for token, instance_id in held.items():
            expires = utcnow() + timedelta(seconds=self.lease_s)
            with self.db.begin() as conn:
                renewed = conn.execute(update(Instance.__table__).where(
                    Instance.__table__.c.id == instance_id, Instance.__table__.c.lock_owner == token,
                ).values(lock_expires_at=expires)).rowcount
            if renewed:
                kept += 1
                continue
            with self._lock:
                if token in self._held:
                    self._lost.add(token)
            log.warning("instance %s: lease %s was taken over while its advance ran", instance_id, token)
        return kept


class _Pump:
    """The process's one heartbeat thread: renews each engine's leases when they are due."""

    def __init__(self) -> None:
        self._beats: set[Heartbeat] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()   # a new engine's leases may be due sooner than the others'

    def add(self, beat: Heartbeat) -> None:
        with self._lock:
            self._beats.add(beat)
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="scopeflow-lease-heartbeat", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.clear()   # before the snapshot: an engine added after it wakes the wait below
            with self._lock:
                self._beats = {beat for beat in self._beats if beat.holds_any()}
                if not self._beats:
                    self._thread = None
                    return
                beats = list(self._beats)
            now = time.monotonic()
            for beat in beats:
                if beat.due_at <= now:
                    try:
                        beat.renew()
                    except Exception:  # the store is unreachable: the checkpoint will say so; keep trying
                        log.exception("lease heartbeat: cannot renew leases")
            self._wake.wait(max(0.01, min(beat.due_at for beat in beats) - time.monotonic()))


_PUMP = _Pump()
