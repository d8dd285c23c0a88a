"""Feature recipes: what small-business scopes ask for beyond CRUD, built by the flask_app pack.

A recipe is recognised from the words of one feature or constraint line (:mod:`.recognise`),
recorded on that line's requirement (``Requirement.recipe`` and ``.matched``), planned as the
``recipes`` task (:func:`plan_task`), rendered from ``templates/flask_app/app/.../recipes`` and
proven by generated tests in ``app/tests/test_recipes.py`` that carry the requirement id. A line
with a recipe's trigger words that the spec cannot support (say "overdue" on an entity without a
date) is a :class:`Miss`: its requirement stays ``not built`` with the reason.

Recipes built: saved filters on dates (overdue, due today, this week, upcoming) and on choice or
reference fields; sorting by a field or by an aggregate (average, sum, count) of a child entity;
constraints comparing two fields of a row or bounding number fields, answered with 400; named
roles that may change data while everyone else (or a named reader role) may only read, answered
with 403; boards; charts per period or per value of a choice or reference field; due-date reminders
and notifications on events (a row created, a field becoming a value, a reference set, a number
crossing a threshold), both through an outbox; ownership: rows record the user who created them and other users
(not the admin account or an admin-like role) cannot see them (404) or, for "edit only their own",
cannot change them (403).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from scopeflow.handlers.recipes.match_owner import OWNER_COLUMN
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.recipes.recognise import CONSTRAINT_MATCHERS, FEATURE_MATCHERS
from scopeflow.handlers.requirements import ASSUMED, UNDERSTOOD
from scopeflow.handlers.spec import Spec

TASK_ID = "recipes"
TASK_KIND = "recipes"
_FILES = {
    "init": "app/webapp/recipes/__init__.py",
    "views": "app/webapp/recipes/views.py",
    "rules": "app/webapp/recipes/rules.py",
    "roles": "app/webapp/recipes/roles.py",
    "boards": "app/webapp/recipes/boards.py",
    "board_page": "app/webapp/templates/recipes/board.html",
    "charts": "app/webapp/recipes/charts.py",
    "chart_page": "app/webapp/templates/recipes/chart.html",
    "outbox": "app/webapp/recipes/outbox.py",
    "notifications": "app/webapp/recipes/notifications.py",
    "owners": "app/webapp/recipes/owners.py",
    "view_page": "app/webapp/templates/recipes/view.html",
    "tests": "app/tests/test_recipes.py",
}
RULES_FILE = _FILES["rules"]
SMTP_CREDENTIALS = ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_FROM")   # what the outbox reads
SMTP_REQUIRED = ("SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD")     # ... without fallback, when asked for by email
OUTBOX_EMAIL = "Email from the outbox"
STAFF_NOTIFICATIONS = "Notifications to staff"
__all__ = ["Miss", "Recipe", "annotate", "covered_subjects", "credentials", "find", "misses", "plan_task",
           "template_for"]


def _lines(spec: Spec) -> list[tuple[str, str, str | None, tuple[Any, ...]]]:
    """(subject, text, entity hint, matchers) of every feature and constraint line."""
    found = [(f"feature:{n}", f.text, f.entity, FEATURE_MATCHERS) for n, f in enumerate(spec.features, start=1)]
    found += [(f"constraint:{n}", text, None, CONSTRAINT_MATCHERS)
              for n, text in enumerate(spec.constraints, start=1)]
    return found


_remembered: ContextVar[dict[int, tuple[Spec, tuple[list[Recipe], list[Miss]]]] | None] = ContextVar(
    "recipes_remembered", default=None)


@contextlib.contextmanager
def remembered(spec: Spec) -> Iterator[None]:
    """Recognise ``spec``'s lines once for the duration of the block, however many helpers ask.

    Every matcher runs over every feature and constraint line, and one plan task's files ask a dozen
    times (the marks of each test, the roles, the notes): a scope of two thousand lines made each
    build step cost seconds. Only for a block that does not change ``spec`` (rendering one task).
    """
    memo = _remembered.get() or {}
    if id(spec) in memo:   # the memo holds the spec itself, so its id names no other object meanwhile
        yield
        return
    token = _remembered.set({**memo, id(spec): (spec, _recognise_now(spec))})
    try:
        yield
    finally:
        _remembered.reset(token)


def _recognise(spec: Spec) -> tuple[list[Recipe], list[Miss]]:
    memo = _remembered.get() or {}
    if id(spec) in memo:
        return copy.deepcopy(memo[id(spec)][1])   # callers may fill in a copy; the memo stays as recognised
    return _recognise_now(spec)


def _recognise_now(spec: Spec) -> tuple[list[Recipe], list[Miss]]:
    ids = {r.subject: r.id for r in spec.requirements if r.subject}
    recipes: list[Recipe] = []
    missed: list[Miss] = []
    names = {e.name for e in spec.entities}
    for subject, text, hint, matchers in _lines(spec):
        hint = hint if hint in names else None
        results = [matcher(text, spec, hint) for matcher in matchers]
        hits = [r for r in results if isinstance(r, Recipe)]
        for recipe in hits:
            recipe.requirement, recipe.subject = ids.get(subject, ""), subject
            recipe.table, recipe.text = spec.entity(recipe.entity).table, text
            if recipe.kind == "reminder":              # the email integration it sends through, if any
                recipe.params["smtp_requirement"] = ids.get(recipe.params["smtp_subject"] or "", "")
            _unique_name(recipe, recipes)
            recipes.append(recipe)
        miss = next((r for r in results if isinstance(r, Miss)), None)
        if miss is not None and not any(hit.kind == miss.kind for hit in hits):
            # With hits of other kinds the line is only partly built: the miss still says what is not.
            miss.requirement, miss.subject, miss.partial = ids.get(subject, ""), subject, bool(hits)
            missed.append(miss)
    return recipes, missed


def _unique_name(recipe: Recipe, taken: list[Recipe]) -> None:
    base, n = recipe.name, 1
    while any(r.slug == recipe.slug for r in taken):
        n += 1
        recipe.name = f"{base}-{n}"


def find(spec: Spec) -> list[Recipe]:
    """Every recipe the spec's feature and constraint lines ask for, in line order."""
    return _recognise(spec)[0]


