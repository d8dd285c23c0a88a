"""Script and expression cost: what one gateway condition, parameter or script costs the engine.

Each case is timed through ``RestrictedEnvironment`` (what the engine calls) and, interleaved with
it, as plain ``eval``/``exec`` of the same source with no sandbox at all, so machine noise hits both
alike. Conditions, parameters and plain assignments take the in-process fast path; the
comprehension takes a worker process round trip. Prints microseconds per call and the ratio
sandboxed/plain for each. Ends with one line ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scopeflow.engine.sandbox import RestrictedEnvironment  # noqa: E402

DATA = {
    "review_decision": {"decision": "approve", "comment": "fine"},
    "regenerations": 1, "max_regenerations": 3, "error_payload": {"kind": "recoverable", "details": {}},
    "deploy_retries": 0, "analysis": {"summary": "s", "questions": ["q"] * 5},
    "spec": {"entities": [{"name": f"e{i}", "fields": ["a", "b"]} for i in range(50)]},
    "build_order": [f"t{i}" for i in range(20)],
}
CASES = [
    ("condition", "eval", "regenerations <= max_regenerations and error_payload['kind'] != 'design_flaw'"),
    ("parameter", "eval", "analysis['summary']"),
    ("counter_script", "exec", "deploy_retries = deploy_retries + 1"),
    ("blocker_script", "exec", 'blocker = {"stage": "ideation", "message": "m", "details": '
                               '{"summary": analysis.get("summary", ""), "questions": analysis.get("questions", [])}}'),
    ("comprehension_script", "exec", "built = {build_order[i]: i for i in range(len(build_order))}"),
]


def _per_call_us(run, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls * 1e6


def _sandboxed(env: RestrictedEnvironment, mode: str, source: str):
    if mode == "eval":
        return lambda: env.evaluate(source, DATA)
    return lambda: env.execute(source, dict(DATA))


def _plain(mode: str, source: str):
    code = compile(source, "<plain>", mode)
    if mode == "eval":
        return lambda: eval(code, dict(DATA))  # noqa: S307 - the unsandboxed baseline
    return lambda: exec(code, dict(DATA))  # noqa: S102 - the unsandboxed baseline


def measure(rounds: int, calls: int) -> dict:
    env = RestrictedEnvironment()
    result = {}
    for name, mode, source in CASES:
        sandboxed, plain = _sandboxed(env, mode, source), _plain(mode, source)
        sandboxed()   # warm-up: compile caches, the first worker process
        box, bare = [], []
        for _ in range(rounds):
            box.append(_per_call_us(sandboxed, calls))
            bare.append(_per_call_us(plain, calls))
        result[name] = {"sandboxed_us": round(statistics.median(box), 1), "plain_us": round(statistics.median(bare), 1),
                        "ratio": round(statistics.median(box) / statistics.median(bare), 1)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    result = measure(args.rounds, args.calls)
    for name, figures in result.items():
        print(f"{name:22} sandboxed {figures['sandboxed_us']:>8} us  plain {figures['plain_us']:>6} us  "
              f"ratio {figures['ratio']}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
