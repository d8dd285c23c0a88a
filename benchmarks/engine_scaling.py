"""Per-task cost from 20 to 5000 tasks: durable Scopeflow, and stock SpiffWorkflow where it can run.

Each point runs linear models of N no-op service tasks that all write the same result variable, so
the task data stays the same size whatever N is: what grows is only the instance (its task tree,
its state, its span chain), which is what this benchmark is about. (With one new variable per task,
every step copies data proportional to N in SpiffWorkflow itself, durable or not.)

Instances per point: as many as fit in ``--seconds`` of CPU time, at least ``--min-runs``; the
per-task cost is CPU time / (runs x N). Stock SpiffWorkflow is measured up to ``--bare-max`` tasks
(its tree walks make it quadratic) and tried once at 1000, where its iterator's depth cut-off stops
the run before the end. Target: durable per-task cost at 1000 tasks <= 1.5x that at 20.
Ends with one line ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_overhead import make_model, measure  # noqa: E402

POINTS = (20, 100, 400, 1000, 5000)
TARGET_GROWTH = 1.5


def stock_completes(tasks: int) -> bool:
    """Whether stock SpiffWorkflow runs an N-task linear model to its end (one try). Checked on
    every task, flat: its own ``is_completed`` walks the tree with the same depth cut-off."""
    from engine_overhead import _BareRunner
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.util.task import TaskState

    from scopeflow.engine.spiff import ScopeflowScriptEngine, build_parser

    with tempfile.TemporaryDirectory() as tmp:
        name = make_model(Path(tmp), tasks, constant_data=True)
        parser = build_parser(validate=False)
        parser.add_bpmn_files([str(Path(tmp) / f"{name}.bpmn")])
        wf = BpmnWorkflow(parser.get_spec(name), {}, script_engine=ScopeflowScriptEngine(runner=_BareRunner()))
        wf.do_engine_steps()
        return not any(task.state & TaskState.NOT_FINISHED_MASK for task in wf.tasks.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=list(POINTS))
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per side per point")
    parser.add_argument("--min-runs", type=int, default=3)
    parser.add_argument("--bare-max", type=int, default=400)
    args = parser.parse_args()
    rows = []
    for tasks in args.points:
        row = measure(tasks, 1, args.seconds, min_runs=args.min_runs, constant_data=True,
                      bare=tasks <= args.bare_max)
        rows.append(row)
        bare = f"bare {row['bare_ms_per_task_cpu']} ms/task ({row['bare_runs']} runs)" if "bare_runs" in row else \
            "bare not measured"
        print(f"{tasks:>5} tasks: durable {row['durable_ms_per_task_cpu']} ms/task CPU "
              f"({row['durable_runs']} runs), {bare}", flush=True)
    by_tasks = {row["tasks"]: row for row in rows}
    result: dict = {"points": rows}
    if 20 in by_tasks and 1000 in by_tasks:
        growth = by_tasks[1000]["durable_ms_per_task_cpu"] / by_tasks[20]["durable_ms_per_task_cpu"]
        result["durable_growth_1000_vs_20"] = round(growth, 2)
        result["target_growth"] = TARGET_GROWTH
        print(f"durable per-task cost at 1000 tasks = {growth:.2f} x that at 20 (target <= {TARGET_GROWTH})")
    result["stock_spiff_completes_1000"] = stock_completes(1000)
    print(f"stock SpiffWorkflow runs a 1000-task model to its end: {result['stock_spiff_completes_1000']}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