def misses(spec: Spec) -> list[Miss]:
    """Lines with a recipe's trigger words that the spec cannot support (they stay not built, also
    when another recipe builds the rest of the line: ``Miss.partial``)."""
    return _recognise(spec)[1]


def covered_subjects(spec: Spec) -> dict[str, str]:
    """Subject (``feature:N``/``constraint:N``) → ``"recipe"`` or the reason a recipe cannot be built."""
    recipes, missed = _recognise(spec)
    found = {m.subject: m.reason for m in missed if not m.partial}
    found.update({r.subject: "recipe" for r in recipes})
    found.update({r.params["smtp_subject"]: "recipe" for r in recipes if r.params.get("smtp_subject")})
    return found


def annotate(spec: Spec) -> None:
    """Record on each requirement the recipe its line triggers and the words that triggered it."""
    recipes, missed = _recognise(spec)
    by_id = {r.id: r for r in spec.requirements}
    for recipe in recipes:
        if recipe.requirement in by_id:
            found = by_id[recipe.requirement]
            found.recipe = ", ".join(dict.fromkeys(filter(None, [*found.recipe.split(", "),
                                                                   f"{recipe.kind}:{recipe.name}"])))
            found.matched = list(dict.fromkeys(found.matched + recipe.matched))
            if found.kind == "constraint":
                found.reason = ""      # the recipe enforces it; the verdict says whether a test proves it
            if recipe.kind in ("roles", "ownership") and found.assumption.startswith("built as plain login"):
                found.status, found.assumption = UNDERSTOOD, ""    # the roles recipe builds the roles
            if recipe.assumption and found.status == UNDERSTOOD:
                found.status, found.assumption = ASSUMED, recipe.assumption
    for miss in missed:
        if miss.requirement in by_id:
            found = by_id[miss.requirement]
            found.matched = list(dict.fromkeys(found.matched + miss.matched))
            if miss.partial:
                found.unbuilt_part = f"only partly built: recipe {miss.kind} cannot be built: {miss.reason}"
            else:
                found.reason = f"recipe {miss.kind} cannot be built: {miss.reason}"


