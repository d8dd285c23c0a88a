"""Feature recipes: recognised from scope lines, rendered into the app, proven by generated tests.

Three scopes of different domains (tests/recipe_scopes/) are built offline and their generated
tests run; every recipe requirement must end ``delivered`` from those runs, and a mutation that
breaks a rendered recipe must turn its generated test red (and its verdict ``not built``).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scopeflow.handlers import recipes
from scopeflow.handlers import requirements as req
from scopeflow.handlers.builder import build_task
from scopeflow.handlers.checks import Checks
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.planner import make_plan, plan_build
from scopeflow.handlers.scope import analyze
from scopeflow.handlers.spec import Spec
from scopeflow.handlers.verifier import check_tests

SCOPES = Path(__file__).parent / "recipe_scopes"


def spec_of(name: str) -> Spec:
    return analyze((SCOPES / f"{name}.md").read_text(encoding="utf-8"))


def recipe_lines(spec: Spec) -> dict[str, tuple[str, str]]:
    """Line text → (kind, name) of the recipe recognised in it."""
    return {r.text: (r.kind, r.name) for r in recipes.find(spec)}


def build(spec: Spec, workspace: Path) -> dict:
    def ctx() -> RecordingContext:
        return RecordingContext(instance_id="i1", task_id="t1", bpmn_id="build", workspace=workspace)

    planned = plan_build(ctx(), spec.to_data())
    for task_id in planned["build_order"]:
        build_task(ctx(), spec.to_data(), planned["plan"], task_id)
    return planned


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """``copy_into(scope, workspace) -> (spec, planned)``: the recipe scope's app, rendered once per test
    process and copied into ``workspace`` for each test that runs or mutates it (rendering is
    deterministic; a copy is what a fresh render would write). The rendered originals are never run."""
    originals: dict[str, tuple[Path, dict]] = {}

    def copy_into(scope: str, workspace: Path) -> tuple[Spec, dict]:
        if scope not in originals:
            original = tmp_path_factory.mktemp(f"rendered-{scope}")
            originals[scope] = original, build(spec_of(scope), original)
        original, planned = originals[scope]
        shutil.copytree(original / "app", workspace / "app")
        return spec_of(scope), copy.deepcopy(planned)

    return copy_into


def test_a_rendered_copy_is_what_a_fresh_render_writes(rendered, tmp_path):
    spec, planned = rendered("library", tmp_path / "copied")
    fresh = build(spec_of("library"), tmp_path / "fresh")
    assert planned == fresh
    files = {p.relative_to(tmp_path / "fresh"): p.read_bytes() for p in (tmp_path / "fresh").rglob("*") if p.is_file()}
    assert files and files == {p.relative_to(tmp_path / "copied"): p.read_bytes()
                               for p in (tmp_path / "copied").rglob("*") if p.is_file()}


def verdicts(spec: Spec, planned: dict, app: Path, only: str | None = None,
             select: str | None = None) -> dict[str, req.Requirement]:
    """Run the app's generated tests (all, or one file, or its tests named like ``select``) and decide
    every requirement from them."""
    checks = Checks()
    if only is None:
        check_tests(app, checks, timeout_s=300)
    else:
        checks.requirements = _run_file(app, only, select)
    tasks = planned["plan"]["tasks"]
    return {r.id: r for r in req.decide([req.Requirement(**vars(r)) for r in spec.requirements], tasks,
                                        checks.requirements)}


def _run_file(app: Path, test_file: str, select: str | None = None) -> dict[str, dict[str, list[str]]]:
    """Requirement results of one generated test file (through a throwaway copy of the app)."""
    junit = app / ".junit-one.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    test_file, *(["-k", select] if select else [])], cwd=app, capture_output=True, text=True,
                   timeout=300)
    import xml.etree.ElementTree as ET  # noqa: PLC0415 - only this helper reads JUnit directly

    found: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own pytest run
        failed = any(child.tag in ("failure", "error") for child in case)
        for prop in case.iter("property"):
            if prop.get("name") == "requirements":
                for rid in (prop.get("value") or "").split():
                    bucket = found.setdefault(rid, {"passed": [], "failed": []})
                    bucket["failed" if failed else "passed"].append(case.get("name", ""))
    return found


# ------------------------------------------------------------------------------ recognition
@pytest.mark.parametrize("line, expected", [
    ("List overdue loans", ("filter", "overdue")),
    ("Loans due today", ("filter", "due-today")),
    ("Filter loans by status", ("filter", "by-status")),
    ("Titles sorted by average rating", ("sort", "by-avg-rating")),
    ("Titles sorted by number of reviews", ("sort", "by-count-of-reviews")),
    ("Only librarians can change anything, students can only read", ("roles", "librarian-writes")),
    ("A kanban board of loans", ("board", "by-status")),
    ("Loans board by status", ("board", "by-status")),
    ("Chart of loans per month", ("chart", "count-per-month")),
    ("Daily statistics of loans", ("chart", "count-per-day")),
    ("Remind members when their loans are due", ("reminder", "due-on-reminder")),
    ("Email the member when a loan is closed", ("notify", "status-closed")),
    ("Bar chart of loans by status", ("chart", "count-by-status")),
    ("Pie chart of loans per title", ("chart", "count-by-title")),
    ("Members see only their own loans", ("ownership", "private")),
])
def test_library_lines_trigger_their_recipes(line, expected):
    spec = spec_of("library")
    if line not in {f.text for f in spec.features} | set(spec.constraints):
        spec = _with_feature(spec, line)
    assert recipe_lines(spec)[line] == expected


def test_constraint_lines_become_rules_with_the_operator_they_say():
    found = {r.text: r.params for r in recipes.find(spec_of("conference")) if r.kind == "constraint"}
    assert found["The end date must not be before the start date"] == {
        "rule": "compare", "left": "ends_on", "op": ">=", "right": "starts_on", "left_type": "date"}
    assert found["Capacity can never be negative"]["strict"] is False
    library = {r.text: r.params for r in recipes.find(spec_of("library")) if r.kind == "constraint"}
    assert library["Due date must be after the lent date"]["op"] == ">"
    garden = {r.text: r.params for r in recipes.find(spec_of("garden")) if r.kind == "constraint"}
    assert garden["Weight must be positive"]["strict"] is True


@pytest.mark.parametrize("line, expected", [
    ("Only librarians can change anything, students can only read",
     {"writer": "librarian", "reader": "student", "tables": None}),
    ("Only admins may edit loans; members are read-only", {"writer": "admin", "reader": "member", "tables": ["loans"]}),
    ("Only organisers may edit events; speakers can only read", None),   # no Event in the library scope
])
def test_role_lines_name_who_writes_who_reads_and_what(line, expected):
    from scopeflow.handlers.recipes.match_rules import match_roles

    found = match_roles(line, spec_of("library"), None)
    if expected is None:
        assert found is not None and found.params["tables"] is None
    else:
        assert found is not None and found.params == expected


@pytest.mark.parametrize("line", ["Only logged-in staff can change stock", "Only authenticated agents can close tickets",
                                  "Staff log in with accounts and roles"])
def test_login_lines_are_no_roles(line):
    from scopeflow.handlers.recipes.match_rules import match_roles

    assert match_roles(line, spec_of("library"), None) is None


def test_roles_bring_login_and_a_writer_test_user(tmp_path):
    spec = spec_of("library")
    assert not spec.wants_login
    plan = make_plan(spec)
    assert any(t.kind == "auth" for t in plan.tasks)


@pytest.mark.parametrize("line, expected", [
    ("A title can be on only one open loan at a time", {"field": "title", "state": "status", "value": "open"}),
    ("Only one open loan per title", {"field": "title", "state": "status", "value": "open"}),
    ("Only one active loan per member", {"field": "member", "state": "returned", "value": False}),
])
def test_only_one_lines_name_the_field_and_the_state(line, expected):
    from scopeflow.handlers.recipes.match_rules import match_only_one

    found = match_only_one(line, spec_of("library"), None)
    assert found is not None and found.params == {"rule": "only-one", **expected}


def test_only_one_without_a_state_is_a_miss():
    from scopeflow.handlers.recipes.match_rules import match_only_one

    found = match_only_one("Only one loan per title", spec_of("library"), None)
    assert isinstance(found, recipes.Miss) and "needs" in found.reason and "state word" in found.reason


def test_the_matched_words_are_recorded_on_the_requirement():
    spec = spec_of("conference")
    by_text = {r.text: r for r in spec.requirements}
    assert by_text["Browse talks by track"].recipe == "filter:by-track"
    assert by_text["Browse talks by track"].matched == ["Browse", "by", "track"]
    assert by_text["The end date must not be before the start date"].matched == ["end", "not be before", "start"]
    assert by_text["The end date must not be before the start date"].reason == ""


@pytest.mark.parametrize("line", ["Search books by title", "Search loans by student and status",
                                  "List, add, edit and delete books",
                                  "Export loans to CSV", "Staff log in"])
def test_lines_without_trigger_words_are_no_recipe(line):
    spec = _with_feature(spec_of("library"), line)
    assert line not in recipe_lines(spec)
    assert recipes.misses(spec) == []


def _with_feature(spec: Spec, line: str) -> Spec:
    from scopeflow.handlers.scope import classify_feature
    from scopeflow.handlers.spec import Feature

    spec.features.append(classify_feature(line) or Feature(line, "custom", False, "a bullet of unknown kind"))
    return spec


def test_a_chart_without_a_period_is_a_miss():
    spec = _with_feature(spec_of("library"), "Seller analytics dashboard with charts")
    (miss,) = recipes.misses(spec)
    assert miss.kind == "chart" and "needs an entity and a period" in miss.reason


@pytest.mark.parametrize("line, kind, reason", [
    ("Email notifications when an order ships", "notify", "needs the entity the event happens to"),
    ("Remind titles when reviews arrive", "notify", "no email address for 'titles' on Review"),
    ("Send a reminder before each review", "reminder", "needs an entity with a date field"),
    ("SMS reminders the day before a loan is due", "reminder", "SMS sending is not built; reminders can be emailed"),
    ("Text message reminders before loans are due", "reminder", "SMS sending is not built"),
])
def test_reminders_the_app_cannot_send_are_misses(line, kind, reason):
    spec = _with_feature(spec_of("library"), line)
    (miss,) = recipes.misses(spec)
    assert miss.kind == kind and reason in miss.reason


@pytest.mark.parametrize("line, expected", [
    ("Notify the customer when an order is shipped",
     {"event": "becomes", "field": "status", "value": "shipped", "via": "customer", "email": "email"}),
    ("When an order ships, email the customer", {"event": "becomes", "value": "shipped", "via": "customer"}),
    ("Customers get an email when their order is paid", {"event": "becomes", "value": "paid", "via": "customer"}),
    ("Send an email to the agent when a ticket is assigned", {"event": "set", "field": "agent", "via": "agent"}),
    ("Alert staff when stock falls below 5", {"event": "below", "field": "stock", "value": 5, "staff": True}),
    ("Warn the office if a product's price rises above 99.5",
     {"event": "above", "field": "price", "value": 99.5, "staff": True}),
    ("Email the customer when a new order is created", {"event": "created", "field": None, "via": "customer"}),
    ("Notify the customer when the total of an order changes", {"event": "changed", "field": "total"}),
    # Active voice: the thing made is the verb's object, not its subject.
    ("Email the customer when a customer places an order", {"entity": "Order", "event": "created", "via": "customer"}),
    ("Alert staff whenever a customer submits a new order", {"entity": "Order", "event": "created", "staff": True}),
    ("Notify the customer when their order ships", {"entity": "Order", "event": "becomes", "value": "shipped"}),
])
def test_notification_lines_name_the_event_and_whom_to_send_it_to(line, expected):
    from scopeflow.handlers.recipes.match_notifications import match_notification

    found = match_notification(line, spec_of("shop"), None)
    assert isinstance(found, recipes.Recipe), found
    assert {key: found.entity if key == "entity" else found.params[key] for key in expected} == expected


@pytest.mark.parametrize("line, reason", [
    ("Email the owner when a new order is created", "no email address for 'owner' on Order"),
    ("Notify the customer when an order is updated", "no event of Order found"),
    ("Alert staff when a ticket is assigned", "needs the reference field of Ticket being set named"),
    ("Email notifications when a category is created", "does not say whom to notify"),
])
def test_notifications_without_an_event_or_an_address_stay_not_built_with_the_reason(line, reason):
    spec = analyze((SCOPES / "shop.md").read_text(encoding="utf-8").replace(
        "- Filter orders by status\n", f"- Filter orders by status\n- {line}\n"))
    (miss,) = recipes.misses(spec)
    assert miss.kind == "notify" and reason in miss.reason, miss.reason
    (requirement,) = [r for r in spec.requirements if r.text == line]
    assert requirement.reason.startswith("recipe notify cannot be built") and requirement.matched


def test_the_notification_words_are_recorded_on_the_requirement():
    by_text = {r.text: r for r in spec_of("shop").requirements}
    found = by_text["Alert staff when stock falls below 5"]
    assert found.recipe == "notify:stock-below-5"
    assert found.matched == ["Alert", "staff", "when", "below 5"]
    assert by_text["Pie chart of products per category"].matched == ["chart", "per category", "pie"]
    notes = "\n".join(recipes.readme_lines(spec_of("shop")))
    assert "- Alert staff when stock falls below 5\n  (queued on the change" in notes
    assert "to the STAFF_EMAIL address: set it, or nothing is queued" in notes
    assert "- Pie chart of products per category: `GET /products/charts/count-by-category`" in notes


def test_a_board_without_a_choice_field_is_a_miss():
    spec = analyze("# Deals\n\n## Entities\n- Deal: name (text, required), stage (text)\n\n## Features\n"
                   "- A board of deals by stage\n")
    (miss,) = recipes.misses(spec)
    assert miss.kind == "board" and "needs a choice field on Deal" in miss.reason


def test_expired_asks_for_the_overdue_filter_on_the_date_the_line_names():
    spec = analyze("# Gym\n\n## Entities\n- Member: name, joined on (date), membership expires on (date)\n\n"
                   "## Features\n- members whose membership expired show up in a list\n")
    (recipe,) = recipes.find(spec)
    assert (recipe.kind, recipe.name, recipe.params["field"]) == ("filter", "overdue", "membership_expires_on")


def test_a_recipe_the_spec_cannot_support_stays_not_built_with_its_reason():
    spec = analyze("# Loans\n\n## Entities\n- Loan: student (text, required)\n\n## Features\n- List overdue loans\n")
    (requirement,) = [r for r in spec.requirements if r.kind == "feature"]
    assert requirement.matched == ["overdue"]
    assert "needs a date field on Loan" in requirement.reason
    plan = make_plan(spec)
    (task,) = [t for t in plan.tasks if requirement.id in t.requirements]
    assert not task.buildable and "needs a date field on Loan" in task.reason
    assert not any(t.kind == recipes.TASK_KIND for t in plan.tasks)
    decided = req.decide(spec.requirements, [t.__dict__ for t in plan.tasks], {})
    assert next(r for r in decided if r.id == requirement.id).verdict == req.NOT_BUILT


def test_recipe_lines_are_planned_on_the_recipes_task_only():
    spec = spec_of("library")
    plan = make_plan(spec)
    recipe_ids = {r.requirement for r in recipes.find(spec)}
    owners = {rid: [t.id for t in plan.tasks if rid in t.requirements] for rid in recipe_ids}
    assert owners and all(found == [recipes.TASK_ID] for found in owners.values())
    task = plan.task(recipes.TASK_ID)
    assert {f"entity-{e.table}" for e in spec.entities} <= set(task.depends_on)


# ------------------------------------------------------------------------------ rendered and run
@pytest.fixture(scope="module", params=["library", "conference", "garden", "shop"])
def built(request, tmp_path_factory, rendered) -> tuple[Spec, dict, Path]:
    workspace = tmp_path_factory.mktemp(request.param)
    spec, planned = rendered(request.param, workspace)
    return spec, planned, workspace / "app"


def test_every_recipe_requirement_is_delivered_by_a_passing_generated_test(built):
    spec, planned, app = built
    decided = verdicts(spec, planned, app)
    recipe_ids = [r.requirement for r in recipes.find(spec)]
    assert len(recipe_ids) >= 5
    for rid in recipe_ids:
        found = decided[rid]
        assert found.verdict == req.DELIVERED, (found.text, found.reason)
        assert any("test_recipes" in test for test in found.tests), found.tests
        assert not any("test_recipes" not in test for test in found.tests), "only recipe tests prove recipe lines"
    assert all(r.verdict in req.VERDICTS for r in decided.values())


MUTATIONS = {
    # (scope, file, original, replacement, the generated test that must fail)
    "overdue window": ("library", "webapp/recipes/views.py", "        return None, today\n",
                       "        return None, today + datetime.timedelta(days=1)\n", "test_filter_loans_overdue"),
    "finished rows listed": ("garden", "webapp/recipes/views.py", "    if view.done:\n", "    if False:\n",
                             "test_filter_plants_overdue"),
    "aggregate order": ("library", "webapp/recipes/views.py", "order_by(value.desc().nulls_last(), model.id)",
                        "order_by(value.asc().nulls_last(), model.id)", "test_sort_titles_by_avg_rating"),
    "choice filter ignored": ("conference", "webapp/recipes/views.py",
                              "    if view.kind == \"by-field\":\n        if value is not None:",
                              "    if view.kind == \"by-field\":\n        if False:", "test_filter_talks_by_track"),
    "comparison not enforced": ("conference", "webapp/recipes/rules.py", "        if test(left, right):\n",
                                "        if True:\n", "test_constraint_events_ends_on_not_before_starts_on"),
    "roles not enforced": ("library", "webapp/recipes/roles.py", '    if ROLES.get(role or "") == "write":\n',
                           "    if True:\n", "test_roles_members_librarian_writes"),
    "roles ignore the guarded table": ("conference", "webapp/recipes/roles.py",
                                       "    if table is None or (GUARDED is not None and table not in GUARDED):",
                                       "    if table is None or table in GUARDED:", "test_roles_events_organiser_writes"),
    "board in one column": ("garden", "webapp/recipes/boards.py", "            found[value].append(",
                            "            found[choices[0]].append(", "test_board_plants_by_spot"),
    "board moves anywhere": ("conference", "webapp/recipes/boards.py", "    saved, errors = resource.update(row, {field: to})",
                             "    setattr(row, field, to)\n    saved, errors = row, {}", "test_board_events_by_status"),
    "chart by the wrong period": ("garden", "webapp/recipes/charts.py", '        return f"{year}-W{week:02d}"',
                                  '        return f"{year}-W{week + 1:02d}"', "test_chart_harvests_sum_weight_per_week"),
    "chart counts once per period": ("library", "webapp/recipes/charts.py",
                                     "totals[key] = totals.get(key, 0) + (amount or 0)", "totals[key] = amount or 0",
                                     "test_chart_loans_count_per_month"),
    "reminders for past rows too": ("library", "webapp/recipes/outbox.py",
                                    "if today <= _day(getattr(row, reminder.field)) <= last]",
                                    "if _day(getattr(row, reminder.field)) <= last]", "test_reminder_loans_due_on_reminder"),
    "reminders queued twice": ("conference", "webapp/recipes/outbox.py",
                               "            if not recipient or session.scalars(",
                               "            if not recipient or False and session.scalars(",
                               "test_reminder_events_starts_on_reminder"),
    "printed reminders marked sent": ("conference", "webapp/recipes/outbox.py",
                                      "    if not host or not waiting:\n        return 0, waiting",
                                      "    if not host or not waiting:\n        for message in waiting:\n"
                                      "            message.sent_at = datetime.datetime.now()\n"
                                      "        db.session().commit()\n        return 0, waiting",
                                      "test_reminder_events_starts_on_reminder"),
    "only-one ignores the row being edited": ("library", "webapp/recipes/rules.py",
                                              "        if row_id is not None:\n            query = query.where(model.id != row_id)\n",
                                              "", "test_constraint_loans_one_open_per_title"),
    "only-one not enforced": ("conference", "webapp/recipes/rules.py",
                              "        if session().execute(query.limit(1)).first() is None:",
                              "        if True:", "test_constraint_events_one_open_per_name"),
    "list API ignores ?view=": ("garden", "webapp/api.py", "        if view is not None:\n",
                                "        if False:\n", "test_filter_plants_overdue"),
    "notification hook dropped": ("shop", "webapp/recipes/notifications.py",
                                  "        ROW_EVENTS.setdefault(notification.table, {})[notification.name] = "
                                  "_hook(notification)\n", "        _hook(notification)\n",
                                  "test_notify_orders_status_shipped"),
    "notification on every edit": ("library", "webapp/recipes/notifications.py",
                                   "            return new == self.value and (before is None or old != self.value)",
                                   "            return new == self.value", "test_notify_loans_status_closed"),
    "threshold not crossed, only under": ("shop", "webapp/recipes/notifications.py",
                                          "        return self._beyond(new) and (before is None or not self._beyond(old))",
                                          "        return self._beyond(new)", "test_notify_products_stock_below_5"),
    "notification to the wrong address": ("shop", "webapp/recipes/notifications.py",
                                          "    return getattr(target, notification.email) if target is not None else None",
                                          '    return os.environ.get("STAFF_EMAIL")', "test_notify_tickets_agent_set"),
    "chart grouped by the wrong field": ("shop", "webapp/recipes/charts.py",
                                         "name='count-by-status', field='status',",
                                         "name='count-by-status', field='priority',", "test_chart_tickets_count_by_status"),
    "pie slices by the wrong share": ("shop", "webapp/recipes/charts.py", '        share = max(row["value"], 0) / total',
                                      '        share = max(row["value"], 0) / top', "test_chart_products_count_by_category"),
    "ownership: lists show every row": ("garden", "webapp/resource.py",
                                        "query = sa.select(self.model).where(visible(self.table)).order_by(",
                                        "query = sa.select(self.model).order_by(", "test_ownership_plants_private"),
    "ownership: another's row by id": ("library", "webapp/resource.py",
                                       "sa.select(self.model).where(self.model.id == row_id, visible(self.table))",
                                       "sa.select(self.model).where(self.model.id == row_id)",
                                       "test_ownership_loans_private"),
    "ownership: owner not recorded": ("conference", "webapp/recipes/owners.py",
                                      "    setattr(row, OWNER_COLUMN, current_user()[0])", "    pass",
                                      "test_ownership_talks_edit_own"),
    "ownership: anyone changes a row": ("conference", "webapp/recipes/owners.py",
                                        "    if sees_all or (user_id is not None and getattr(row, OWNER_COLUMN) == user_id):",
                                        "    if True:", "test_ownership_talks_edit_own"),
    "ownership: admin is an ordinary user": ("garden", "webapp/recipes/owners.py",
                                             'admin = user is not None and user.username == os.environ.get(',
                                             'admin = False and user.username == os.environ.get(',
                                             "test_ownership_plants_private"),
    "ownership: others' rows may be referenced": ("garden", "webapp/recipes/owners.py",
                                                  'ROW_RULES.setdefault(resource.table, {})["owned_references"] =',
                                                  '{}["owned_references"] =', "test_ownership_plants_private"),
    "ownership: sorted view shows every row": ("garden", "webapp/recipes/views.py",
                                               "query = sa.select(model).where(resource.visible()).order_by(*order)",
                                               "query = sa.select(model).order_by(*order)",
                                               "test_ownership_plants_private"),
    "ownership: board shows every row": ("garden", "webapp/recipes/boards.py",
                                         "sa.select(model).where(resource.visible()).order_by(model.id)",
                                         "sa.select(model).order_by(model.id)", "test_ownership_plants_private"),
    "ownership: grouped chart counts every row": ("library", "webapp/recipes/charts.py",
                                                  "session().execute(sa.select(column, measured).where(resource.visible()))",
                                                  "session().execute(sa.select(column, measured))",
                                                  "test_ownership_loans_private"),
    "ownership: chart counts every row": ("library", "webapp/recipes/charts.py",
                                          "column.is_not(None), RESOURCES[chart.table].visible())",
                                          "column.is_not(None))", "test_ownership_loans_private"),
    "bound not enforced": ("garden", "webapp/recipes/rules.py", "        return value is None or value > 0",
                           "        return True or value > 0", "test_constraint_harvests_weight_positive"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutation_that_breaks_a_recipe_fails_its_generated_test(mutation, tmp_path, rendered):
    scope, path, original, replacement, test_name = MUTATIONS[mutation]
    spec, planned = rendered(scope, tmp_path)
    app = tmp_path / "app"
    target = app / path
    text = target.read_text(encoding="utf-8")
    assert text.count(original) == 1, f"{mutation}: the rendered code changed; update the mutation"
    target.write_text(text.replace(original, replacement), encoding="utf-8")
    # Only the mutated recipe's own test runs: it must go red (the others are proven unmutated above).
    decided = verdicts(spec, planned, app, only="tests/test_recipes.py", select=test_name)
    broken = next(r for r in recipes.find(spec) if f"test_{r.slug}" == test_name)
    found = decided[broken.requirement]
    assert found.verdict == req.NOT_BUILT
    assert any(test_name in test for test in found.failed_tests), found.failed_tests


def test_without_recipe_lines_the_app_has_no_recipes_module(tmp_path):
    spec = analyze("# Shelf\n\n## Entities\n- Book: title (text, required)\n\n## Features\n- List books\n")
    planned = build(spec, tmp_path)
    assert not any(t["kind"] == recipes.TASK_KIND for t in planned["plan"]["tasks"])
    assert not (tmp_path / "app" / "webapp" / "recipes").exists()
    assert "recipes" not in (tmp_path / "app" / "webapp" / "__init__.py").read_text(encoding="utf-8")


ONE_RECIPE_SCOPE = """# Jobs

