"""Guards of the lease that no other test made fail: a second thread of the same engine is refused
at once (its token differs from the running advance's), and the heartbeat renews only its own
lease — once another worker took the row over, it marks the lease lost instead of extending the
other worker's lease, and the checkpoint refuses to write for that reason."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from scopeflow.engine.models import Instance, utcnow
from scopeflow.engine.service import Busy, Engine
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.registry import operator
from scopeflow.processes.synth import linear_process
from tests.conftest import make_settings
from tests.test_leases import _Advance, _row
from tests.test_leases import _start_held as start_held

ENTERED = threading.Event()
RELEASE = threading.Event()
RUNS: list[str] = []


@operator("guard_test_hold")
def _hold(ctx: TaskContext) -> dict:
    """Test operator: counts its runs, signals that it runs, holds until the test releases it."""
    RUNS.append(ctx.instance_id)
    ENTERED.set()
    return {"released": RELEASE.wait(20)}


@operator("guard_test_expensive", expensive=True)
def _expensive(ctx: TaskContext) -> dict:
    """Test operator: cheap, but declared expensive, so the engine checkpoints right after it."""
    return {"paid": True}


@pytest.fixture
def held_engine(tmp_path):
    ENTERED.clear()
    RELEASE.clear()
    RUNS.clear()
    models = tmp_path / "models"
    models.mkdir()
    (models / "held.bpmn").write_text(linear_process("held", [("hold", "guard_test_hold", {})]), encoding="utf-8")
    (models / "paid_then_held.bpmn").write_text(linear_process("paid_then_held", [
        ("pay", "guard_test_expensive", {}), ("hold", "guard_test_hold", {})]), encoding="utf-8")

    def make(**settings) -> Engine:
        return Engine(make_settings(tmp_path / "home", models, migrated_copy=True, **settings))

    yield make
    RELEASE.set()


def _start_held(engine: Engine) -> tuple[str, _Advance]:
    return start_held(engine, ENTERED)


def test_another_thread_of_the_same_engine_is_refused_at_once_and_the_task_runs_once(held_engine):
    engine = held_engine()
    instance_id, runner = _start_held(engine)
    owner = _row(engine, instance_id).lock_owner
    assert owner.startswith(engine.worker_id + "#"), "the lease names the worker and this advance"
    began = time.monotonic()
    with pytest.raises(Busy, match="is being advanced by"):
        engine.advance(instance_id)
    assert time.monotonic() - began < 5, "refused before running anything, not after the held task"
    assert _row(engine, instance_id).lock_owner == owner, "the running advance keeps its lease"
    RELEASE.set()
    runner.join(20)
    assert runner.error is None and runner.result == "completed"
    assert RUNS == [instance_id], "the task ran once"


def test_a_renewal_after_a_takeover_marks_the_lease_lost_and_leaves_the_new_lease_alone(held_engine):
    engine = held_engine(lock_lease_s=0.6)   # renewed every 0.2 s
    instance_id, runner = _start_held(engine)
    theirs = utcnow() + timedelta(seconds=600)
    with engine.sessions.begin() as session:   # another worker takes the row over
        session.execute(update(Instance).where(Instance.id == instance_id).values(
            lock_owner="other-host:1:abcd#0123456789ab", lock_expires_at=theirs))
    time.sleep(0.8)   # several renewals
    row = _row(engine, instance_id)
    assert row.lock_owner == "other-host:1:abcd#0123456789ab"
    assert abs((row.lock_expires_at.replace(tzinfo=theirs.tzinfo) - theirs).total_seconds()) < 1, \
        "the heartbeat must not extend another worker's lease"
    before = (row.row_version, row.state)
    RELEASE.set()
    runner.join(20)
    assert isinstance(runner.error, Busy)
    assert "lease lost while the advance ran" in str(runner.error), "the heartbeat found the takeover first"
    after = _row(engine, instance_id)
    assert (after.row_version, after.state) == before


def test_a_checkpoint_is_refused_when_the_row_changed_under_the_same_lease(held_engine):
    """The checkpoint writes at the row version it loaded: a row someone else wrote meanwhile (here
    without taking the lease) is not overwritten with a state built from the older one."""
    engine = held_engine()
    instance_id, runner = _start_held(engine)
    with engine.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == instance_id).values(
            row_version=Instance.row_version + 1, status="cancelled"))
    written = _row(engine, instance_id)
    RELEASE.set()
    runner.join(20)
    assert isinstance(runner.error, Busy) and "lease lost before checkpoint" in str(runner.error)
    after = _row(engine, instance_id)
    assert (after.row_version, after.status, after.state) == (written.row_version, "cancelled", written.state)


def test_a_start_keeps_its_lease_alive_after_its_first_mid_run_checkpoint(held_engine):
    """A start's row is inserted by its first checkpoint (here right after an expensive task); from
    then on the heartbeat must renew its lease, or another worker claims the row mid-task."""
    engine = held_engine(lock_lease_s=0.6)
    outcome: dict = {}

    def start() -> None:
        try:
            outcome["id"] = engine.start("paid_then_held", {})
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    assert ENTERED.wait(20), "the held task never started"
    time.sleep(1.5)   # well past the lease
    assert held_engine().claim_due(5) == [], "a renewed lease is not claimable"
    RELEASE.set()
    starter.join(20)
    assert "error" not in outcome, outcome
    assert _row(engine, outcome["id"]).status == "completed"
