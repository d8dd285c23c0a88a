"""The people at the checkpoints, in headless Chromium, each with assertions on what the page shows:
the inbox shows a due date for every task whose model sets one; the final reviewer sees the summary,
the diff and the test output before approving; the operator cannot submit an empty credential; the
auditor verifies the chain head printed in DELIVERY.md.

Runs are brought to their checkpoints through the engine (fast, offline agents), then people act in
the browser.
"""

from __future__ import annotations

import re

import pytest

from scopeflow.engine.models import HumanTask
from tests.browser.conftest import REPO, Session
from tests.test_ui_due_dates import due_in_of_delivery
from tests.test_ui_review import drive_to

BOOKSHELF = (REPO / "examples" / "scopes" / "simple-bookshelf.md").read_text()
LIBRARY = (REPO / "examples" / "scopes" / "email-reminders.md").read_text()   # its outbox needs SMTP


@pytest.fixture(scope="module")
def runs(server):
    """Instances waiting at confirm scope, design review, final review and provide credentials."""
    _base, engine = server
    found = {}
    for scope, title, stop in ((BOOKSHELF, "At confirm", "confirm_scope"), (BOOKSHELF, "At design", "design_review"),
                               (BOOKSHELF, "At final review", "final_review"),
                               (LIBRARY, "At credentials", "provide_credentials")):
        instance_id = engine.start("delivery", {"scope": scope}, actor="submitter", title=title)
        found[stop] = (instance_id, drive_to(engine, instance_id, stop).id)
    return found


def no_csp_errors(s: Session) -> None:
    assert not [e for e in s.errors if "Content Security Policy" in e], s.errors


def test_the_inbox_shows_a_due_date_for_every_task_whose_model_sets_one(server, browser, runs):
    base, engine = server
    s = Session(browser, base, "admin")
    page = s.page
    page.goto(f"{base}/tasks")
    due_in = due_in_of_delivery()
    with engine.sessions() as session:
        open_tasks = session.query(HumanTask).filter_by(status="open").all()
    assert {t.bpmn_id for t in open_tasks} >= set(runs)
    for task in open_tasks:
        row = page.locator(f"#tasks tr:has(a[href='/tasks/{task.id}'])")
        due = row.locator("td.due")
        if task.bpmn_id in due_in:
            assert due.locator("time").count() == 1, task.bpmn_id
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", due.inner_text())
            assert re.search(r"(ok|due soon|overdue) · (in )?\d", due.inner_text()), due.inner_text()
        else:
            assert "no due date" in due.inner_text()
    credentials = page.locator(f"#tasks tr:has(a[href='/tasks/{runs['provide_credentials'][1]}']) td.escalation")
    assert "credential sla expired" in credentials.inner_text()      # the SLA timer that escalates it
    s.shot("10-inbox-due-dates")
    no_csp_errors(s)
    s.close()


def test_the_reviewer_sees_summary_diff_and_test_output_before_approving(server, browser, runs):
    base, _engine = server
    instance_id, task_id = runs["final_review"]
    s = Session(browser, base, "reviewer")
    page = s.page
    page.goto(f"{base}/tasks")
    page.click(f"#tasks a[href='/tasks/{task_id}']")
    page.wait_for_selector("#task-form")
    summary = page.inner_text("#review-summary")
    assert "entities: Book, Author" in summary and "Confidence" in summary and "Risks" in summary
    checks = page.inner_text("#review-checks")
    assert "tests passed" in checks and re.search(r"\d+ passed in", checks)     # pytest's own output
    diff = page.inner_text("#review-diff")
    assert "differ from no earlier review of this instance" in diff and "app/webapp/core.py" in diff
    assert page.locator("#review-diff .d-add").count() > 10
    assert "tests ran and passed" in page.inner_text("#review-evidence")
    s.shot("11-final-review-summary")
    page.click("#review-files a[title='app/webapp/core.py']")
    page.wait_for_selector("#viewer .code")
    assert "def " in page.inner_text("#viewer")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1400, f"the page is {width} px wide"           # long paths wrap instead of widening it
    s.shot("12-final-review-code")
    page.click("a:has-text('trace & evidence')")                     # a reviewer may read the trace
    page.wait_for_selector("#evidence")
    page.go_back()
    page.select_option("select[name='f.decision']", "approve")
    page.click("#complete-button")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    assert f"/instances/{instance_id}" in page.url
    no_csp_errors(s)
    s.close()


def test_the_operator_cannot_submit_an_empty_credential(server, browser, runs):
    base, engine = server
    instance_id, task_id = runs["provide_credentials"]
    s = Session(browser, base, "operator")
    page = s.page
    page.goto(f"{base}/tasks/{task_id}")
    page.wait_for_selector("#task-form")
    assert page.locator("input[name='f.action']:checked").count() == 0        # nothing preselected
    instructions = page.inner_text(".instructions")
    assert "24 hours" in instructions and "PT24H" not in instructions and "`" not in instructions
    assert "SMTP_PASSWORD" in page.inner_text("#field-values")
    page.click("#complete-button")
    page.wait_for_selector("#error-action")
    assert "choose one of: provide, defer" in page.inner_text("#error-action")
    page.check("input[name='f.action'][value='provide']")
    page.click("#complete-button")
    page.wait_for_selector("#error-values")
    assert "enter a value for SMTP_HOST, SMTP_USER, SMTP_PASSWORD" in page.inner_text("#error-values")
    s.shot("13-credentials-refused")
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).status == "open"
    no_csp_errors(s)
    s.close()


