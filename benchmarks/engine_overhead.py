"""Engine overhead: bare SpiffWorkflow in memory vs Scopeflow durable (SQLite, checkpoints, spans).

A linear process of 20 no-op service tasks, run both ways interleaved in one process so machine
noise hits both alike. Prints instances/s of each and the ratio durable/bare (target >= 0.5).
Ends with one line ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

from scopeflow.config import Settings  # noqa: E402
from scopeflow.engine.service import Engine  # noqa: E402
from scopeflow.engine.spiff import ScopeflowScriptEngine, build_parser  # noqa: E402
from scopeflow.processes.synth import linear_process  # noqa: E402


class _BareRunner:
    """Dispatches operators with nothing else around them (the in-memory baseline)."""

    def call_operator(self, task, name, params):
        from scopeflow.handlers import registry
        from scopeflow.handlers.context import TaskContext

        ctx = TaskContext(instance_id="bare", task_id=str(task.id), bpmn_id=task.task_spec.bpmn_id,
                          workspace=Path("."))
        return registry.get(name)(ctx, **{k: p["value"] for k, p in params.items()})


def make_model(directory: Path, tasks: int) -> str:
    name = f"linear{tasks}"
    (directory / f"{name}.bpmn").write_text(linear_process(name, [(f"t{i}", "noop", {}) for i in range(tasks)]))
    return name


def bare_rate(xml_path: Path, name: str, seconds: float) -> float:
    parser = build_parser(validate=False)
    parser.add_bpmn_files([str(xml_path)])
    spec, subs = parser.get_spec(name), parser.get_subprocess_specs(name)
    runner, count, start = _BareRunner(), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        wf = BpmnWorkflow(spec, subs, script_engine=ScopeflowScriptEngine(runner=runner))
        wf.get_next_task(state=TaskState.READY).data.update({})
        wf.do_engine_steps()
        assert wf.is_completed()
        count += 1
    return count / (time.perf_counter() - start)


def durable_rate(engine: Engine, name: str, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        instance_id = engine.start(name, {})
        count += 1
        assert instance_id
    return count / (time.perf_counter() - start)


def measure(tasks: int, rounds: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        name = make_model(models, tasks)
        home = Path(tmp) / "home"
        engine = Engine(Settings(models_dir=models, database_url=f"sqlite:///{home / 'db.sqlite'}").with_home(home))
        engine.start(name, {})  # warm-up: deploy, parse, create tables
        bare, durable = [], []
        for _ in range(rounds):
            bare.append(bare_rate(models / f"{name}.bpmn", name, seconds))
            durable.append(durable_rate(engine, name, seconds))
        return {"tasks": tasks, "bare_per_s": round(statistics.median(bare), 1),
                "durable_per_s": round(statistics.median(durable), 1),
                "ratio": round(statistics.median(durable) / statistics.median(bare), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = measure(20, args.rounds, args.seconds)
    print(f"20 no-op service tasks: bare {result['bare_per_s']} inst/s, durable {result['durable_per_s']} inst/s, "
          f"ratio {result['ratio']} (target >= 0.5)")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
