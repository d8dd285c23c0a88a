"""Wall time of one simple scope through the whole lifecycle, and the share spent outside
subprocess work (compile, lint, tests, security, app start-up/health check). Target: ≤ 15 %.

The split comes from the run's own spans: the verifier's ``check *`` spans and the deployer's
``health check`` span are subprocess work; everything else is Scopeflow. Ends with ``RESULT {json}``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SUBPROCESS_SPANS = ("check compile", "check lint", "check tests", "check security", "health check")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["SCOPEFLOW_HOME"] = str(home)
        os.environ["SCOPEFLOW_RELEASES"] = str(home / "releases")
        from scopeflow.config import Settings
        from scopeflow.engine.service import Engine
        from scopeflow.engine.spanstore import load_spans
        from scopeflow.handlers.release import stop_all
        from scopeflow.lifecycle import submit

        settings = Settings(models_dir=REPO / "bpmn-models",
                            database_url=f"sqlite:///{home / 'db.sqlite'}").with_home(home)
        engine = Engine(settings)
        engine.deploy(["delivery"])  # one-time lint/parse is not part of a submit
        scope = (REPO / "examples" / "scopes" / "simple-bookshelf.md").read_text(encoding="utf-8")
        started = time.perf_counter()
        result = submit(engine, scope, yes=True)
        wall = time.perf_counter() - started
        stop_all(settings.releases_dir)
        with engine.sessions() as session:
            spans = load_spans(session, result.instance_id)
    subprocess_s = sum(s.duration_ns for s in spans if s.name in SUBPROCESS_SPANS) / 1e9
    outside = max(0.0, wall - subprocess_s)
    figures = {"status": result.status, "wall_s": round(wall, 3), "subprocess_s": round(subprocess_s, 3),
               "outside_share": round(outside / wall, 3), "target_share": 0.15}
    print(f"one simple scope: {figures['wall_s']}s wall, {figures['subprocess_s']}s in subprocess work, "
          f"{figures['outside_share']:.1%} outside it (target <= 15%)")
    print("RESULT " + json.dumps(figures))


if __name__ == "__main__":
    main()