def test_the_auditor_checks_the_head_printed_in_delivery_md(server, browser):
    from scopeflow.handlers.release import stop_all
    from scopeflow.lifecycle import submit

    base, engine = server
    result = submit(engine, BOOKSHELF, yes=True)
    stop_all(engine.settings.releases_dir)
    assert result.status == "completed"
    s = Session(browser, base, "auditor")
    page = s.page
    page.goto(f"{base}/instances/{result.instance_id}")
    printed = re.search(r"chain head: ([0-9a-f]{64})", page.inner_text("#report")).group(1)
    assert page.inner_text("#instance-progress-text") == "100% · delivered"
    page.click("a:has-text('trace & evidence')")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    page.fill("#head-input", printed)
    page.click("#head-form button[type=submit]")
    page.wait_for_selector("#head-result .ok-message")
    verdict = page.inner_text("#head-result")
    assert verdict.startswith("✓ Verified:") and printed in verdict and "intact chain" in verdict
    assert page.inner_text("#chain-head") and len(page.inner_text("#chain-head").strip()) == 64
    assert page.locator("details.trace").count() > 1 and page.locator(".axis .tick").count() > 5
    advance = page.locator("#waterfall li.span-row:has(.twisty:visible)").first   # a span with children
    under = page.locator(f"#waterfall li.span-row[data-parent='{advance.get_attribute('data-span')}']")
    assert under.count() > 0 and under.first.is_visible()
    advance.locator(".twisty").click()
    assert not under.first.is_visible()                              # the tree folds
    advance.locator(".twisty").click()
    assert under.first.is_visible()
    s.shot("14-auditor-head-verified")
    page.fill("#head-input", "f" * 64)
    page.click("#head-form button[type=submit]")
    page.wait_for_selector("#head-result .field-error")
    assert "is not a link of this instance" in page.inner_text("#head-result")
    no_csp_errors(s)
    s.close()


def semantics(xml: str) -> dict[str, str]:
    """What the engine reads, element by element: path of ids (a parameter id repeats across
    operators) → the element's own tag, attributes and text, without layout, comments, formatting
    or attributes at their BPMN default (bpmn-js drops cancelActivity="true")."""
    from lxml import etree

    root = etree.fromstring(xml.encode("utf-8"))
    found = {}
    for node in root.iter():
        if not isinstance(node.tag, str) or not node.get("id") or "BPMN/20100524/DI" in node.tag or node is root:
            continue
        path = "/".join(a.get("id") for a in reversed(list(node.iterancestors())) if a.get("id") and a is not root)
        attributes = {k: v for k, v in node.attrib.items() if not (k == "cancelActivity" and v == "true")}
        children = [(etree.QName(c).localname, (c.text or "").strip(), sorted(c.attrib.items()))
                    for c in node if isinstance(c.tag, str) and not c.get("id")]
        found[f"{path}/{node.get('id')}"] = repr((etree.QName(node).localname, sorted(attributes.items()),
                                                  (node.text or "").strip(), children))
    return found


def test_the_designer_edits_an_operator_parameter_in_the_panel_and_the_next_instance_runs_it(server, browser):
    from scopeflow.engine.models import Instance, ModelVersion

    base, engine = server
    version = next(d["version"] for d in engine.deploy(["delivery"]))
    s = Session(browser, base, "designer")
    page = s.page
    page.goto(f"{base}/models/delivery/{version}/edit")
    page.wait_for_selector('#modeler[data-rendered="true"]')
    page.locator('g.djs-element[data-element-id="analyze_scope_task"]').dispatch_event("click")  # under the palette
    page.wait_for_selector("#properties .bio-properties-panel-group-header:has-text('Operator and parameters')")
    page.click("#properties .bio-properties-panel-group-header:has-text('Operator and parameters')")
    field = page.locator("#bio-properties-panel-sf-param-scope")
    assert field.input_value() == "scope"
    field.fill('scope + "\\n\\n## Constraints\\n- Edited in the designer\\n"')
    s.shot("15-designer-properties-panel")
    page.click("#save-model")
    page.wait_for_selector("#modeler-messages li.ok a")
    assert f"Stored delivery v{version + 1}" in page.inner_text("#modeler-messages")
    with engine.sessions() as session:
        old, new = (session.query(ModelVersion).filter_by(name="delivery", version=v).one() for v in (version, version + 1))
        before, after = semantics(old.files["delivery.bpmn"]), semantics(new.files["delivery.bpmn"])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == ["delivery/analyze_scope_task/analyze_scope/scope"], changed   # that parameter, nothing else
    assert "('loopDataInputRef', 'build_order', [])" in after["delivery/build_each/MI_build_each"]  # kept
    no_csp_errors(s)
    s.close()
    submitter = Session(browser, base, "submitter")
    page = submitter.page
    page.goto(f"{base}/submit")
    page.fill("#scope", BOOKSHELF)
    page.click("#submit-button")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    instance_id = page.url.rsplit("/", 1)[-1]
    assert f"delivery v{version + 1}" in page.inner_text(".meta")
    with engine.sessions() as session:
        assert session.get(Instance, instance_id).model_version == version + 1
    page.wait_for_selector("#human-tasks a:has-text('Confirm scope')")
    page.click("#human-tasks a:has-text('Confirm scope')")
    assert "Edited in the designer" in page.inner_text(".context")  # the edited parameter ran
    submitter.close()