## Entities
- Client: name (text, required), email (email)
- Job: title (text, required), client (-> Client), due_on (date), starts_on (date), stage (choice: new|doing|done), hours (integer)

## {section}
- {line}
"""


@pytest.mark.parametrize("section, line", [
    ("Features", "Overdue jobs"), ("Features", "List jobs by stage"), ("Features", "Jobs sorted by hours"),
    ("Features", "Clients sorted by number of jobs"), ("Features", "Board of jobs"),
    ("Features", "Jobs per week chart"), ("Features", "Pie chart of jobs per client"),
    ("Features", "Email the client when a job becomes done"), ("Features", "Alert staff when hours rise above 40"),
    ("Features", "Email the client when the hours of a job change"),
    ("Constraints", "Only managers can change jobs"),
    ("Constraints", "Due date must be after the start date"), ("Constraints", "Hours are never negative"),
    ("Features", "Each client sees only their own jobs"), ("Constraints", "Users can edit only jobs they created")])
def test_each_recipe_alone_renders_ruff_clean_code(section, line, tmp_path):
    spec = analyze(ONE_RECIPE_SCOPE.format(section=section, line=line))
    assert len(recipes.find(spec)) == 1, recipes.find(spec)
    build(spec, tmp_path)
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=tmp_path / "app",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_generated_recipe_code_is_ruff_clean(built):
    _, _, app = built
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=app, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout



def test_the_reviewer_sees_the_recipe_endpoints():
    from scopeflow.handlers.builder import app_endpoints

    listed = app_endpoints(spec_of("conference"), login=True)
    assert "GET /events/views/upcoming" in listed
    assert "POST /api/events/board/status/<id>/move" in listed
    assert "GET /api/talks/views/by-sum-score" in listed


OWNERSHIP_SCOPE = """# Market

