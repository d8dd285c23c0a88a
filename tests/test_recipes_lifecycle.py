"""Feature recipes through a whole run: ``scopeflow submit --yes --json`` delivers the recipe lines,
and the report's requirement matrix names the recipe tests that prove them."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.handlers import recipes
from scopeflow.handlers.scope import analyze
from tests.test_requirements_lifecycle import by_text, matrix_rows, submit_json

SCOPES = Path(__file__).parent / "recipe_scopes"

pytestmark = pytest.mark.slow


def test_a_recipe_scope_is_delivered_line_by_line_through_submit(cli):  # noqa: F811 - the fixture
    result = submit_json(cli, SCOPES / "garden.md")
    assert (result["status"], result["outcome"]) == ("completed", "delivered")
    rows = matrix_rows(result["report"])
    verdicts = by_text(rows)
    for line in ("Plants due for water today", "Overdue plants", "Plants sorted by the sum of harvest weight",
                 "Plants ordered by name", "Kanban board of plants", "Weekly chart of the total weight of harvests",
                 "Weight must be positive", "Each gardener sees only thier own plants"):
        assert verdicts[line] == "delivered", (line, verdicts[line])
    for recipe in recipes.find(analyze((SCOPES / "garden.md").read_text(encoding="utf-8"))):
        assert rows[recipe.requirement]["tests"].replace("\\_", "_") == f"test_{recipe.slug}", recipe.text
    assert result["requirements"]["not_built"] == 0
    assert result["requirements"]["delivered"] + result["requirements"]["assumed"] == result["requirements"]["total"]


def test_a_reminder_line_naming_no_entity_is_built_for_the_appointment_and_says_it_assumed_so(cli):  # noqa: F811
    """'Email reminders the day before' in a scope with three dated entities: the reminder is built
    for the one that happens on a date (Appointment), its generated test passes, and the verdict
    is 'assumed', naming the guess (never a silent 'delivered', never a miss)."""
    result = submit_json(cli, SCOPES / "clinic.md")
    assert (result["status"], result["outcome"]) == ("completed", "delivered")
    rows = matrix_rows(result["report"])
    (row,) = [r for r in rows.values() if r["text"] == "Email reminders the day before"]
    assert row["verdict"].startswith("assumed: the line names no entity: reminders are for Appointment"), row
    assert row["tests"].replace("\\_", "_") == "test_reminder_appointments_starts_on_reminder"
