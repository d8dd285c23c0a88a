"""A worker killed with SIGKILL mid-run loses nothing that was checkpointed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from scopeflow.engine.models import Instance, SpanRow
from scopeflow.engine.service import Engine
from scopeflow.processes.synth import linear_process
from tests.conftest import REPO, make_settings
from tests.operators import WORKER_ENV

STEPS = [f"step{i}" for i in range(1, 7)]


def test_sigkill_mid_run_resumes_without_redoing_checkpointed_steps(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "slow_chain.bpmn").write_text(linear_process(
        "slow_chain", [(step, "mark", {"name": repr(step), "seconds": "0.4"}) for step in STEPS]))
    home = tmp_path / "home"
    settings = make_settings(home, models, lock_lease_s=2.0)
    engine = Engine(settings)
    instance_id = engine.start("slow_chain", {}, advance=False)

    env = {**os.environ, **WORKER_ENV, "PYTHONPATH": str(REPO), "SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(models),
           "SCOPEFLOW_DATABASE_URL": settings.effective_database_url, "SCOPEFLOW_LOCK_LEASE": "2",
           "SCOPEFLOW_WORKSPACES": str(settings.workspaces_dir)}
    worker = subprocess.Popen([sys.executable, "-m", "scopeflow", "worker", "--once"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    stored_before_kill = 0
    while time.monotonic() < deadline:
        with engine.sessions() as session:
            stored_before_kill = session.scalar(select(func.count()).select_from(SpanRow)
                                                .where(SpanRow.instance_id == instance_id))
        if stored_before_kill >= 3:  # at least two steps checkpointed, more still to run
            break
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert 3 <= stored_before_kill, "the worker never checkpointed"

    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "running" and row.lock_owner is not None, "the dead worker still holds the lease"
        done_before = {s.bpmn_element_id for s in session.scalars(select(SpanRow).where(
            SpanRow.instance_id == instance_id, SpanRow.bpmn_element_id.in_(STEPS)))}
    assert done_before and done_before != set(STEPS)

    time.sleep(2.1)  # the lease expires; another worker takes over
    assert engine.advance(instance_id, reason="resume") == "completed"

    marks = sorted(p.name.split("-")[0] for p in (settings.workspaces_dir / instance_id / "marks").iterdir())
    for step in done_before:
        assert marks.count(step) == 1, f"{step} was checkpointed before the kill but ran again"
    assert set(marks) == set(STEPS)
    with engine.sessions() as session:
        per_step = dict(session.execute(select(SpanRow.bpmn_element_id, func.count()).where(
            SpanRow.instance_id == instance_id, SpanRow.bpmn_element_id.in_(STEPS))
            .group_by(SpanRow.bpmn_element_id)).all())
        assert per_step == {step: 1 for step in STEPS}, "no step's span may be stored twice"
        assert engine.verify_chain(instance_id).ok
