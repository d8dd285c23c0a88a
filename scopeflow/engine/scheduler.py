"""Which instances a worker should advance now, and claiming them.

Due means: marked ready (``needs_advance``), waiting with a timer that is due (``wake_at``), or
running under a lease that expired (its worker died mid-advance, after a checkpoint that cleared
``needs_advance``) — and not leased by a live worker.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, update

from scopeflow.engine.errors import Busy, EngineError
from scopeflow.engine.models import RUNNING, WAITING, Instance, utcnow

if TYPE_CHECKING:
    from scopeflow.engine.service import Engine

log = logging.getLogger(__name__)


def due_instances(engine: Engine, limit: int = 50) -> list[str]:
    """Ids of the instances due now, oldest update first (read only: nothing is leased)."""
    now = utcnow()
    with engine.sessions() as session:
        query = select(Instance.id).where(_due(now)).order_by(Instance.updated_at).limit(limit)
        return list(session.scalars(query).all())


def claim_due(engine: Engine, limit: int = 1, *, lease_s: float | None = None) -> list[str]:
    """Lease up to ``limit`` due instances to the engine's worker id and return their ids.

    One statement: an UPDATE of the rows a sub-select picks. On PostgreSQL the sub-select is
    ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait for or share a row; SQLite
    serialises writers, so the same conditional UPDATE is atomic there.
    """
    if limit < 1:
        return []
    now = utcnow()
    expires = now + timedelta(seconds=engine.settings.lock_lease_s if lease_s is None else lease_s)
    with engine.sessions.begin() as session:
        pick = select(Instance.id).where(_due(now)).order_by(Instance.updated_at).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claimed = session.execute(
            update(Instance)
            .where(Instance.id.in_(pick.scalar_subquery()), _lease_free(now))
            .values(lock_owner=engine.worker_id, lock_expires_at=expires)
            .returning(Instance.id)
            .execution_options(synchronize_session=False)
        ).scalars().all()
    return list(claimed)


def run_due(engine: Engine, limit: int = 50) -> list[tuple[str, str]]:
    """Claim up to ``limit`` due instances and advance each once; one bad instance never stops the
    others (see :meth:`Engine.run_due` for the result pairs)."""
    results = []
    for instance_id in claim_due(engine, limit):
        try:
            results.append((instance_id, engine.advance(instance_id, reason="worker")))
        except Busy:
            results.append((instance_id, "busy"))
        except EngineError as exc:
            log.error("instance %s: advance refused: %s", instance_id, exc)
            results.append((instance_id, f"failed: {exc}"))
    return results


def _lease_free(now: datetime):
    """No worker holds the row, or its lease expired (a live lease of this engine counts as held)."""
    return or_(Instance.lock_owner.is_(None), Instance.lock_expires_at < now)


def _due(now: datetime):
    """The SQL condition of an instance a worker should advance now (see the module docstring)."""
    abandoned = (Instance.status == RUNNING) & Instance.lock_owner.is_not(None)
    timer_due = (Instance.status == WAITING) & (Instance.wake_at <= now)
    return and_(or_(Instance.needs_advance.is_(True), timer_due, abandoned),
                Instance.status.in_([RUNNING, WAITING]), _lease_free(now))
