"""Share of the feature lines of example scopes delivered offline (templates + feature recipes).

Each scope of ``examples/scopes/`` (or ``--scopes DIR``) goes through the offline path of a run:
analyse, plan, build every buildable task from the template pack, run the generated tests
(the verifier's own test check), and give every requirement its verdict. A feature line counts as
delivered only with the verdict ``delivered`` or ``assumed`` (a generated test naming it passed;
``assumed`` ones are counted too and reported separately).
Constraint lines are counted the same way, separately. Ends with one line ``RESULT {json}``.

    .venv/bin/python benchmarks/feature_coverage.py [--scopes DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scopeflow.handlers import requirements as req  # noqa: E402
from scopeflow.handlers.builder import build_task  # noqa: E402
from scopeflow.handlers.checks import Checks  # noqa: E402
from scopeflow.handlers.context import RecordingContext  # noqa: E402
from scopeflow.handlers.failures import TaskFailure  # noqa: E402
from scopeflow.handlers.planner import plan_build  # noqa: E402
from scopeflow.handlers.scope import analyze  # noqa: E402
from scopeflow.handlers.verifier import check_tests  # noqa: E402

COUNTED = ("feature", "constraint")


def decide_offline(scope: str, workspace: Path) -> list[req.Requirement]:
    """The requirement matrix of ``scope`` after an offline build and a run of the generated tests."""
    spec = analyze(scope)

    def ctx() -> RecordingContext:
        return RecordingContext(instance_id="bench", task_id="t", bpmn_id="build", workspace=workspace)

    try:
        planned = plan_build(ctx(), spec.to_data())
    except TaskFailure as failure:          # nothing buildable: every line stays not built
        print(f"  not buildable: {failure}", file=sys.stderr)
        return req.decide(spec.requirements, [], None)
    for task_id in planned["build_order"]:
        build_task(ctx(), spec.to_data(), planned["plan"], task_id)
    checks = Checks()
    check_tests(workspace / "app", checks, timeout_s=600)
    return req.decide(spec.requirements, planned["plan"]["tasks"], checks.requirements)


def tally(requirements: list[req.Requirement]) -> dict[str, dict[str, int]]:
    """Lines per kind, how many are built and proven (``delivered`` plus ``assumed``), and of those
    how many are ``assumed`` (built and tested, but on a stated guess)."""
    found = {kind: {"lines": 0, "delivered": 0, "assumed": 0} for kind in COUNTED}
    for requirement in requirements:
        if requirement.kind in COUNTED:
            found[requirement.kind]["lines"] += 1
            found[requirement.kind]["delivered"] += requirement.verdict in (req.DELIVERED, req.ASSUMED)
            found[requirement.kind]["assumed"] += requirement.verdict == req.ASSUMED
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scopes", type=Path, default=REPO / "examples" / "scopes")
    args = parser.parse_args()
    per_scope = {}
    totals = {kind: {"lines": 0, "delivered": 0, "assumed": 0} for kind in COUNTED}
    for path in sorted(args.scopes.glob("*.md")):
        with tempfile.TemporaryDirectory() as tmp:
            matrix = decide_offline(path.read_text(encoding="utf-8"), Path(tmp))
        counted = tally(matrix)
        per_scope[path.stem] = counted
        for kind in COUNTED:
            for key in totals[kind]:
                totals[kind][key] += counted[kind][key]
        for requirement in matrix:
            if requirement.kind in COUNTED:
                print(f"{path.stem:22} {requirement.kind:10} {requirement.verdict:10} {requirement.text[:60]}"
                      + (f"  [{requirement.recipe}]" if requirement.recipe else ""))
    shares = {kind: round(totals[kind]["delivered"] / totals[kind]["lines"], 3) if totals[kind]["lines"] else None
              for kind in COUNTED}
    for kind in COUNTED:
        print(f"{kind} lines delivered offline: {totals[kind]['delivered']}/{totals[kind]['lines']}"
              f" ({shares[kind]}; {totals[kind]['assumed']} of them assumed)")
    print("RESULT " + json.dumps({"scopes": str(args.scopes.relative_to(REPO) if args.scopes.is_relative_to(REPO)
                                                else args.scopes),
                                  "feature_share": shares["feature"], "constraint_share": shares["constraint"],
                                  "totals": totals, "per_scope": per_scope}))


if __name__ == "__main__":
    main()