## Entities
- Member: name (text, required)
- Listing: title (text, required), price (decimal)
- Booking: guest (text, required), day (date)
- Ticket: subject (text, required), agent (-> Member)

## Constraints
{roles}
"""


@pytest.mark.parametrize("line, table, mode, matched", [
    ("Members can only see their own bookings", "bookings", "private", ["see", "their own bookings"]),
    ("sellers only see thier own listings", "listings", "private", ["see", "thier own listings"]),
    ("A guest sees only his or her own bookings", "bookings", "private", ["sees", "his or her own bookings"]),
    ("Customers can edit only their own bookings", "bookings", "edit-own", ["edit", "their own bookings"]),
    ("Users may change or delete listings they created", "listings", "edit-own", ["change", "listings they created"]),
    ("Users can only view tickets that they created", "tickets", "private", ["view", "tickets that they created"]),
    ("Guests can see all bookings but edit only their own", "bookings", "edit-own", ["edit", "their own"]),
    ("Members manage their own listings", "listings", "private", ["manage", "their own listings"]),
])
def test_ownership_lines_name_the_owned_entity_and_whether_others_may_read(line, table, mode, matched):
    spec = _with_feature(analyze(OWNERSHIP_SCOPE.format(roles="")), line)
    (found,) = [r for r in recipes.find(spec) if r.kind == "ownership"]
    assert (found.table, found.params["mode"], found.matched) == (table, mode, matched)


@pytest.mark.parametrize("line, roles, reason", [
    ("Each agent sees only tickets assigned to them", "", "rows 'assigned to' a user need each sign-in account"),
    ("Agents log in to see their tickets", "", "does not say whose rows"),
    ("Members see only their own widgets", "", "'widgets' is no entity of the scope"),
    ("Managers see all listings; members see only their own listings", "",
     "needs a role 'manager'; the scope names no such role"),
    ("Members see only their own listings", "- Only managers can change anything",
     "only manager (who see every row) may create rows"),
])
def test_ownership_the_app_cannot_build_stays_not_built_with_its_reason(line, roles, reason):
    spec = _with_feature(analyze(OWNERSHIP_SCOPE.format(roles=roles)), line)
    (miss,) = [m for m in recipes.misses(spec) if m.kind == "ownership"]
    assert reason in miss.reason
    plan = make_plan(spec)
    task = plan.task(f"feature-{len(spec.features)}")
    assert not task.buildable and reason in task.reason


def test_ownership_exempts_admin_roles_and_gives_owners_the_writer_role():
    spec = _with_feature(analyze(OWNERSHIP_SCOPE.format(roles="- Only sellers can change listings\n"
                                                              "- Only managers can change bookings")),
                         "Managers see all listings, sellers see only their own listings")
    (found,) = [r for r in recipes.find(spec) if r.kind == "ownership"]
    assert found.params["privileged"] == ["manager"] and found.params["writer"] == "seller"
    assert "Managers see all" in found.matched


def test_ownership_brings_login_and_records_its_words_on_the_requirement():
    spec = spec_of("garden")
    assert not spec.wants_login and any(t.kind == "auth" for t in make_plan(spec).tasks)
    (requirement,) = [r for r in spec.requirements if r.recipe.startswith("ownership:")]
    assert (requirement.text, requirement.matched) == ("Each gardener sees only thier own plants",
                                                       ["sees", "thier own plants"])
    spec = analyze("# Shop\n\n## Entities\n- Order: item (text, required)\n\n## Constraints\n"
                   "- Sellers log in to see their own orders\n")
    (requirement,) = [r for r in spec.requirements if r.kind == "constraint"]
    assert (requirement.recipe, requirement.status, requirement.assumption) == ("ownership:private", "understood", "")


def test_a_roles_line_that_mentions_login_is_built_by_the_roles_recipe_not_assumed_plain_login():
    spec = analyze((SCOPES / "library.md").read_text(encoding="utf-8").replace(
        "- Only librarians can change anything, students can only read",
        "- Only librarians can log in to change anything, students can only read"))
    (found,) = [r for r in spec.requirements if r.recipe.startswith("roles:")]
    assert (found.status, found.assumption) == ("understood", "")


def test_the_app_readme_lists_the_recipes_and_its_commands_work_as_printed(tmp_path, rendered):
    rendered("library", tmp_path)
    app = tmp_path / "app"
    readme = (app / "README.md").read_text(encoding="utf-8")
    assert "- List overdue loans: `GET /loans/views/overdue`" in readme
    assert ("- Members see only their own loans\n  (loans rows belong to the user who created them and only they "
            "see them; the admin account may see and change every row)") in readme
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SECRET_KEY": "k",
           "HOME": str(tmp_path)}

    def flask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flask", "--app", "webapp", *args], cwd=app, env=env,
                              capture_output=True, text=True, timeout=60)

    assert "`flask --app webapp send-reminders`" in readme
    sent = flask("send-reminders")
    assert sent.returncode == 0 and "queued 0 new reminder(s); sent 0" in sent.stdout, sent.stderr
    assert "`flask --app webapp set-role USERNAME ROLE`" in readme
    created = flask("create-user", "ann", "--password", "long enough pw")
    assert created.returncode == 0, created.stderr
    assert flask("set-role", "ann", "librarian").stdout.strip() == "ann is now librarian"
    refused = flask("set-role", "ann", "pirate")
    assert refused.returncode != 0 and "unknown role 'pirate'" in refused.stderr


PRIVILEGED_SCOPE = """# Market

