"""The reporter writes DELIVERY.md / BLOCKERS.md from whatever the run produced, safely escaped."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.deployer import check_credentials
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.reporter import code, md, write_blocker_plan, write_report

HOSTILE = '<script>alert("x")</script>'
NO_MATRIX = {f"scopeflow.requirements.{key}": 0 for key in (
    "total", "delivered", "not_built", "assumed", "not_understood", "without_verdict", "delivered_without_test")}

SPEC = {
    "title": f"Library {HOSTILE}",
    "summary": "Lend books\n# not a heading",
    "entities": [{"name": "Book", "label": "<img src=x onerror=alert(1)>", "table": "books",
                  "fields": [{"name": "title"}, {"name": "isbn"}]}],
    "features": [{"text": "Pay with Stripe", "kind": "custom", "buildable": False, "reason": "needs the network"}],
    "integrations": [{"name": "stripe", "label": "Stripe", "credentials": ["STRIPE_API_KEY"]}],
    "questions": [{"id": "q1", "text": "Do members log in?", "default": "no", "topic": "login"}],
}
PLAN = {"tasks": [{"id": "app-core", "title": "App core", "kind": "app_core", "buildable": True},
                  {"id": "feature-1", "title": f"Stripe {HOSTILE}", "kind": "unbuildable", "buildable": False,
                   "reason": "no offline template for payments"}]}
CHECKS = {"checks": {"compile_errors": 0, "lint_errors": 0, "tests_passed": 14, "tests_failed": 0,
                     "tests_errors": 0, "tests_skipped": 1, "security_high": 0, "security_medium": 1,
                     "security_low": 3, "failures": []}, "ok": True}
REVIEW = {"review": {"summary": {"files": [], "entities": ["Book"],
                                 "endpoints": ["GET /healthz", "GET /books/<id>/edit"]},
                     "decisions": [{"decision": "SQLite", "rationale": "runs offline"}],
                     "risks": [f"risk {HOSTILE}"], "confidence": 0.85,
                     "confidence_basis": "1.00 - 0.05 (1 medium security finding) - 0.10 (1 unbuildable task)"}}
RELEASE = {"release": {"id": "rel-1", "instance_id": "inst-7", "path": "/srv/releases/inst-7/rel-1", "port": 40123,
                       "url": "http://127.0.0.1:40123", "pid": 1, "status": "running",
                       "health": {"ok": True, "status": 200}}}
EVIDENCE = {"ok": False, "failed": ["lint is clean"], "chain_head": "ab12cd34",
            "report": {"stage": "final", "ok": False, "rules": [
                {"name": "tests ran", "passed": True, "assertions": []},
                {"name": "lint is clean", "passed": False,
                 "assertions": [{"passed": False, "message": f"empty selection {HOSTILE}"}]}]}}


@pytest.fixture
def ctx(tmp_path) -> RecordingContext:
    workspace = tmp_path / "workspace"
    for path in ("app/run.py", "app/webapp/__init__.py", "app/webapp/__pycache__/x.cpython-311.pyc"):
        (workspace / path).parent.mkdir(parents=True, exist_ok=True)
        (workspace / path).write_text("# built\n")
    return RecordingContext(instance_id="inst-7", task_id="report", bpmn_id="write_report", workspace=workspace)


def read(ctx: RecordingContext, name: str) -> str:
    return (ctx.workspace / name).read_text(encoding="utf-8")


def assert_no_raw_html(text: str) -> None:
    assert "<script" not in text and "<img" not in text


def test_md_escapes_html_and_markdown_on_one_line():
    assert md(HOSTILE) == '&lt;script&gt;alert("x")&lt;/script&gt;'
    assert md("a *b* [c](d) | e\n# f") == r"a \*b\* \[c\](d) \| e \# f"
    assert md(None) == ""
    assert md("x" * 10, limit=3) == "xxx…"


def test_code_wraps_plain_text_and_escapes_anything_else():
    assert code("app/run.py") == "`app/run.py`"
    assert code("a`b") == r"a\`b"
    assert code("<b>") == "&lt;b&gt;"


def test_delivery_report_with_everything(ctx):
    result = write_report(ctx, spec=SPEC, plan=PLAN, checks=CHECKS, review=REVIEW, release=RELEASE,
                          evidence=EVIDENCE)

    text = read(ctx, "DELIVERY.md")
    assert result["report"]["path"] == "DELIVERY.md"
    assert result["report"]["outcome"] == "delivered"
    assert result["report"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert text.startswith("# Delivery: Library &lt;script&gt;")
    assert "(`Book`, 2 fields)" in text
    assert "- GET /books/&lt;id&gt;/edit" in text
    assert "- `app/run.py`" in text and "- `app/webapp/__init__.py`" in text and ".pyc" not in text
    assert "at http://127.0.0.1:40123, health check passed (HTTP 200)" in text
    assert "sh /srv/releases/inst-7/rel-1/run.sh" in text
    assert (f"cd {ctx.workspace}/app && python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt "
            "&& .venv/bin/python run.py") in text
    assert "| tests passed | 14 |" in text and "| security medium | 1 |" in text
    assert "checks passed: 14 tests passed, 1 skipped, 1 medium / 3 low security findings" in text
    assert "Confidence **0.85**; basis: 1.00 - 0.05 (1 medium security finding)" in text
    assert "- SQLite: runs offline" in text
    assert "- Stripe &lt;script&gt;alert(\"x\")&lt;/script&gt;: no offline template for payments" in text
    assert "**The evidence rules do not hold** (stage final)." in text
    assert "- pass: tests ran" in text and "- FAIL: lint is clean: empty selection" in text
    assert "Span chain head: `ab12cd34`" in text
    assert_no_raw_html(text)
    assert ctx.recorded == {"scopeflow.report.kind": "delivery", "scopeflow.report.blockers": 0, **NO_MATRIX}


def test_delivery_report_with_nothing_says_what_is_missing(ctx):
    write_report(ctx, spec=None, plan=None, checks=None, review=None, release=None, evidence=None)

    text = read(ctx, "DELIVERY.md")
    assert text.startswith("# Delivery: (untitled scope)")
    for phrase in ("No entities were recorded.", "Not deployed.", "Verification did not run",
                   "No review was recorded.", "No requirement matrix was recorded",
                   "No evidence report was given."):
        assert phrase in text, phrase


def test_delivery_report_survives_inputs_of_the_wrong_shape(ctx):
    write_report(ctx, spec={"title": 5, "entities": "nope", "features": [None, 3]}, plan={"tasks": {"a": 1}},
                 checks={"tests_passed": "many", "lint_errors": 2}, review={"confidence": "high", "risks": "x"},
                 release={"release": "r"}, evidence={"report": {"rules": [None, {"assertions": "no"}]}})

    text = read(ctx, "DELIVERY.md")
    assert "# Delivery: 5" in text
    assert "| lint errors | 2 |" in text and "tests passed" not in text
    assert "Confidence **not given**" in text
    assert "The evidence result was not recorded." in text


def test_blocker_plan_for_a_failed_deploy_shows_rollback_log_and_retry(ctx):
    blocker = TaskFailure("external_blocker", f"health check failed: HTTP 500 {HOSTILE}", {
        "release_id": "rel-2", "rolled_back": True, "log_tail": f"starting\n{HOSTILE}\n\nTraceback: boom",
        "active_release": {"id": "rel-1", "url": "http://127.0.0.1:40123"}}).to_payload()
    blocker["stage"] = "deploy"

    result = write_blocker_plan(ctx, blocker=blocker, spec=SPEC, plan=PLAN, checks=CHECKS)

    text = read(ctx, "BLOCKERS.md")
    assert result["report"]["outcome"] == "blocked" and result["report"]["path"] == "BLOCKERS.md"
    assert result["report"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert result["report"]["blockers"] == [{"kind": "external_blocker", "stage": "deploy",
                                             "message": blocker["message"]}]
    assert "## Blocker 1: external\\_blocker at deploy" in text
    assert "> &lt;script&gt;alert(\"x\")&lt;/script&gt;" in text and "> Traceback: boom" in text
    assert "- release\\_id: rel-2" in text
    assert "scopeflow instances retry inst-7" in text
    assert "release `rel-1` keeps serving at http://127.0.0.1:40123" in text
    assert "- `app/run.py`" in text
    assert "| tests passed | 14 |" in text
    assert "- Stripe &lt;script&gt;" in text
    assert "- Do members log in? (default: no; about login; id `q1`)" in text
    assert_no_raw_html(text)
    assert ctx.recorded == {"scopeflow.report.kind": "blockers", "scopeflow.report.blockers": 1, **NO_MATRIX}


def test_blocker_plan_for_missing_credentials_says_which_secrets_to_set(ctx):
    spec = {"title": "Shop", "integrations": [
        {"name": "stripe", "label": "Stripe", "credentials": ["STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"]},
        {"name": "ledger", "label": "Ledger", "credentials": ["LEDGER_TOKEN"]}]}
    (ctx.workspace / "app" / "webapp" / "pay.py").write_text(
        'import os\nKEY = os.environ["STRIPE_API_KEY"]\nHOOK = os.environ["STRIPE_WEBHOOK_SECRET"]\n'
        'PORT = os.getenv("STRIPE_PORT")\n')
    with pytest.raises(TaskFailure) as caught:
        check_credentials(ctx, spec=spec)

    write_blocker_plan(ctx, blocker=caught.value.to_payload(), spec=spec)

    text = read(ctx, "BLOCKERS.md")
    assert "- `STRIPE_API_KEY` (Stripe): required, the code cannot work without it" in text
    assert "- Needed once Ledger is built: LEDGER\\_TOKEN" in text
    assert "STRIPE_PORT" not in text          # an undeclared optional read is the app's own setting
    assert "- **Needed:** credential(s): STRIPE\\_API\\_KEY, STRIPE\\_WEBHOOK\\_SECRET" in text
    assert "scopeflow secrets set STRIPE_API_KEY   # reads the value from stdin\n" in text
    assert "scopeflow secrets set STRIPE_WEBHOOK_SECRET" in text
    assert text.index("secrets set STRIPE_API_KEY") < text.index("scopeflow instances retry inst-7")


def test_blocker_plan_never_puts_hostile_names_in_commands(ctx):
    blocker = {"kind": "configuration", "message": "missing", "details": {"missing": [f"KEY; rm -rf / {HOSTILE}"]}}

    write_blocker_plan(ctx, blocker=blocker)

    text = read(ctx, "BLOCKERS.md")
    assert "rm -rf" not in text.split("```sh")[1].split("```")[0]
    assert "Not shown as commands because they are not plain names (set them by hand): KEY; rm -rf /" in text
    assert_no_raw_html(text)


def test_blocker_waiting_on_a_human_task_resumes_by_completing_it(ctx):
    write_blocker_plan(ctx, blocker={"blockers": [
        {"kind": "design_flaw", "message": "the plan has a cycle", "task_id": "task-42", "stage": "plan",
         "options": ["drop the reference", "merge the entities"], "needed": "a decision on the cycle"},
        {"kind": "transient", "message": "rate limited"},
    ]}, questions=[{"id": "q9", "text": "Merge?", "default": ""}])

    text = read(ctx, "BLOCKERS.md")
    assert "scopeflow tasks show task-42" in text
    assert "1. drop the reference\n2. merge the entities" in text
    assert "- **Needed:** a decision on the cycle" in text
    assert "## Blocker 2: transient" in text and "1. resume later" in text
    assert "- Merge? (default: none; id `q9`)" in text
    assert ctx.recorded["scopeflow.report.blockers"] == 2


def test_blocker_plan_with_nothing_known_still_writes_a_plan(tmp_path):
    ctx = RecordingContext(instance_id="inst-7", task_id="t", bpmn_id="b", workspace=tmp_path / "fresh")

    result = write_blocker_plan(ctx, blocker=None)

    text = read(ctx, "BLOCKERS.md")
    assert result["report"]["blockers"] == [{"kind": "unknown", "stage": "", "message": "no message was given"}]
    assert "- none: nothing was built before the run stopped" in text
    assert "Checks: verification did not run." in text
    # An unknown kind is not a failure `instances retry` can resume (it would refuse), so no retry
    # command is printed; without the scope text there is no file to submit again either.
    assert "scopeflow instances retry inst-7" not in text and "This run cannot be resumed" in text
    assert "No command can be given" in text
    assert "## Open questions\n\nNone." in text
    assert not Path(ctx.workspace, "DELIVERY.md").exists()


def test_blockers_as_the_delivery_model_records_them(ctx):
    """The model's record scripts wrap a handler's failure details under ``details.failure`` and the
    credential check's payload under ``details.missing``; the plan reads through both."""
    deploy_failure = TaskFailure("external_blocker", "health check failed: process exited with code 3", {
        "rolled_back": True, "active_release": {"id": "rel-1", "url": "http://127.0.0.1:40123"},
        "log_tail": "Traceback\nSystemExit: 3"}).to_payload()
    blockers = [
        {"stage": "deploy", "kind": deploy_failure["kind"], "message": deploy_failure["message"],
         "details": {"failure": deploy_failure["details"], "deploy_retries": 0}},
        {"stage": "deploy", "kind": "configuration", "message": "The technical operator deferred providing credentials",
         "details": {"missing": {"missing": ["SMTP_PASSWORD"], "integrations": ["Mailer"]}, "comment": "later"}},
        {"stage": "ideation", "kind": "unbuildable", "message": "The scope cannot be built as written",
         "details": {"summary": "", "questions": [{"id": "q2", "text": "Which payment provider?",
                                                     "default": "Stripe"}]}},
    ]

    write_blocker_plan(ctx, blocker={"blockers": blockers})

    text = read(ctx, "BLOCKERS.md")
    assert "> SystemExit: 3" in text and "- deploy\\_retries: 0" in text
    assert "release `rel-1` keeps serving at http://127.0.0.1:40123" in text
    assert "scopeflow secrets set SMTP_PASSWORD" in text and "- comment: later" in text
    assert "## Blocker 3: unbuildable at ideation" in text
    assert "- **Needed:** a scope the offline templates can build" in text
    assert "- Which payment provider? (default: Stripe; id `q2`)" in text


