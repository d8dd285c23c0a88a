"""The evidence gate's own refusals and its inputs, in a real run of a small model.

Uses the ``verify_gate`` model of :mod:`tests.test_gate_mutations_verifier` (write an app, the real
``verify_build``, the real ``verify_evidence``). A model without evidence rules must stop at the
gate with a configuration incident: an empty rule set proves nothing, so it must never be mistaken
for a gate that merely failed or held. And the gate must judge every span finished before it ran.
"""

from __future__ import annotations

import shutil

import pytest

from scopeflow.engine import reads
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from tests.conftest import make_settings
from tests.test_gate_mutations_verifier import MODEL, RULES

pytestmark = pytest.mark.slow


def _engine(tmp_path, rules: str | None) -> Engine:
    models = tmp_path / "models"
    models.mkdir()
    (models / "verify_gate.bpmn").write_text(MODEL, encoding="utf-8")
    if rules is not None:
        (models / "verify_gate.evidence.toml").write_text(rules, encoding="utf-8")
    return Engine(make_settings(tmp_path / "home", models))


def test_a_model_without_evidence_rules_stops_at_the_gate_with_a_configuration_incident(tmp_path):
    engine = _engine(tmp_path, None)
    instance_id = engine.start("verify_gate", {"variant": "passing"})
    record = reads.instance(engine.sessions, instance_id)
    assert record["status"] == "error", record
    assert "this model has no evidence rules" in str(record["incident"])
    assert "evidence" not in reads.last_task_data(engine.sessions, instance_id)
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def test_the_gate_judges_every_span_finished_before_it(tmp_path):
    engine = _engine(tmp_path, RULES)
    instance_id = engine.start("verify_gate", {"variant": "passing"})
    assert reads.instance(engine.sessions, instance_id)["status"] == "completed"
    with engine.sessions() as session:
        spans = load_spans(session, instance_id)
    [gate] = [s for s in spans if s.attributes.get("scopeflow.bpmn.element.id") == "gate"
              and s.attributes.get("scopeflow.span.type") == "bpmn.task"]
    finished_before = [s for s in spans if s.end_ns <= gate.start_ns]
    assert gate.attributes["scopeflow.evidence.spans"] == len(finished_before)
    assert gate.attributes["scopeflow.evidence.ok"] is True
    assert gate.attributes["scopeflow.evidence.rules"] == 1
    data = reads.last_task_data(engine.sessions, instance_id)["evidence"]
    assert data["report"]["rules"][0]["matched"][0]["element_id"] == "verify"
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def test_stored_rules_that_no_longer_parse_stop_the_gate_with_a_configuration_incident(tmp_path):
    """Lint refuses unparsable rules at deploy, so this is a version stored by an older release
    whose rules today's language rejects: the gate must say so, not evaluate an empty rule set."""
    from scopeflow.engine.models import ModelVersion

    engine = _engine(tmp_path, RULES)
    engine.deploy(["verify_gate"])
    with engine.sessions() as session, session.begin():
        version = session.query(ModelVersion).filter_by(name="verify_gate").one()
        files = dict(version.files)
        [path] = [p for p in files if p.endswith(".evidence.toml")]
        files[path] = files[path].replace("attr:scopeflow.tests.failed = 0", "attr:scopeflow.tests.failed ~ 0")
        version.files = files
    instance_id = engine.start("verify_gate", {"variant": "passing"})
    record = reads.instance(engine.sessions, instance_id)
    assert record["status"] == "error", record
    assert "unexpected character '~'" in str(record["incident"]), record["incident"]
    assert "evidence" not in reads.last_task_data(engine.sessions, instance_id)
    shutil.rmtree(tmp_path / "home", ignore_errors=True)
