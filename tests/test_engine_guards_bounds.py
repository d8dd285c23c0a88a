"""The run-time bounds of ``engine/model_bounds.py`` at their edges, through real runs: a computed
timer cycle repeating more often than the limit is an incident naming it, and values just inside
the limits still wait or run."""

from __future__ import annotations

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine
from scopeflow.processes import bounds
from tests.conftest import make_settings
from tests.test_model_bounds import incident_of, mi_model, timer_model, write

CYCLE = "<bpmn:timerEventDefinition><bpmn:timeCycle>every</bpmn:timeCycle></bpmn:timerEventDefinition>"


def test_a_computed_cycle_repeating_more_than_the_limit_is_an_incident(tmp_path):
    root = write(tmp_path, {"m.bpmn": timer_model("m", CYCLE, boundary=True)})
    incident = incident_of(tmp_path, root, "m", {"every": f"R{bounds.MAX_CYCLE_REPETITIONS + 1}/PT1H"})
    assert f"repeats more than {bounds.MAX_CYCLE_REPETITIONS:,} times" in incident["message"]


def test_values_at_the_limits_still_wait_or_run(tmp_path):
    root = write(tmp_path, {"cycle.bpmn": timer_model("cycle", CYCLE, boundary=True),
                            "many.bpmn": mi_model("many", "n")})
    engine = Engine(make_settings(tmp_path / "home", root, migrated_copy=True))
    waiting = engine.start("cycle", {"every": f"R{bounds.MAX_CYCLE_REPETITIONS}/PT1M"})
    ran = engine.start("many", {"n": bounds.MAX_MULTI_INSTANCES})
    with engine.sessions() as session:
        assert session.get(Instance, waiting).status == "waiting"
        assert session.get(Instance, ran).status == "completed"