# ------------------------------------------------------------------ the requirement matrix

def _matrix_run():
    from scopeflow.handlers.planner import make_plan
    from scopeflow.handlers.review import make_review
    from scopeflow.handlers.scope import analyze

    spec = analyze("# Club\n## Entities\n- Member: name (text, required), colour (rgb)\n## Features\n"
                   "- Search members\n- 99.9% uptime SLA\n")
    plan = make_plan(spec)
    results = {r.id: {"passed": [f"tests.test_members::test_{r.id}"], "failed": []} for r in spec.requirements}
    checks = {"compile_errors": 0, "lint_errors": 0, "tests_passed": 30, "tests_failed": 0, "tests_errors": 0,
              "security_high": 0, "security_medium": 0, "requirements": results}
    return spec, plan, checks, make_review(spec, plan, checks)


def test_delivery_report_shows_the_matrix_and_the_assumptions(ctx):
    spec, plan, checks, review = _matrix_run()
    result = write_report(ctx, spec=spec.to_data(), plan=plan.to_data(), checks={"checks": checks},
                          review={"review": review.to_data()})
    text = read(ctx, "DELIVERY.md")
    assert "| id | requirement | line | source | verdict | tests | files |" in text
    by_text = {r.text: r for r in review.requirements}
    search = by_text["Search members"]
    assert f"| {search.id} | Search members | 5 | - Search members | delivered | test\\_{search.id} | " in text
    sla = by_text["99.9% uptime SLA"]
    assert f"| {sla.id} | 99.9% uptime SLA | 6 |" in text and "not built: no offline template builds" in text
    assert "## Assumptions" in text and "Member.colour (text)" in text and "unknown type" in text
    counts = result["report"]["requirements"]
    assert counts == {**review.verdicts}
    assert f"Requirements: {counts['total']} from the scope: {counts['delivered']} delivered" in text
    assert ctx.recorded["scopeflow.requirements.delivered"] == counts["delivered"]


