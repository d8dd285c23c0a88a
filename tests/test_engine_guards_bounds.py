"""The run-time bound on a timer cycle's repetitions (``engine/model_bounds.py``) at its edge,
through real runs: a computed cycle repeating more often than the limit is an incident naming it,
and one repeating exactly as often still waits."""

from __future__ import annotations

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine
from scopeflow.processes import bounds
from tests.conftest import make_settings
from tests.test_model_bounds import incident_of, timer_model, write

CYCLE = "<bpmn:timerEventDefinition><bpmn:timeCycle>every</bpmn:timeCycle></bpmn:timerEventDefinition>"


def test_a_computed_cycle_repeating_more_than_the_limit_is_an_incident(tmp_path):
    root = write(tmp_path, {"m.bpmn": timer_model("m", CYCLE, boundary=True)})
    incident = incident_of(tmp_path, root, "m", {"every": f"R{bounds.MAX_CYCLE_REPETITIONS + 1}/PT1H"})
    assert f"repeats more than {bounds.MAX_CYCLE_REPETITIONS:,} times" in incident["message"]


def test_a_cycle_repeating_exactly_the_limit_still_waits(tmp_path):
    root = write(tmp_path, {"cycle.bpmn": timer_model("cycle", CYCLE, boundary=True)})
    engine = Engine(make_settings(tmp_path / "home", root, migrated_copy=True))
    waiting = engine.start("cycle", {"every": f"R{bounds.MAX_CYCLE_REPETITIONS}/PT1M"})
    with engine.sessions() as session:
        row = session.get(Instance, waiting)
        assert (row.status, row.incident) == ("waiting", None)