def files_for(recipes: list[Recipe]) -> list[str]:
    kinds = {r.kind for r in recipes}
    wanted = ["init", "tests"]
    if kinds & {"filter", "sort"}:
        wanted += ["views", "view_page"]
    if "constraint" in kinds:
        wanted.append("rules")
    if "roles" in kinds:
        wanted.append("roles")
    if "board" in kinds:
        wanted += ["boards", "board_page"]
    if "chart" in kinds:
        wanted += ["charts", "chart_page"]
    if kinds & {"reminder", "notify"}:
        wanted.append("outbox")
    if "notify" in kinds:
        wanted.append("notifications")
    if "ownership" in kinds:
        wanted.append("owners")
    return sorted(_FILES[key] for key in wanted)


def template_for(path: str) -> str | None:
    """The flask_app template that renders a recipes file (None: not a recipes file)."""
    return path + ".j2" if path in _FILES.values() else None


def plan_task(spec: Spec, depends_on: list[str], phase: str) -> Any:
    """The ``recipes`` plan task (None when the spec asks for no recipe)."""
    from scopeflow.handlers.plan import PlanTask

    recipes = find(spec)
    if not recipes:
        return None
    return PlanTask(id=TASK_ID, title="Feature recipes: " + ", ".join(
        dict.fromkeys(f"{r.kind} {r.name}" for r in recipes))[:100], kind=TASK_KIND,
        files=files_for(recipes), depends_on=depends_on, phase=phase,
        requirements=list(dict.fromkeys(r.requirement for r in recipes if r.requirement)))


_ENDPOINTS = {
    "filter": ["GET /{t}/views/{n}", "GET /api/{t}/views/{n}"],
    "sort": ["GET /{t}/views/{n}", "GET /api/{t}/views/{n}"],
    "board": ["GET /{t}/board/{f}", "GET /api/{t}/board/{f}", "POST /{t}/board/{f}/<id>/move",
              "POST /api/{t}/board/{f}/<id>/move"],
    "chart": ["GET /{t}/charts/{n}", "GET /api/{t}/charts/{n}"],
}


def endpoints(spec: Spec) -> list[str]:
    """The HTTP endpoints the recipes add to the generated app (what the reviewer lists)."""
    return list(dict.fromkeys(e for recipe in find(spec) for e in endpoints_of(recipe)))


def readme_lines(spec: Spec) -> list[str]:
    """Markdown bullets for the generated app's README: each recipe's line, pages and commands."""
    lines = []
    for recipe in find(spec):
        where = ", ".join(f"`{e}`" for e in endpoints_of(recipe))
        lines.append(f"- {recipe.text}" + (f": {where}" if where else ""))
        if recipe.kind == "roles":
            lines.append("  (give a user a role with `flask --app webapp set-role USERNAME ROLE`)")
        if recipe.kind == "reminder":
            if recipe.params.get("smtp"):
                lines.append("  (`flask --app webapp send-reminders` queues and emails them; it needs SMTP_HOST, "
                             "SMTP_USER and SMTP_PASSWORD (SMTP_PORT, SMTP_FROM optional) and fails without them, "
                             "keeping them queued)")
            else:
                lines.append("  (`flask --app webapp send-reminders` queues and sends them; set SMTP_HOST, and "
                             "SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM as needed, or they are printed and "
                             "kept queued)")
        if recipe.kind == "notify":
            lines.append("  (queued on the change, from pages and API alike; `flask --app webapp send-reminders` "
                         "sends it like the reminders" + (", to the STAFF_EMAIL address: set it, or nothing is "
                                                          "queued and a warning is logged)" if recipe.params["staff"]
                                                          else ")"))
        if recipe.kind == "constraint":
            lines.append("  (checked on every create and update: 400 when broken)")
        if recipe.kind == "ownership":
            mode = {"private": "only they see them", "edit-own": "only they change them"}[recipe.params["mode"]]
            exempt = " and users of role " + ", ".join(recipe.params["privileged"]) if recipe.params["privileged"] else ""
            lines.append(f"  ({recipe.table} rows belong to the user who created them and {mode}; the admin "
                         f"account{exempt} may see and change every row)")
    return lines


