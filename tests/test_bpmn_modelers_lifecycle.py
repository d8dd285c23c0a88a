"""Hand-written diagrams in other modelers' dialects, deployed and run by the real engine: what lint
lets through and simulate runs to its end also runs to its end as a stored instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scopeflow.engine import reads
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from tests.conftest import make_settings

FOLDER = Path(__file__).parent / "bpmn_corpus" / "hand-written"
FILES = ["link-events.bpmn", "zeebe-script-called-element.bpmn", "artifacts-data-object-flow.bpmn",
         "enc-utf16-bom.bpmn"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Engine:
    root = tmp_path_factory.mktemp("modelers")
    models = root / "models"
    models.mkdir()
    for name in FILES:
        shutil.copy(FOLDER / name, models / name)
    engine = Engine(make_settings(root / "home", models, migrated_copy=True))
    stored = {r["model"] for r in engine.deploy()}
    assert stored == {"Links", "Parent", "Child", "DataFlow", "Process_1"}
    return engine


@pytest.mark.parametrize(("model", "start", "ran", "data"), [
    ("Links", {}, ["go", "arrive", "b"], {"n": 2}),
    ("Parent", {"price": 3, "quantity": 4}, ["calc", "double"], {"total": 12, "doubled": 24}),
    ("DataFlow", {}, ["write", "read"], {"total": 10}),
])
def test_a_deployed_instance_runs_to_its_end(deployed, model, start, ran, data):
    instance_id = deployed.start(model, start)
    summary = reads.instance(deployed.sessions, instance_id)
    assert summary["status"] == "completed", summary
    with deployed.sessions() as session:
        elements = [s.attributes.get("scopeflow.bpmn.element.id") for s in load_spans(session, instance_id)]
    assert all(element in elements for element in ran), elements
    final = deployed.instance_data(instance_id)
    assert {k: final.get(k) for k in data} == data