def test_blocker_plan_without_verification_calls_nothing_delivered(ctx):
    spec, plan, _, _ = _matrix_run()
    result = write_blocker_plan(ctx, blocker={"kind": "recoverable", "message": "tests failed"},
                                spec=spec.to_data(), plan=plan.to_data())
    text = read(ctx, "BLOCKERS.md")
    counts = result["report"]["requirements"]
    assert counts["delivered"] == 0 and counts["total"] == len(spec.requirements)
    assert "verification did not run, so no test proves it" in text
    assert "## Assumptions" in text


def test_an_evidence_blocker_names_each_failed_assertion_and_what_the_rule_means():
    from scopeflow.handlers.reporter import view_blocker

    report = {"rules": [
        {"name": "held", "passed": True, "description": "fine", "assertions": []},
        {"name": "needs a delivery", "passed": False, "description": "Answer the questions, then submit again.",
         "assertions": [{"assertion": "attr:x > 0", "passed": False, "message": "span s1 has 0"},
                        {"assertion": "attr:y = 0", "passed": True, "message": ""}]},
    ]}
    item = view_blocker({"kind": "evidence", "message": "gate failed",
                         "details": {"failed": ["needs a delivery"], "report": report}}, "i-1")
    assert ("rule \u201cneeds a delivery\u201d", "attr:x > 0: span s1 has 0") in item.details
    assert ("what it means", "Answer the questions, then submit again.") in item.details
    assert not any("held" in key for key, _ in item.details)


def test_an_unbuildable_scope_is_told_how_to_state_its_data_in_a_form_the_reader_takes():
    import re

    from scopeflow.handlers.reporter import view_blocker
    from scopeflow.handlers.scope import read_scope

    item = view_blocker({"kind": "unbuildable", "message": "no data"}, "i-1")
    assert not any("drop the unbuildable" in option for option in item.options)
    [advice] = [option for option in item.options if "## Entities" in option]
    heading, line = re.search(r'"(## Entities)".*"(- [^"]+)"', advice).groups()
    spec = read_scope(f"# Shelf\n\n{heading}\n{line}\n").spec     # the example works as printed
    assert [(e.name, [f.name for f in e.fields]) for e in spec.entities] == [("Book", ["title", "author"])]