def smtp_integration(spec: Spec) -> str | None:
    """The email integration reminders are sent through when a reminder line asks for email, else None
    (then the outbox prints what it cannot send)."""
    return next((r.params["smtp"] for r in find(spec) if r.kind == "reminder" and r.params.get("smtp")), None)


def credentials(spec: Spec) -> dict[str, list[str]]:
    """Credentials the built recipes read from the environment, by who reads them. Declared to the
    deployer, which still passes only those the built code is found to read."""
    found = find(spec)
    declared: dict[str, list[str]] = {}
    if any(r.kind in ("reminder", "notify") for r in found):          # both send through the outbox
        via = smtp_integration(spec)
        declared.update({name: [via or OUTBOX_EMAIL] for name in SMTP_CREDENTIALS})
    if any(r.kind == "notify" and r.params.get("staff") for r in found):
        declared["STAFF_EMAIL"] = [STAFF_NOTIFICATIONS]
    return declared


def endpoints_of(recipe: Recipe) -> list[str]:
    return [pattern.format(t=recipe.table, n=recipe.name, f=recipe.params.get("field"))
            for pattern in _ENDPOINTS.get(recipe.kind, [])]


def needs_login(spec: Spec) -> bool:
    """Roles and ownership only mean something for signed-in users: either recipe brings login."""
    return any(r.kind in ("roles", "ownership") for r in find(spec))


def owned_tables(spec: Spec) -> dict[str, dict[str, Any]]:
    """Table → how its rows are owned (``mode`` private or edit-own, ``column``, ``privileged`` roles,
    ``writer`` role owners need), one entry per table: "see only their own" wins over "edit only"."""
    owned: dict[str, dict[str, Any]] = {}
    for recipe in find(spec):
        if recipe.kind == "ownership" and owned.get(recipe.table, {}).get("mode") != "private":
            owned[recipe.table] = {**recipe.params, "privileged": sorted(set(recipe.params["privileged"]) | set(
                owned.get(recipe.table, {}).get("privileged", [])))}
    return owned


def writer_role(spec: Spec) -> str | None:
    """The first role allowed to change data (the generated tests' user gets it)."""
    return next((r.params["writer"] for r in find(spec) if r.kind == "roles"), None)


def build_context(spec: Spec) -> dict[str, Any]:
    """What the recipe templates render from: the recipes grouped by kind, with entity data."""
    recipes = find(spec)
    roles = [r for r in recipes if r.kind == "roles"]
    levels: dict[str, str] = {}
    for recipe in roles:
        if recipe.params["reader"]:
            levels.setdefault(recipe.params["reader"], "read")
    for recipe in roles:
        levels[recipe.params["writer"]] = "write"
    tables = None if any(r.params["tables"] is None for r in roles) else tuple(sorted(
        {t for r in roles for t in r.params["tables"]}))
    return {
        "recipes": recipes,
        "views": [r for r in recipes if r.kind in ("filter", "sort")],
        "constraints": [r for r in recipes if r.kind == "constraint"],
        "roles": roles,
        "boards": [r for r in recipes if r.kind == "board"],
        "charts": [r for r in recipes if r.kind == "chart"],
        "reminders": [r for r in recipes if r.kind == "reminder"],
        "notifications": [r for r in recipes if r.kind == "notify"],
        "smtp_integration": smtp_integration(spec),
        "smtp_required": SMTP_REQUIRED,
        "ownerships": [r for r in recipes if r.kind == "ownership"],
        "owned": owned_tables(spec),
        "owned_modes": {table: found["mode"] for table, found in owned_tables(spec).items()},
        "private_tables": sorted(t for t, found in owned_tables(spec).items() if found["mode"] == "private"),
        "owner_column_name": OWNER_COLUMN,
        "owner_privileged": sorted({role for found in owned_tables(spec).values() for role in found["privileged"]}),
        "role_levels": levels,
        "role_tables": tables,
        "recipe_entities": {e.name: e for e in spec.entities},
    }
