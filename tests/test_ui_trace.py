"""The auditor's trace page: traces separated on their own time axes with absolute and relative times,
multi-instance runs labelled by their item, observed values beside each rule, and a chain head quoted
in DELIVERY.md verified in the page with the full hash."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from scopeflow.engine.models import SpanRow
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from tests.conftest import REPO
from tests.test_ui_support import make_ui, signed_in

SCOPE = (REPO / "examples" / "scopes" / "simple-bookshelf.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    app, engine = make_ui(tmp_path_factory.mktemp("trace"))
    result = submit(engine, SCOPE, yes=True)
    stop_all(engine.settings.releases_dir)
    assert result.status == "completed"
    report = (engine.workspace(result.instance_id) / "DELIVERY.md").read_text(encoding="utf-8")
    head = re.search(r"chain head: `([0-9a-f]{64})`", report).group(1)
    return app, engine, result.instance_id, head


def test_traces_are_separated_with_axes_times_and_item_labels(delivered):
    app, _engine, instance_id, _head = delivered
    page = signed_in(app, "auditor").get(f"/instances/{instance_id}/trace").get_data(as_text=True)
    traces = re.findall(r'<details class="trace" open id="trace-([0-9a-f]{32})">', page)
    assert len(traces) > 1 and len(set(traces)) == len(traces)
    assert "<strong>Trace 1: " in page and f"<strong>Trace {len(traces)}: " in page
    assert page.count('class="axis"') == len(traces) and 'class="tick" data-left="100.000"' in page
    assert re.search(r'<small class="times" title="start \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC, end ', page)
    assert re.search(r"\+\d+\.\d (ms|s) · ", page)                        # start relative to its trace
    assert re.search(r"Build each plan task <small class=\"item\">task: app-core</small>", page)


def test_rules_show_what_they_observed(delivered):
    app, _engine, instance_id, _head = delivered
    page = signed_in(app, "auditor").get(f"/instances/{instance_id}/trace").get_data(as_text=True)
    evidence = page[page.index('id="evidence"'):page.index('id="integrity"')]
    assert re.search(r'expected [^;]+; observed <span class="ok">\d+</span><small> on <a href="#span-', evidence)


def test_the_head_printed_in_delivery_md_verifies_in_the_page(delivered):
    app, engine, instance_id, head = delivered
    client = signed_in(app, "auditor")
    page = client.get(f"/instances/{instance_id}/trace").get_data(as_text=True)
    assert f'href="/instances/{instance_id}/trace?head={head}#integrity"' in page
    checked = client.get(f"/instances/{instance_id}/trace?head={head}").get_data(as_text=True)
    assert re.search(rf"✓ Verified: <code class=\"hash\">{head}</code> is link \d+ of \d+ in an intact chain", checked)
    assert '<code class="hash" id="chain-head">' in checked
    other = client.get(f"/instances/{instance_id}/trace?head={'0' * 64}").get_data(as_text=True)
    assert "is not a link of this instance" in other and "✓ Verified" not in other
    malformed = client.get(f"/instances/{instance_id}/trace?head=abc").get_data(as_text=True)
    assert "a chain head is 64 hexadecimal characters" in malformed


def test_a_tampered_chain_does_not_verify_the_head(delivered):
    app, engine, instance_id, head = delivered
    with engine.sessions.begin() as session:
        first = session.scalar(select(SpanRow).where(SpanRow.instance_id == instance_id).order_by(SpanRow.seq).limit(1))
        original = first.name
        session.execute(update(SpanRow).where(SpanRow.id == first.id).values(name="forged"))
    try:
        page = signed_in(app, "auditor").get(f"/instances/{instance_id}/trace?head={head}").get_data(as_text=True)
        assert "✗ Not verified: the chain itself is broken" in page and "✓ Verified" not in page
    finally:
        with engine.sessions.begin() as session:
            session.execute(update(SpanRow).where(SpanRow.id == first.id).values(name=original))


def test_the_instance_timeline_labels_each_build_by_its_plan_task(delivered):
    app, _engine, instance_id, _head = delivered
    page = signed_in(app, "auditor").get(f"/instances/{instance_id}").get_data(as_text=True)
    timeline = page[page.index('id="timeline"'):page.index('id="human-tasks"')]
    assert 'Build each plan task <small class="item">task: app-core</small>' in timeline
    assert 'Build each plan task <small class="item">task: entity-books</small>' in timeline
