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
    """Renews the leases its engine holds; one daemon thread, started on first use, that exits
    when it has nothing to renew."""

    def __init__(self, db: DbEngine, lease_s: float):
        self.db = db
        self.lease_s = lease_s
        self.interval_s = max(lease_s / 3.0, 0.05)
        self._held: dict[str, str] = {}      # token -> instance id
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, token: str, instance_id: str) -> None:
        """Keep ``token``'s lease on ``instance_id`` alive until :meth:`release`."""
        with self._lock:
            self._held[token] = instance_id
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="scopeflow-lease-heartbeat", daemon=True)
                self._thread.start()

    def release(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)
            self._lost.discard(token)

    def lost(self, token: str) -> bool:
        """Whether a renewal found the lease taken over (or the row gone)."""
        with self._lock:
            return token in self._lost

    def renew(self) -> int:
        """Renew every held lease now; returns how many were still held."""
        with self._lock:
            held = dict(self._held)
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

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
            try:
                self.renew()
            except Exception:  # the store is unreachable: the checkpoint will say so; keep trying
                log.exception("lease heartbeat: cannot renew leases")
