"""An auditor's view of a delivered instance: rules hold, the chain verifies, tampering shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from scopeflow.engine.models import SpanRow
from scopeflow.engine.service import Engine
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from tests.conftest import MODELS, REPO, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    home = tmp_path_factory.mktemp("evidence") / "home"
    saved = {k: os.environ.get(k) for k in ("SCOPEFLOW_HOME", "SCOPEFLOW_RELEASES")}
    os.environ["SCOPEFLOW_HOME"], os.environ["SCOPEFLOW_RELEASES"] = str(home), str(home / "releases")
    settings = make_settings(home)
    engine = Engine(settings)
    scope = (REPO / "examples" / "scopes" / "simple-bookshelf.md").read_text(encoding="utf-8")
    result = submit(engine, scope, yes=True)
    stop_all(settings.releases_dir)
    assert result.status == "completed"
    yield engine, home, result
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(MODELS)}
    return subprocess.run([sys.executable, "-m", "scopeflow", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_delivered_instance_passes_evidence_show_and_verify(delivered):
    _, home, result = delivered
    shown = cli(home, "evidence", "show", result.instance_id, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    report = json.loads(shown.stdout)
    assert report["evidence"]["ok"] and report["integrity"]["ok"]
    names = {r["name"] for r in report["evidence"]["rules"]}
    # submit --yes decided every human task: the automated rule set applied, and it says so
    assert report["evidence"]["decisions"] == "automated"
    assert names >= {"tests ran and passed", "review approved (automated decisions: approved by policy or person)",
                     "deploy health check passed", "every plan task built"}
    assert "reviewer approved" not in names and "scope confirmed by a person" not in names
    assert cli(home, "evidence", "verify", result.instance_id).returncode == 0


def test_the_exported_otlp_trace_reads_back_identically(delivered, tmp_path):
    _, home, result = delivered
    out = tmp_path / "trace.json"
    assert cli(home, "trace", result.instance_id, "--format", "otlp-json", "-o", str(out)).returncode == 0
    back = cli(home, "trace", "import", str(out))
    assert back.returncode == 0 and "identical to the stored record" in back.stdout
    out.write_text('{"resourceSpans": "nope"}')
    bad = cli(home, "trace", "import", str(out))
    assert bad.returncode == 2 and "not OTLP JSON" in bad.stderr


def test_editing_a_stored_span_makes_verify_name_it(delivered):
    engine, home, result = delivered
    with engine.sessions.begin() as session:
        row = session.scalars(select(SpanRow).where(SpanRow.instance_id == result.instance_id,
                                                    SpanRow.bpmn_element_id == "verify_build_task")).first()
        original = dict(row.attributes)
        row.attributes = {**original, "scopeflow.tests.failed": 0, "scopeflow.tests.passed": 999}
        span_id = row.span_id
    try:
        verify = cli(home, "evidence", "verify", result.instance_id)
        assert verify.returncode == 1 and span_id in verify.stdout and "altered" in verify.stdout
    finally:
        with engine.sessions.begin() as session:
            session.scalars(select(SpanRow).where(SpanRow.span_id == span_id)).one().attributes = original
    assert cli(home, "evidence", "verify", result.instance_id).returncode == 0


def test_deleting_the_tests_span_fails_the_rules_with_empty_selection(delivered):
    engine, home, result = delivered
    with engine.sessions.begin() as session:
        session.execute(delete(SpanRow).where(SpanRow.instance_id == result.instance_id,
                                              SpanRow.bpmn_element_id == "verify_build_task"))
    shown = cli(home, "evidence", "show", result.instance_id)
    assert shown.returncode == 1
    assert "empty selection" in shown.stdout
    assert "BROKEN" in shown.stdout  # the deletion also breaks the hash chain
