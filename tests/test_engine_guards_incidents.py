"""An incident stops the instance even while other automatic work is ready beside it: the row is in
``error`` and not marked for a worker, so no worker runs the other branch on until someone retries."""

from __future__ import annotations

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine
from tests.bpmn_text import definitions, flow, process, script
from tests.conftest import make_settings


def _forked(pid: str) -> str:
    """start → parallel split → (a script that fails | a script that works) → join → end."""
    return process(pid, "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "split"),
        '<bpmn:parallelGateway id="split"/>', flow("f_bad", "split", "bad"), flow("f_good", "split", "good"),
        script("bad", "y = missing_name + 1"), script("good", "z = 1"),
        '<bpmn:parallelGateway id="join"/>', flow("f1", "bad", "join"), flow("f2", "good", "join"),
        '<bpmn:endEvent id="end"/>', flow("f3", "join", "end"),
    ]))


def test_an_incident_beside_ready_work_is_not_marked_for_a_worker(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "forked.bpmn").write_text(definitions(_forked("forked")), encoding="utf-8")
    engine = Engine(make_settings(tmp_path / "home", models, migrated_copy=True))
    instance_id = engine.start("forked", {})
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "error" and row.incident["bpmn_id"] == "bad", row.incident
        assert row.needs_advance is False and row.lock_owner is None
    assert engine.due_instances() == [] and engine.claim_due(5) == []
    assert engine.retry(instance_id, {"missing_name": 1}) == "completed"
