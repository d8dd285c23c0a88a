"""End to end in headless Chromium: a submitter submits a scope and watches it reach a review
task; a reviewer approves it in the inbox; an auditor opens the trace and sees the rules.

The tests share one instance (the lifecycle's offline agents build and test a real app).
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import REPO, Session

SCOPE = (REPO / "examples" / "scopes" / "simple-bookshelf.md").read_text()
state: dict[str, str] = {}


def _wait_marker(page, element_id: str, state_name: str, timeout_s: float = 120) -> None:
    """Wait until the live diagram colours ``element_id`` (the page polls the instance's state)."""
    page.wait_for_selector(f'g.djs-element.st-{state_name}[data-element-id="{element_id}"]',
                           timeout=timeout_s * 1000)


def test_submitter_submits_and_watches_it_reach_a_review_task(server, browser):
    base, _engine = server
    s = Session(browser, base, "submitter")
    page = s.page
    page.goto(f"{base}/submit")
    page.fill("#scope", SCOPE)
    page.wait_for_selector("#preview-body li")            # the live preview rendered the entities
    assert "Book" in page.inner_text("#preview-body")
    s.shot("01-submit-preview")
    page.click("#submit-button")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    state["instance"] = page.url.rsplit("/", 1)[-1]
    _wait_marker(page, "confirm_scope", "active")
    s.shot("02-instance-confirm-scope")
    page.click("#human-tasks a:has-text('Confirm scope')")
    page.wait_for_selector("#task-form")
    page.click("#complete-button")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    _wait_marker(page, "design_review", "active")
    _wait_marker(page, "confirm_scope", "completed")
    # The status line follows the background advance live (a selector wait: the CSP forbids eval).
    page.wait_for_selector("#instance-status.st-waiting", timeout=60_000)
    s.shot("03-instance-design-review")
    assert not [e for e in s.errors if "Content Security Policy" in e], s.errors
    s.close()


def test_reviewer_approves_in_the_inbox(server, browser):
    if "instance" not in state:
        pytest.skip("the submitter test did not create the instance")
    base, _engine = server
    s = Session(browser, base, "reviewer")
    page = s.page
    page.goto(f"{base}/tasks")
    page.click("#tasks a:has-text('Review the design')")
    page.wait_for_selector("#task-form")
    assert "Plan" in page.inner_text(".context")
    s.shot("04-design-review-task")
    page.select_option("select[name='f.decision']", "approve")
    page.click("#complete-button")                       # the build and its checks run in the background
    page.wait_for_selector('#diagram[data-rendered="true"]')
    _wait_marker(page, "design_review", "completed")
    _wait_marker(page, "final_review", "active")         # the page followed the build live
    page.wait_for_selector("#human-tasks a:has-text('Final review')")  # the task list too
    s.shot("05-after-design-approval")
    page.goto(f"{base}/tasks")
    page.click("#tasks a:has-text('Final review')")
    page.wait_for_selector("#task-form")
    assert "tests passed" in page.inner_text("#review-checks")  # the check results the decision needs
    page.select_option("select[name='f.decision']", "approve")
    page.click("#complete-button")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    _wait_marker(page, "final_review", "completed")
    _wait_marker(page, "deploy_approval", "active")      # next: the operator's deploy sign-off
    s.shot("06-after-final-review")
    assert not [e for e in s.errors if "Content Security Policy" in e], s.errors
    s.close()


def test_auditor_opens_the_trace_and_sees_the_rules(server, browser):
    if "instance" not in state:
        pytest.skip("the submitter test did not create the instance")
    base, _engine = server
    s = Session(browser, base, "auditor")
    page = s.page
    page.goto(f"{base}/instances/{state['instance']}/trace")
    page.wait_for_selector('#diagram[data-rendered="true"]')
    rules = page.locator("#evidence li.rule")
    assert rules.count() > 0
    assert "does not hold" not in page.inner_text("#evidence h2"), page.inner_text("#evidence")
    assert page.locator("#evidence li.rule.bad").count() == 0      # every rule due so far passes
    assert page.locator("#waterfall li.span-row").count() > 5
    assert "intact" in page.inner_text("#integrity")
    width = page.eval_on_selector("#waterfall .bar", "el => el.style.width")
    assert width.endswith("%")                            # trace.js positioned the bars
    page.click('g.djs-element[data-element-id="analyze_scope_task"]')
    visible = page.locator("#waterfall li.span-row:visible")
    assert visible.count() >= 1
    assert all(v == "analyze_scope_task" for v in visible.evaluate_all("els => els.map(e => e.dataset.element)"))
    first = page.locator("#waterfall li.span-row:visible summary").first
    first.click()
    page.wait_for_selector("#waterfall li.span-row:visible .span-detail table")
    assert "scopeflow.bpmn.element.id" in page.inner_text("#waterfall li.span-row:visible .span-detail")
    s.shot("07-auditor-trace")
    assert not [e for e in s.errors if "Content Security Policy" in e], s.errors
    s.close()


def test_designer_edits_in_the_modeler_and_saves_a_linted_version(server, browser):
    base, engine = server
    version = next(d["version"] for d in engine.deploy(["approval"]))
    s = Session(browser, base, "designer")
    page = s.page
    page.goto(f"{base}/models/approval/{version}/edit")
    page.wait_for_selector('#modeler[data-rendered="true"]')
    page.wait_for_selector(".djs-palette")                 # the modeler (not just a viewer) is up
    page.click("#save-model")
    page.wait_for_selector("#modeler-messages li.ok a")
    assert f"Stored approval v{version + 1}" in page.inner_text("#modeler-messages")
    s.shot("08-designer-modeler")
    assert not [e for e in s.errors if "Content Security Policy" in e], s.errors
    s.close()
