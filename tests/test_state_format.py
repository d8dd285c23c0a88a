"""The serialized state refers to its model version's spec instead of embedding a copy of it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from scopeflow.engine.models import HumanTask, Instance
from scopeflow.engine.service import Engine, EngineError
from scopeflow.engine.spiff import deserialize, serialize
from tests.conftest import add_account


def _waiting_approval(engine: Engine) -> tuple[str, str]:
    add_account(engine, "rita", "reviewer")
    instance_id = engine.start("approval", {"requester": "ann"})
    with engine.sessions() as session:
        task_id = session.query(HumanTask.id).filter(HumanTask.instance_id == instance_id).scalar()
    return instance_id, task_id


def _row(engine: Engine, instance_id: str) -> Instance:
    with engine.sessions() as session:
        return session.get(Instance, instance_id)


def test_the_state_names_its_model_version_and_carries_no_spec(engine):
    instance_id, task_id = _waiting_approval(engine)
    row = _row(engine, instance_id)
    state = json.loads(row.state)
    assert "spec" not in state and "subprocess_specs" not in state
    assert state["spec_ref"] == {"model_version_id": row.model_version_id, "process": "approval"}
    assert engine.complete_task(task_id, {"decision": "approve"}, actor="rita") == "completed"


def test_a_state_with_its_spec_embedded_still_loads_and_is_then_written_by_reference(engine):
    instance_id, task_id = _waiting_approval(engine)
    workflow = deserialize(_row(engine, instance_id).state)
    workflow.spec_ref = None  # what states were before: the whole spec inside
    embedded = serialize(workflow)
    assert "spec" in json.loads(embedded)
    with engine.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == instance_id).values(state=embedded))
    assert engine.complete_task(task_id, {"decision": "approve"}, actor="rita") == "completed"
    assert "spec" not in json.loads(_row(engine, instance_id).state)


def test_a_state_naming_an_unknown_version_is_an_incident_not_a_crash(engine):
    instance_id, task_id = _waiting_approval(engine)
    state = json.loads(_row(engine, instance_id).state)
    state["spec_ref"]["model_version_id"] = "00000000-0000-4000-8000-000000000000"
    with engine.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == instance_id).values(state=json.dumps(state)))
    with pytest.raises(EngineError, match="corrupt state"):
        engine.advance(instance_id)
    assert _row(engine, instance_id).status == "error"
