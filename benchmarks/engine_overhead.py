"""Engine overhead: stock SpiffWorkflow in memory vs Scopeflow durable (SQLite, checkpoints, spans).

A linear process of no-op service tasks (20 by default), run both ways interleaved in one process
so machine noise hits both alike:

* **bare** — stock ``BpmnWorkflow.do_engine_steps()`` in memory, the operator dispatched by the
  same script engine with nothing around it (no store, no spans, no leases). SpiffWorkflow's
  loggers sit at WARNING for both sides (the engine's setting; stock INFO records cost bare more).
* **durable** — ``Engine.start``: a new instance row, one span per task plus the advance span,
  hash-chained, the serialized state, the audit event, all committed in one SQLite transaction.

Rates are instances per CPU second of this process (``time.process_time``; the heartbeat thread
counts too) and per wall second; the ratio durable/bare is taken on the medians. Target >= 0.8.
Ends with one line ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

from scopeflow.config import Settings  # noqa: E402
from scopeflow.engine.service import Engine  # noqa: E402
from scopeflow.engine.spiff import ScopeflowScriptEngine, build_parser  # noqa: E402
from scopeflow.processes.synth import linear_process  # noqa: E402

TARGET = 0.8


class _BareRunner:
    """Dispatches operators with nothing else around them (the in-memory baseline)."""

    def call_operator(self, task, name, params):
        from scopeflow.handlers import registry
        from scopeflow.handlers.context import TaskContext

        ctx = TaskContext(instance_id="bare", task_id=str(task.id), bpmn_id=task.task_spec.bpmn_id,
                          workspace=Path("."))
        return registry.get(name)(ctx, **{k: p["value"] for k, p in params.items()})


def make_model(directory: Path, tasks: int, *, constant_data: bool = False) -> str:
    """``linear<N>``: N no-op service tasks. Each writes ``t<i>_result`` (the data grows with the
    model, as in real models), or with ``constant_data`` all write one ``result`` variable."""
    name = f"linear{tasks}"
    xml = linear_process(name, [(f"t{i}", "noop", {}) for i in range(tasks)])
    if constant_data:
        xml = re.sub(r'resultVariable="t\d+_result"', 'resultVariable="result"', xml)
    (directory / f"{name}.bpmn").write_text(xml)
    return name


def bare_runner(xml_path: Path, name: str) -> Callable[[], None]:
    parser = build_parser(validate=False)
    parser.add_bpmn_files([str(xml_path)])
    spec, subs = parser.get_spec(name), parser.get_subprocess_specs(name)
    runner = _BareRunner()

    def run_one() -> None:
        wf = BpmnWorkflow(spec, subs, script_engine=ScopeflowScriptEngine(runner=runner))
        wf.get_next_task(state=TaskState.READY).data.update({})
        wf.do_engine_steps()
        if not wf.is_completed():
            raise RuntimeError(f"bare SpiffWorkflow did not complete {name}")

    return run_one


def durable_runner(engine: Engine, name: str) -> Callable[[], None]:
    def run_one() -> None:
        engine.start(name, {})

    return run_one


def check_all_completed(engine: Engine) -> int:
    """Every durable run must have completed (checked after timing, in one query)."""
    from sqlalchemy import func, select

    from scopeflow.engine.models import Instance

    with engine.sessions() as session:
        bad = session.scalar(select(func.count()).select_from(Instance).where(Instance.status != "completed"))
        total = session.scalar(select(func.count()).select_from(Instance))
    if bad:
        raise RuntimeError(f"{bad} of {total} durable runs did not complete")
    return total


def timed(run_one: Callable[[], None], min_cpu_s: float, min_runs: int) -> tuple[float, float, int]:
    """(instances per CPU second, per wall second, runs) over at least ``min_cpu_s`` and ``min_runs``."""
    runs, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while runs < min_runs or time.process_time() - cpu0 < min_cpu_s:
        run_one()
        runs += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return runs / cpu, runs / wall, runs


def measure(tasks: int, rounds: int, seconds: float, *, min_runs: int = 3, constant_data: bool = False,
            bare: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        name = make_model(models, tasks, constant_data=constant_data)
        home = Path(tmp) / "home"
        engine = Engine(Settings(models_dir=models, database_url=f"sqlite:///{home / 'db.sqlite'}").with_home(home))
        durable_one = durable_runner(engine, name)
        durable_one()  # warm-up: deploy, parse, create tables
        bare_one = bare_runner(models / f"{name}.bpmn", name) if bare else None
        samples: dict[str, list[tuple[float, float, int]]] = {"bare": [], "durable": []}
        for _ in range(rounds):
            if bare_one is not None:
                samples["bare"].append(timed(bare_one, seconds, min_runs))
            samples["durable"].append(timed(durable_one, seconds, min_runs))
        check_all_completed(engine)
    return _summary(tasks, samples)


def _summary(tasks: int, samples: dict[str, list[tuple[float, float, int]]]) -> dict:
    out: dict = {"tasks": tasks}
    for side, rows in samples.items():
        if not rows:
            continue
        cpu = statistics.median(r[0] for r in rows)
        wall = statistics.median(r[1] for r in rows)
        out[f"{side}_per_cpu_s"] = round(cpu, 2)
        out[f"{side}_per_wall_s"] = round(wall, 2)
        out[f"{side}_ms_per_task_cpu"] = round(1000.0 / cpu / tasks, 4)
        out[f"{side}_runs"] = sum(r[2] for r in rows)
    if samples["bare"]:
        out["ratio_cpu"] = round(out["durable_per_cpu_s"] / out["bare_per_cpu_s"], 3)
        out["ratio_wall"] = round(out["durable_per_wall_s"] / out["bare_per_wall_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per side per round")
    args = parser.parse_args()
    result = measure(args.tasks, args.rounds, args.seconds)
    result["target"] = TARGET
    print(f"{args.tasks} no-op service tasks, median of {args.rounds} interleaved rounds:")
    print(f"  bare    {result['bare_per_cpu_s']} inst/CPU-s  {result['bare_per_wall_s']} inst/wall-s")
    print(f"  durable {result['durable_per_cpu_s']} inst/CPU-s  {result['durable_per_wall_s']} inst/wall-s")
    print(f"  durable/bare: {result['ratio_cpu']} CPU, {result['ratio_wall']} wall (target >= {TARGET})")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
