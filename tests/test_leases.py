"""Leases hold: one advance per instance at a time, kept alive while a long task runs, and a
checkpoint is refused once the lease is someone else's. A human task's completion commits with
the state that records it, or not at all."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from scopeflow.engine.leases import Heartbeat
from scopeflow.engine.models import HumanTask, Instance, SpanRow, utcnow
from scopeflow.engine.service import Busy, Engine
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.registry import operator
from scopeflow.processes.synth import linear_process
from tests.conftest import add_account, make_settings

ENTERED = threading.Event()
RELEASE = threading.Event()


@operator("lease_test_hold")
def _hold(ctx: TaskContext) -> dict:
    """Test operator: signals that it runs, then holds its task until the test releases it."""
    ENTERED.set()
    released = RELEASE.wait(20)
    return {"released": released}


@pytest.fixture
def held(tmp_path):
    ENTERED.clear()
    RELEASE.clear()
    models = tmp_path / "models"
    models.mkdir()
    (models / "held.bpmn").write_text(linear_process("held", [("hold", "lease_test_hold", {})]), encoding="utf-8")
    yield models
    RELEASE.set()


def _engine(tmp_path, models, **settings) -> Engine:
    return Engine(make_settings(tmp_path / "home", models, **settings))


class _Advance(threading.Thread):
    """``engine.advance(instance_id)`` in a thread; keeps its result or exception."""

    def __init__(self, engine: Engine, instance_id: str):
        super().__init__(daemon=True)
        self.engine, self.instance_id = engine, instance_id
        self.result: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.engine.advance(self.instance_id)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc


def _start_held(engine: Engine, entered: threading.Event = ENTERED) -> tuple[str, _Advance]:
    """Start ``held`` and advance it in a thread until its operator signals ``entered``."""
    instance_id = engine.start("held", {}, advance=False)
    runner = _Advance(engine, instance_id)
    runner.start()
    assert entered.wait(20), "the held task never started"
    return instance_id, runner


def _row(engine: Engine, instance_id: str) -> Instance:
    with engine.sessions() as session:
        return session.get(Instance, instance_id)


def _span_count(engine: Engine, instance_id: str) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(SpanRow).where(SpanRow.instance_id == instance_id))


def test_a_second_advance_while_one_runs_is_busy_in_another_worker_and_in_another_thread(tmp_path, held):
    engine = _engine(tmp_path, held)
    instance_id, runner = _start_held(engine)
    other_worker = _engine(tmp_path, held)
    with pytest.raises(Busy):
        other_worker.advance(instance_id)
    # Same Engine (same worker id), another thread — what the web UI does: still one advance at a time.
    with pytest.raises(Busy):
        engine.advance(instance_id)
    RELEASE.set()
    runner.join(20)
    assert runner.error is None and runner.result == "completed"


def test_a_checkpoint_is_refused_once_the_lease_was_taken_over(tmp_path, held):
    engine = _engine(tmp_path, held)
    instance_id, runner = _start_held(engine)
    before = _row(engine, instance_id)
    with engine.sessions.begin() as session:  # what a worker does once a lease has expired
        session.execute(update(Instance).where(Instance.id == instance_id).values(
            lock_owner="other-host:1:t0:abcdef#0123456789ab", lock_expires_at=utcnow() + timedelta(seconds=60)))
    RELEASE.set()
    runner.join(20)
    assert isinstance(runner.error, Busy)
    after = _row(engine, instance_id)
    assert (after.row_version, after.status, after.state) == (before.row_version, before.status, before.state)
    assert after.lock_owner.startswith("other-host"), "the new owner keeps its lease"
    assert _span_count(engine, instance_id) == 0, "no evidence of the refused advance is stored"


@pytest.mark.parametrize("heartbeat", [True, False])
def test_the_heartbeat_keeps_a_task_longer_than_the_lease_leased(tmp_path, held, monkeypatch, heartbeat):
    if not heartbeat:
        monkeypatch.setattr(Heartbeat, "hold", lambda self, token, instance_id: None)
    engine = _engine(tmp_path, held, lock_lease_s=1.0)
    instance_id, runner = _start_held(engine)
    time.sleep(2.2)  # more than twice the lease
    claimed = _engine(tmp_path, held).claim_due(1)
    RELEASE.set()
    runner.join(20)
    if heartbeat:
        assert claimed == [], "a renewed lease is not claimable"
        assert runner.error is None and runner.result == "completed"
    else:
        assert claimed == [instance_id], "without renewal the lease expires mid-task"
        assert isinstance(runner.error, Busy), "and the first advance may no longer write"


def _approval(engine: Engine) -> tuple[str, HumanTask]:
    add_account(engine, "rita", "reviewer")  # the approval task is in the Reviewer lane
    instance_id = engine.start("approval", {"requester": "ann"})
    with engine.sessions() as session:
        [task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
    return instance_id, task


def test_a_crash_between_completing_a_human_task_and_its_checkpoint_loses_both(engine, monkeypatch):
    instance_id, task = _approval(engine)
    before = _row(engine, instance_id)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash inside the checkpoint transaction")

    monkeypatch.setattr("scopeflow.engine.checkpoint.append_spans", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        engine.complete_task(task.id, {"decision": "approve"}, actor="rita")
    with engine.sessions() as session:
        row = session.get(HumanTask, task.id)
        assert (row.status, row.completed_by) == ("open", None), "the completion rolled back with the state"
    after = _row(engine, instance_id)
    assert (after.row_version, after.status, after.lock_owner) == (before.row_version, "waiting", None)
    monkeypatch.undo()
    assert engine.complete_task(task.id, {"decision": "approve"}, actor="rita") == "completed"
    with engine.sessions() as session:
        row = session.get(HumanTask, task.id)
        assert (row.status, row.completed_by, row.data["decision"]) == ("completed", "rita", "approve")


def test_a_completion_without_advancing_commits_the_task_row_with_the_state(engine):
    instance_id, task = _approval(engine)
    assert engine.complete_task(task.id, {"decision": "approve"}, actor="rita", advance=False) == "running"
    with engine.sessions() as session:
        assert session.get(HumanTask, task.id).status == "completed"
    assert _row(engine, instance_id).needs_advance is True


def test_a_crash_right_after_the_checkpoint_leaves_the_task_row_completed(engine, monkeypatch):
    """Once the state that records the completion is committed, so is the task row (they used to
    be two transactions: a crash between them left the row ``cancelled`` and the decision lost)."""
    instance_id, task = _approval(engine)

    def crash(self, token):
        raise RuntimeError("simulated crash after the checkpoint committed")

    monkeypatch.setattr(Heartbeat, "release", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        engine.complete_task(task.id, {"decision": "approve"}, actor="rita")
    with engine.sessions() as session:
        row = session.get(HumanTask, task.id)
        assert (row.status, row.completed_by, row.data["decision"]) == ("completed", "rita", "approve")
    assert _row(engine, instance_id).status == "completed"
