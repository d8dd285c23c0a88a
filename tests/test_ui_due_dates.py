"""Due dates: a user task's ``dueIn`` becomes a due time on its human task, shown with its SLA state
in the inbox and in ``scopeflow tasks list``; durations are written in words where people read them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from scopeflow.engine.models import HumanTask
from scopeflow.engine.task_rows import add_duration as _add_duration
from scopeflow.ui.sla import due_words, duration_words, durations_in_words, sla_state
from tests.conftest import MODELS
from tests.test_ui_support import make_ui, signed_in

SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
SCOPE = "# Shelf\n\n## Entities\n- Book: title (text, required)\n"


def due_in_of_delivery() -> dict[str, str]:
    """user task id → its dueIn, read from delivery.bpmn (so a task added there is covered too)."""
    tree = etree.parse(str(MODELS / "delivery.bpmn"))
    found = {}
    for prop in tree.iter(f"{{{SPIFF}}}property"):
        if prop.get("name") == "dueIn":
            task = next(a for a in prop.iterancestors() if etree.QName(a).localname == "userTask")
            found[task.get("id")] = prop.get("value")
    return found


def test_durations_add_with_calendar_arithmetic():
    start = datetime(2024, 1, 31, 12, tzinfo=UTC)
    assert _add_duration(start, "PT8H") == start + timedelta(hours=8)
    assert _add_duration(start, "P2D") == start + timedelta(days=2)
    assert _add_duration(start, "P1W") == start + timedelta(weeks=1)
    assert _add_duration(start, "P1M") == datetime(2024, 2, 29, 12, tzinfo=UTC)    # clamped to February's end
    assert _add_duration(start, "P1Y") == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert _add_duration(datetime(2024, 11, 15, tzinfo=UTC), "P3M") == datetime(2025, 2, 15, tzinfo=UTC)
    assert _add_duration(start, "P1Y2M3DT4H5M6.5S") == datetime(2025, 4, 3, 16, 5, 6, 500000, tzinfo=UTC)
    assert _add_duration(start, "PT1.5H") == start + timedelta(minutes=90)
    assert _add_duration(start, "tomorrow") is None


def test_durations_and_due_times_read_as_words():
    assert duration_words("PT24H") == "24 hours"
    assert duration_words("P1DT2H30M") == "1 day 2 hours 30 minutes"
    assert durations_in_words("Unanswered after PT24H, this escalates (PDF stays).") == \
        "Unanswered after 24 hours, this escalates (PDF stays)."
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert due_words(now + timedelta(hours=7, minutes=59, seconds=5), now) == "in 7 h 59 min"
    assert due_words(now - timedelta(hours=3), now) == "3 h overdue"
    assert sla_state(now + timedelta(minutes=20), now) == "due soon"


@pytest.fixture
def delivery(tmp_path):
    app, engine = make_ui(tmp_path)
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="admin", title="Shelf")
    return app, engine, instance_id


def test_every_task_whose_model_sets_due_in_gets_a_due_time_shown_in_the_inbox(delivery):
    app, engine, instance_id = delivery
    due_in = due_in_of_delivery()
    assert {"confirm_scope", "design_review"} <= set(due_in)
    client = signed_in(app, "admin")
    for expected in ("confirm_scope", "design_review"):
        with engine.sessions() as session:
            task = session.query(HumanTask).filter_by(instance_id=instance_id, status="open").one()
            assert task.bpmn_id == expected
            due, created = task.due_at.replace(tzinfo=UTC), task.created_at.replace(tzinfo=UTC)
        assert abs((due - _add_duration(created, due_in[expected])).total_seconds()) < 5
        page = client.get("/tasks").get_data(as_text=True)
        assert f'<time datetime="{due.isoformat()}">' in page and "no due date" not in page
        assert "ok · in " in page
        engine.complete_task(task.id, {}, actor="admin")


def test_cli_task_list_shows_due_time_and_sla(delivery):
    _app, engine, instance_id = delivery
    env = {**os.environ, "SCOPEFLOW_HOME": str(engine.settings.home), "SCOPEFLOW_MODELS": str(MODELS)}
    shown = subprocess.run([sys.executable, "-m", "scopeflow", "tasks", "list", "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    [task] = json.loads(shown.stdout)
    assert task["due_at"] and task["sla"].startswith("ok, in 1 d 23 h")     # confirm_scope: P2D
    table = subprocess.run([sys.executable, "-m", "scopeflow", "tasks", "list"],
                           capture_output=True, text=True, env=env, timeout=60).stdout
    assert "SLA" in table and "ok, in 1 d 23 h" in table


@pytest.mark.parametrize("sla", ["PT2H", "P3D"])
def test_the_inbox_shows_the_boundary_timer_that_will_escalate_an_open_task(tmp_path, sla):
    """While the approval waits, its SLA boundary timer (the escalation) is listed next to it, due
    when the model's duration says; a task whose instance has no pending timer shows none."""
    app, engine = make_ui(tmp_path, models_dir=MODELS)
    timed = engine.start("approval", {"requester": "ann", "approval_sla": sla}, actor="admin", title="Timed")
    untimed = engine.start("delivery", {"scope": SCOPE}, actor="admin", title="Shelf")
    with engine.sessions() as session:
        [timer_task] = session.query(HumanTask).filter_by(instance_id=timed, status="open").all()
        [other_task] = session.query(HumanTask).filter_by(instance_id=untimed, status="open").all()
    expected = _add_duration(timer_task.created_at.replace(tzinfo=UTC), sla)
    page = signed_in(app, "admin").get("/tasks").get_data(as_text=True)
    rows = {task.id: _inbox_row(page, task.id) for task in (timer_task, other_task)}
    assert 'title="boundary timer sla_expired"' in rows[timer_task.id]
    assert "sla expired: " + expected.strftime("%Y-%m-%d %H:%M") in rows[timer_task.id]
    assert "boundary timer" not in rows[other_task.id]


def _inbox_row(page: str, task_id: str) -> str:
    """The inbox table row (``<tr>`` … ``</tr>``) that links to the task."""
    at = page.index(f"/tasks/{task_id}")
    return page[page.rfind("<tr", 0, at):page.index("</tr>", at)]
