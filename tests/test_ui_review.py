"""The final reviewer's page: what was built and why, the checks with their output, the evidence so
far, the build's files readable in the page, and the diff against the build an earlier review saw."""

from __future__ import annotations

import pytest

from scopeflow.engine.models import HumanTask
from scopeflow.ui import code_view
from scopeflow.ui.review_view import confidence
from tests.test_ui_support import make_ui, signed_in

SCOPE = """# Shelf

## Entities
- Book: title (text, required), pages (integer)

## Features
- Search books by title
- Send a weekly newsletter by fax
"""


def open_task(engine, instance_id: str) -> HumanTask:
    with engine.sessions() as session:
        return session.query(HumanTask).filter_by(instance_id=instance_id, status="open").one()


def drive_to(engine, instance_id: str, bpmn_id: str) -> HumanTask:
    """Complete every human task with its defaults until ``bpmn_id`` is the open one."""
    for _ in range(10):
        task = open_task(engine, instance_id)
        if task.bpmn_id == bpmn_id:
            return task
        engine.complete_task(task.id, {}, actor="admin")
    raise AssertionError(f"{bpmn_id} never became the open task")


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    app, engine = make_ui(tmp_path_factory.mktemp("review"))
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Shelf")
    return app, engine, instance_id, drive_to(engine, instance_id, "final_review")


def test_reviewer_sees_summary_checks_with_output_and_evidence(reviewed):
    app, engine, instance_id, task = reviewed
    page = signed_in(app, "reviewer").get(f"/tasks/{task.id}").get_data(as_text=True)
    summary = page[page.index('id="review-summary"'):page.index('id="review-checks"')]
    assert "entities: Book" in summary and "✓ built: Search books by title" in summary
    assert "✗ not built: Send a weekly newsletter by fax" in summary
    assert "Confidence</strong> 0." in summary and "for 1 requirement(s) not built" in summary
    assert "clamped" not in summary                                   # the arithmetic is in words
    checks = page[page.index('id="review-checks"'):page.index('id="review-evidence"')]
    assert "tests passed</th><td>" in checks and "tests_passed" not in checks
    assert "Test output" in checks and " passed in " in checks       # pytest's own summary line
    evidence = page[page.index('id="review-evidence"'):page.index('id="review-files"')]
    assert "tests ran and passed" in evidence
    instructions = page[page.index('class="instructions"'):page.index('id="task-form"')]
    assert "Approve to go on to deploy" in instructions and "\n\n\n\n" not in instructions


def test_reviewer_reads_a_file_highlighted_in_the_page_and_may_open_the_trace(reviewed):
    app, engine, instance_id, task = reviewed
    client = signed_in(app, "reviewer")
    page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert f'href="/tasks/{task.id}?file=app/webapp/core.py#viewer"' in page
    assert ".cache" not in page[page.index('id="review-files"'):]    # tool caches are not the build
    shown = client.get(f"/tasks/{task.id}?file=app/webapp/core.py").get_data(as_text=True)
    viewer = shown[shown.index('id="viewer"'):shown.index('id="review-diff"')]
    assert 'class="code"' in viewer and '<span class="k">def</span>' in viewer
    escaped = client.get(f"/tasks/{task.id}?file=../../etc/passwd").get_data(as_text=True)
    assert "is not a text file of this build" in escaped and "root:" not in escaped
    assert client.get(f"/instances/{instance_id}/trace").status_code == 200
    assert client.get("/code.css").headers["Content-Type"].startswith("text/css")


def test_a_later_review_shows_the_diff_against_the_build_the_previous_review_saw(tmp_path):
    app, engine = make_ui(tmp_path)
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Shelf")
    first = drive_to(engine, instance_id, "final_review")
    client = signed_in(app, "reviewer")
    page = client.get(f"/tasks/{first.id}").get_data(as_text=True)
    assert "no earlier review of this instance: every file is new" in page
    engine.complete_task(first.id, {"decision": "request_changes", "comment": "rename it"}, actor="reviewer")
    second = drive_to(engine, instance_id, "final_review")
    core = engine.workspace(instance_id) / "app" / "webapp" / "core.py"
    core.write_text(core.read_text() + "\nREVIEWED_AGAIN = True\n")   # what a rebuild changed
    page = client.get(f"/tasks/{second.id}").get_data(as_text=True)
    diff = page[page.index('id="review-diff"'):]
    assert "1 file(s) differ from the build shown at the previous review" in diff
    assert "app/webapp/core.py" in diff and '<span class="d-add">+REVIEWED_AGAIN = True</span>' in diff


def test_diff_builds_reports_added_removed_changed_and_unchanged_files():
    diffs = {d.path: d for d in code_view.diff_builds({"a.py": "x = 1\n", "gone.py": "y\n", "same": "s"},
                                                     {"a.py": "x = 2\n", "new.py": "z\n", "same": "s"})}
    assert {p: d.status for p, d in diffs.items()} == {"a.py": "changed", "gone.py": "removed",
                                                       "new.py": "added", "same": "unchanged"}
    assert [(line.kind, line.text) for line in diffs["a.py"].lines if line.kind != "hunk"] == \
        [("del", "-x = 1"), ("add", "+x = 2")]


def test_confidence_reads_its_deductions():
    assert confidence({"confidence": 1.0, "confidence_basis": "1.00 start = 1.00 (clamped to [0, 1])"}).words \
        == "1.00 of 1.00: no deduction applied"
    shown = confidence({"confidence": 0.85, "confidence_basis":
                        "1.00 start; -0.10 for 1 failed/erroring test(s); -0.05 for 1 unbuildable plan task(s)"
                        " = 0.85 (clamped to [0, 1])"})
    assert shown.words == "0.85 of 1.00 after −0.10 for 1 failed/erroring test(s); −0.05 for 1 unbuildable plan task(s)"


def test_requirement_verdicts_in_the_task_data_are_shown_and_nothing_is_invented():
    from scopeflow.ui.review_view import final_review

    verdicts = [{"requirement": "Search books by title", "verdict": "met", "evidence": "test_search passes"}]
    shown = final_review({"review": {"review": {"summary": {}, "requirement_verdicts": verdicts}, "rationale": "why"}})
    assert shown.verdicts == verdicts and shown.rationale == "why"
    empty = final_review({})
    assert (empty.verdicts, empty.rationale, empty.checks, empty.outputs, empty.confidence.value) == ([], "", [], [], None)


def test_anyone_who_sees_the_instance_reads_its_files_in_the_page(reviewed):
    app, _engine, instance_id, _task = reviewed
    client = signed_in(app, "submitter")
    assert f'href="/instances/{instance_id}/files" id="read-files"' in client.get(f"/instances/{instance_id}").get_data(as_text=True)
    page = client.get(f"/instances/{instance_id}/files?file=app/webapp/core.py").get_data(as_text=True)
    assert '<span class="k">def</span>' in page and ".cache" not in page
    outside = client.get(f"/instances/{instance_id}/files?file=../../../etc/passwd").get_data(as_text=True)
    assert "is not a text file of this workspace" in outside and "root:" not in outside
