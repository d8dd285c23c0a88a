"""``run_due`` keeps going when one claimed instance turns out to be taken: a claim is not renewed
while the worker advances the instances before it, so another worker may take a later one over
meanwhile. That instance is reported ``busy`` (not run twice, not an exception that loses the
results of the others)."""

from __future__ import annotations

import threading
import time

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.registry import operator
from scopeflow.processes.synth import linear_process
from tests.conftest import make_settings

GATES: dict[str, threading.Event] = {}
RUNS: list[str] = []
ENTERED = threading.Event()


@operator("guard_test_gate")
def _gate(ctx: TaskContext) -> dict:
    """Test operator: records its run and holds until the test opens this instance's gate."""
    RUNS.append(ctx.instance_id)
    ENTERED.set()
    return {"opened": GATES[ctx.instance_id].wait(20)}


def _in_thread(call) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_claimed_instance_another_worker_took_over_is_reported_busy(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "gated.bpmn").write_text(linear_process("gated", [("gate", "guard_test_gate", {})]), encoding="utf-8")
    settings = make_settings(tmp_path / "home", models, migrated_copy=True, lock_lease_s=0.5)
    first_worker, second_worker = Engine(settings), Engine(settings)
    ids = [first_worker.start("gated", {}, advance=False) for _ in range(2)]
    GATES.clear()
    GATES.update({i: threading.Event() for i in ids})
    RUNS.clear()
    ENTERED.clear()
    try:
        runner, outcome = _in_thread(lambda: first_worker.run_due(limit=2))   # claims both
        assert ENTERED.wait(20)
        [running] = RUNS
        [later] = [i for i in ids if i != running]
        time.sleep(0.7)   # the claim on the later one expires while the first runs
        taker, _taken = _in_thread(lambda: second_worker.advance(later))
        deadline = time.monotonic() + 20
        while RUNS.count(later) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        GATES[running].set()
        runner.join(20)
        assert "error" not in outcome, outcome
        assert outcome["result"] == [(running, "completed"), (later, "busy")]
    finally:
        for gate in GATES.values():
            gate.set()
    taker.join(20)
    assert sorted(RUNS) == sorted(ids), "each instance ran once"
    with first_worker.sessions() as session:
        assert [session.get(Instance, i).status for i in ids] == ["completed", "completed"]