## Entities
- Listing: title (text, required), price (decimal)

## Constraints
- Only sellers can change listings, managers can only read
- Managers see all listings; sellers see only their own listings
"""


@pytest.mark.parametrize("mutated", [False, True])
def test_an_all_seeing_role_sees_every_owned_row_in_the_built_app(mutated, tmp_path):
    spec = analyze(PRIVILEGED_SCOPE)
    (found,) = [r for r in recipes.find(spec) if r.kind == "ownership"]
    assert (found.params["privileged"], found.params["writer"]) == (["manager"], "seller")
    planned = build(spec, tmp_path)
    owners = tmp_path / "app" / "webapp" / "recipes" / "owners.py"
    if mutated:      # the role no longer exempts: the generated test must notice
        text = owners.read_text(encoding="utf-8")
        assert text.count("role_of(user.id) in PRIVILEGED_ROLES") == 1
        owners.write_text(text.replace("role_of(user.id) in PRIVILEGED_ROLES", "False"), encoding="utf-8")
    decided = verdicts(spec, planned, tmp_path / "app", only="tests/test_recipes.py")
    verdict = decided[found.requirement]
    assert verdict.verdict == (req.NOT_BUILT if mutated else req.DELIVERED), verdict.reason
    assert any(f"test_{found.slug}" in test for test in (verdict.failed_tests if mutated else verdict.tests))


def test_a_line_with_one_built_and_one_unbuildable_ask_is_never_delivered():
    """Its filter is built and proven, but it also asks for SMS reminders: the verdict says so."""
    spec = analyze("# Lib\n## Entities\n- Loan: due_on (date), member_email (email)\n## Features\n"
                   "- List overdue loans and send SMS reminders for them\n- List overdue loans\n")
    recipes.annotate(spec)
    both, alone = [r for r in spec.requirements if r.kind == "feature"]
    assert both.recipe == "filter:overdue" and "SMS sending is not built" in both.unbuilt_part
    tasks = [{"id": "recipes", "requirements": [both.id, alone.id], "files": ["app/webapp/recipes/views.py"]}]
    results = {both.id: {"passed": ["test_filter_overdue"]}, alone.id: {"passed": ["test_filter_overdue_2"]}}
    req.decide(spec.requirements, tasks, results)
    assert (both.verdict, alone.verdict) == (req.NOT_BUILT, req.DELIVERED)
    assert both.reason.startswith("only partly built: recipe reminder cannot be built: SMS sending is not built")
    assert both.tests == ["test_filter_overdue"]       # the built part keeps its proof


def test_how_many_per_period_is_a_chart_without_the_word():
    spec = analyze("# Gym\n## Entities\n- Visit: visited_on (date)\n## Features\n"
                   "- Staff see who visited today and how many visits per month\n")
    found = {(r.kind, r.name) for r in recipes.find(spec)}
    assert found == {("filter", "due-today"), ("chart", "count-per-month")}
    assert recipes.find(analyze("# Gym\n## Entities\n- Visit: visited_on (date)\n## Features\n"
                                "- How many visits do we have\n")) == []


def _clinic(extra_entities: str = "", replace: tuple[str, str] = ("", "")) -> Spec:
    """tests/recipe_scopes/clinic.md (three dated entities, one reminder line naming none), changed."""
    text = (SCOPES / "clinic.md").read_text(encoding="utf-8")
    if replace[0]:
        assert replace[0] in text
        text = text.replace(*replace)
    return analyze(text.replace("## Features", extra_entities + "\n## Features"))


def test_a_reminder_naming_no_entity_goes_to_the_one_dated_thing_that_happens_and_is_assumed():
    spec = _clinic()
    (recipe,) = [r for r in recipes.find(spec) if r.kind == "reminder"]
    assert (recipe.entity, recipe.params["field"], recipe.params["via"]) == ("Appointment", "starts_on", "owner")
    recipes.annotate(spec)
    (line,) = [r for r in spec.requirements if r.text == "Email reminders the day before"]
    assert line.status == req.ASSUMED and "reminders are for Appointment" in line.assumption


def test_a_reminder_naming_no_entity_goes_to_the_only_dated_entity_someone_can_be_emailed_about():
    """Pets and walks are dated but reach no email address; invoices reach their owner's."""
    spec = _clinic(replace=("owner (-> Owner, required), born_on (date)\n- Appointment: pet (-> Pet, required), "
                            "owner (-> Owner, required), starts_on (date, required), reason (text)",
                            "born_on (date)\n- Walk: pet (-> Pet, required), walked_on (date)"))
    assert {"Pet", "Walk", "Invoice"} <= {e.name for e in spec.entities}
    (recipe,) = [r for r in recipes.find(spec) if r.kind == "reminder"]
    assert recipe.entity == "Invoice" and "the only dated entity with an address to email" in recipe.assumption


def test_a_reminder_naming_no_entity_among_several_happenings_is_a_miss_naming_them():
    spec = _clinic("- Booking: owner (-> Owner, required), booked_for (date, required)\n")
    assert not [r for r in recipes.find(spec) if r.kind == "reminder"]
    (miss,) = [m for m in recipes.misses(spec) if m.kind == "reminder"]
    assert "Appointment, Booking" in miss.reason and "say which" in miss.reason
