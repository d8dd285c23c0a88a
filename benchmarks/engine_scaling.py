"""Per-task cost at 20 vs 400 tasks, bare SpiffWorkflow and durable Scopeflow, in one run.

SpiffWorkflow re-scans the task tree on every step, so per-task cost grows with instance size
(notes §8); this shows how much of that growth the durable path adds. Ends with ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_overhead import measure  # noqa: E402


def per_task_ms(rate_per_s: float, tasks: int) -> float:
    return round(1000.0 / rate_per_s / tasks, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    small = measure(20, args.rounds, args.seconds)
    large = measure(400, args.rounds, args.seconds)
    result = {
        "bare_ms_per_task_20": per_task_ms(small["bare_per_s"], 20),
        "bare_ms_per_task_400": per_task_ms(large["bare_per_s"], 400),
        "durable_ms_per_task_20": per_task_ms(small["durable_per_s"], 20),
        "durable_ms_per_task_400": per_task_ms(large["durable_per_s"], 400),
    }
    result["bare_growth_400_vs_20"] = round(result["bare_ms_per_task_400"] / result["bare_ms_per_task_20"], 2)
    result["durable_growth_400_vs_20"] = round(result["durable_ms_per_task_400"] / result["durable_ms_per_task_20"], 2)
    result["durable_vs_bare_20"] = round(small["ratio"], 3)
    result["durable_vs_bare_400"] = round(large["ratio"], 3)
    for key, value in result.items():
        print(f"{key}: {value}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
