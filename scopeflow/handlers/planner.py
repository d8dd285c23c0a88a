"""The planner: turns a ``Spec`` into a ``Plan`` (a DAG of build tasks that each own their files).

The plan is the contract between the planner and the builder. This module therefore also owns the
*layout* of the generated app: which workspace-relative file each task writes and which template of
the ``flask_app`` pack renders it. All paths start with ``app/`` (the generated project lives in
``<workspace>/app``; its package is ``webapp`` and its tests are in ``app/tests``).

Tasks:
  ``app-core``        app factory, config, db, validation, generic CRUD pages/API/CSV export,
                      base layout, ``/healthz``, requirements, run script, conftest
  ``auth``            session login (only when the spec wants login)
  ``entity-<table>``  one entity: model, field rules, its pages + API + export routes
  ``tests-<table>``   the generated pytest tests of that entity
  ``recipes``         the feature recipes the scope's lines ask for (handlers/recipes), with their tests
  ``feature-<n>`` / ``integration-<name>``  what no template builds: ``buildable=False`` + reason
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterable
from typing import Any

from scopeflow.handlers import recipes
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import DESIGN_FLAW, EXTERNAL_BLOCKER, TaskFailure
from scopeflow.handlers.plan import PHASES, Plan, PlanTask
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.handlers.spec import Entity, Spec
from scopeflow.spans import semconv

TEMPLATE_PACK = "flask_app"

# workspace path -> template (relative to templates/flask_app/) for the fixed tasks
APP_CORE_FILES: dict[str, str] = {
    path: path + ".j2"
    for path in (
        "app/README.md",
        "app/requirements.txt",
        "app/ruff.toml",
        "app/pytest.ini",
        "app/run.py",
        "app/webapp/__init__.py",
        "app/webapp/config.py",
        "app/webapp/db.py",
        "app/webapp/validation.py",
        "app/webapp/resource.py",
        "app/webapp/api.py",
        "app/webapp/pages.py",
        "app/webapp/export.py",
        "app/webapp/core.py",
        "app/webapp/entities/__init__.py",
        "app/webapp/templates/base.html",
        "app/webapp/templates/index.html",
        "app/webapp/templates/entity/list.html",
        "app/webapp/templates/entity/form.html",
        "app/webapp/templates/entity/missing.html",
        "app/tests/__init__.py",
        "app/tests/conftest.py",
        "app/tests/helpers.py",
        "app/tests/test_core.py",
    )
}
AUTH_FILES: dict[str, str] = {
    path: path + ".j2"
    for path in ("app/webapp/auth.py", "app/webapp/templates/auth/login.html", "app/tests/test_auth.py")
}
ENTITY_FILE = ("app/webapp/entities/{table}.py", "app/webapp/entities/_entity.py.j2")
ENTITY_TESTS_FILE = ("app/tests/test_{table}.py", "app/tests/_test_entity.py.j2")

# Feature kinds the template pack builds; anything else becomes an unbuildable task.
TEMPLATE_FEATURE_KINDS = ("crud", "search", "export", "login", "api", "health")
# URL segments and tables the pack itself uses; an entity table may not take them.
RESERVED_TABLES = frozenset({"api", "app_auth", "app_core", "auth", "auth_users", "healthz", "login", "logout",
                             "static"})
# Class names the generated entity modules already import or define.
RESERVED_ENTITIES = frozenset({"AuthUser", "Base", "FieldRule", "Resource"})
# Field names the generated model cannot use as attributes (primary key, SQLAlchemy internals,
# names the model module imports).
RESERVED_FIELDS = frozenset({"id", "mapped_column", "metadata", "registry", "sa", "to_dict"})

# A constraint that asks for login is realised by the auth task (same words as the analyst's rule).
LOGIN_WORDS = re.compile(r"\b(log ?in|logins?|sign ?in|logged[- ]in|auth\w*|passwords?|accounts?)\b", re.IGNORECASE)
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def make_plan(spec: Spec, feedback: str | None = None) -> Plan:
    """Plan the build of ``spec``; ``feedback`` (a reviewer's words) is kept on the plan.

    Phases: ``simple``/``medium``/``complex`` scopes get one phase, ``mvp``. ``monster`` scopes get
    ``mvp``/``enhanced``/``polish``: app-core and auth are ``mvp``; entities in dependency order,
    the first half (rounded up) ``mvp`` and the rest ``enhanced``, each tests task in its entity's
    phase; unbuildable features and integrations ``polish``. Because referenced entities come first
    in dependency order, no task ever depends on a task of a later phase.
    """
    check_spec(spec)
    order = entity_order(spec)
    monster = spec.complexity == "monster"
    plan = Plan(phases=list(PHASES) if monster else ["mvp"], feedback=feedback or None)
    plan.tasks.append(_app_core_task(spec))
    login = wants_login(spec)
    if login:
        plan.tasks.append(PlanTask(id="auth", title="Session login", kind="auth",
                                   files=sorted(AUTH_FILES), depends_on=["app-core"]))
    mvp_count = math.ceil(len(order) / 2) if monster else len(order)
    for position, entity in enumerate(order):
        phase = "mvp" if position < mvp_count else "enhanced"
        plan.tasks.extend(_entity_tasks(spec, entity, phase, login))
    # -- feature recipes (handlers/recipes): one task after every entity
    recipe_task = recipes.plan_task(spec, [t.id for t in plan.tasks if t.kind in ("entity", "auth")],
                                    "enhanced" if monster else "mvp")
    if recipe_task is not None:
        plan.tasks.append(recipe_task)
    # -- end of feature recipes
    plan.tasks.extend(_unbuildable_tasks(spec, "polish" if monster else "mvp"))
    plan.notes.extend(_cycle_notes(spec))
    trace_requirements(spec, plan)
    validate_plan(plan)
    return plan


def trace_requirements(spec: Spec, plan: Plan) -> None:
    """Name, on each task, the requirements it realises (``PlanTask.requirements``).

    Entities, fields, modifiers and relations go to their entity's model and tests tasks; the
    title and summary to the app core; a buildable feature to the app core plus the entity tasks
    it is about (every entity when it names none), a login feature or constraint to ``auth``; an
    unbuildable feature or an integration to its own unbuildable task. Other constraints and
    lines not understood have no task: they end ``not built`` / ``not understood``.
    """
    tasks = {task.id: task for task in plan.tasks}
    by_recipe = recipes.covered_subjects(spec)
    for requirement in spec.requirements:
        recipe = by_recipe.get(requirement.subject)
        found = (_recipe_tasks(requirement.subject, recipe, tasks) if recipe is not None
                 else _tasks_for(spec, requirement.subject, tasks))
        for task_id in found:
            if requirement.id not in tasks[task_id].requirements:
                tasks[task_id].requirements.append(requirement.id)


def _entity_task_ids(spec: Spec, name: str | None) -> list[str]:
    entities = [e for e in spec.entities if name is None or e.name == name]
    return [f"{kind}-{e.table}" for e in entities for kind in ("entity", "tests")]


def _recipe_tasks(subject: str, recipe: str, tasks: dict[str, PlanTask]) -> list[str]:
    """A recipe line is realised by the recipes task; one whose recipe cannot be built by its
    unbuildable task (``feature-N``; a constraint has none and ends ``not built``)."""
    kind, _, rest = subject.partition(":")
    found = [recipes.TASK_ID] if recipe == "recipe" else [f"{kind}-{rest}"]
    return [task_id for task_id in found if task_id in tasks]


def _tasks_for(spec: Spec, subject: str, tasks: dict[str, PlanTask]) -> list[str]:
    kind, _, rest = subject.partition(":")
    if kind in ("title", "summary"):
        found = ["app-core"]
    elif kind in ("entity", "field", "modifier"):
        found = _entity_task_ids(spec, rest.split(".")[0]) if any(
            e.name == rest.split(".")[0] for e in spec.entities) else []
    elif kind == "feature" and rest.isdigit() and 0 < int(rest) <= len(spec.features):
        feature = spec.features[int(rest) - 1]
        if not feature.buildable or feature.kind not in TEMPLATE_FEATURE_KINDS:
            found = [f"feature-{rest}"]
        elif feature.kind == "login":
            found = ["auth"]
        else:
            found = ["app-core", *_entity_task_ids(spec, feature.entity)]
    elif kind == "integration":
        found = [f"integration-{rest}"]
    elif kind == "constraint" and rest.isdigit() and 0 < int(rest) <= len(spec.constraints):
        found = ["auth"] if LOGIN_WORDS.search(spec.constraints[int(rest) - 1]) else []
    else:
        found = []
    return [task_id for task_id in found if task_id in tasks]


def unplanned(spec: Spec, plan: Plan) -> list[str]:
    """Ids of requirements a plan task should realise (or rule out) but none names."""
    named = {rid for task in plan.tasks for rid in task.requirements}
    return [r.id for r in spec.requirements
            if r.id not in named and r.subject and r.status != "not understood"
            and r.kind not in ("constraint", "line")]


def wants_login(spec: Spec) -> bool:
    """Login is built when the spec says so or when a feature asks for it."""
    return spec.wants_login or any(f.kind == "login" for f in spec.features) or recipes.needs_login(spec)


def check_spec(spec: Spec) -> None:
    """Refuse a spec the templates cannot turn into safe code, with a one-line reason."""
    if not spec.entities:
        raise TaskFailure(
            EXTERNAL_BLOCKER,
            "nothing buildable: the scope names no entities (no data to store, list or edit)",
            {"questions": [q.text for q in spec.questions]
             or ["Which things (entities) should the app store, and which fields does each have?"]},
        )
    names = {e.name for e in spec.entities}
    if len(names) != len(spec.entities):
        raise TaskFailure(DESIGN_FLAW, "two entities have the same name", {})
    tables: set[str] = set()
    for entity in spec.entities:
        _check_entity_names(entity, tables)
        tables.add(entity.table)
        if not entity.fields:
            raise TaskFailure(EXTERNAL_BLOCKER, f"nothing buildable for {entity.name}: it has no fields",
                              {"questions": [f"Which fields does {entity.label!r} have?"]})
        for f in entity.fields:
            if f.type == "reference" and f.reference not in names:
                raise TaskFailure(DESIGN_FLAW, f"{entity.name}.{f.name} references unknown entity {f.reference!r}",
                                  {"entity": entity.name, "field": f.name})
            if f.type == "choice" and not f.choices:
                raise TaskFailure(DESIGN_FLAW, f"{entity.name}.{f.name} is a choice field without choices",
                                  {"entity": entity.name, "field": f.name})


def _check_entity_names(entity: Entity, seen_tables: set[str]) -> None:
    if not _PASCAL.match(entity.name) or keyword.iskeyword(entity.name) or entity.name in RESERVED_ENTITIES:
        raise TaskFailure(DESIGN_FLAW, f"entity name {entity.name!r} is not a PascalCase identifier or is "
                          f"reserved ({', '.join(sorted(RESERVED_ENTITIES))})", {})
    if not _is_snake(entity.table) or entity.table in RESERVED_TABLES or entity.table in seen_tables:
        raise TaskFailure(DESIGN_FLAW, f"table name {entity.table!r} of {entity.name} is unsafe, reserved "
                          f"({', '.join(sorted(RESERVED_TABLES))}) or used twice", {"entity": entity.name})
    field_names = [f.name for f in entity.fields]
    for name in field_names:
        if not _is_snake(name) or name in RESERVED_FIELDS:
            raise TaskFailure(DESIGN_FLAW, f"field name {entity.name}.{name} is not a safe snake_case "
                              f"identifier or is reserved ({', '.join(sorted(RESERVED_FIELDS))})", {})
    if len(set(field_names)) != len(field_names):
        raise TaskFailure(DESIGN_FLAW, f"entity {entity.name} has two fields with the same name", {})


def _is_snake(name: str) -> bool:
    return bool(_SNAKE.match(name)) and not keyword.iskeyword(name) and not keyword.issoftkeyword(name)


def reference_edges(spec: Spec) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """Which entities each entity depends on, and the references left out to keep the graph acyclic.

    Entities are visited in spec order, their reference fields in field order; ``A.f → B`` becomes
    the dependency "A after B" unless B already (transitively) depends on A or B is A. Such a
    reference *closes a cycle*: it is returned as ``(entity name, field name)`` and the builder
    makes it nullable, because otherwise no first row could ever be created.
    """
    depends: dict[str, list[str]] = {e.name: [] for e in spec.entities}
    cyclic: set[tuple[str, str]] = set()
    for entity in spec.entities:
        for f in entity.fields:
            if f.type != "reference" or f.reference is None:
                continue
            if f.reference == entity.name or _reaches(depends, f.reference, entity.name):
                cyclic.add((entity.name, f.name))
            elif f.reference not in depends[entity.name]:
                depends[entity.name].append(f.reference)
    return depends, cyclic


def _reaches(depends: dict[str, list[str]], start: str, goal: str) -> bool:
    stack, seen = [start], set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(depends[node])
    return False


def entity_order(spec: Spec) -> list[Entity]:
    """Entities with every referenced entity before the ones referencing it (spec order otherwise)."""
    depends, _ = reference_edges(spec)
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for dep in depends[name]:
            visit(dep)
        done.append(name)

    for entity in spec.entities:
        visit(entity.name)
    return [spec.entity(name) for name in done]


def _app_core_task(spec: Spec) -> PlanTask:
    return PlanTask(id="app-core", title=f"App core for {spec.title}"[:120], kind="app_core",
                    files=sorted(APP_CORE_FILES))


def _entity_tasks(spec: Spec, entity: Entity, phase: str, login: bool) -> list[PlanTask]:
    depends, _ = reference_edges(spec)
    referenced = [spec.entity(name).table for name in depends[entity.name]]
    build = PlanTask(
        id=f"entity-{entity.table}", title=f"{entity.name}: model, pages, API, search, CSV export",
        kind="entity", files=[ENTITY_FILE[0].format(table=entity.table)],
        depends_on=["app-core"] + [f"entity-{table}" for table in referenced],
        phase=phase, entity=entity.name,
    )
    tests = PlanTask(
        id=f"tests-{entity.table}", title=f"{entity.name}: generated tests", kind="tests",
        files=[ENTITY_TESTS_FILE[0].format(table=entity.table)],
        depends_on=[build.id] + (["auth"] if login else []),
        phase=phase, entity=entity.name,
    )
    return [build, tests]


def _unbuildable_tasks(spec: Spec, phase: str) -> list[PlanTask]:
    tasks = []
    by_recipe = recipes.covered_subjects(spec)
    for number, feature in enumerate(spec.features, start=1):
        recipe = by_recipe.get(f"feature:{number}")
        if recipe == "recipe" or (recipe is None and feature.buildable and feature.kind in TEMPLATE_FEATURE_KINDS):
            continue
        reason = (f"recipe cannot be built: {recipe}" if recipe
                  else feature.reason or f"no template builds {feature.kind!r} features")
        tasks.append(PlanTask(id=f"feature-{number}", title=feature.text[:120], kind="unbuildable",
                              phase=phase, entity=feature.entity, buildable=False, reason=reason))
    for integration in spec.integrations:
        if by_recipe.get(f"integration:{integration.name}") == "recipe":
            continue                   # reminders by email send through it: the recipes task builds it
        needs = ", ".join(integration.credentials) or "no named credentials"
        tasks.append(PlanTask(
            id=f"integration-{integration.name}", title=f"Integration: {integration.label}"[:120],
            kind="unbuildable", phase=phase, buildable=False,
            reason=f"external service integration: no offline template builds it ({needs} needed once it is built)",
        ))
    return tasks


def _cycle_notes(spec: Spec) -> list[str]:
    _, cyclic = reference_edges(spec)
    return [f"{entity}.{field} closes a reference cycle: built as an optional reference, "
            f"no build dependency" for entity, field in sorted(cyclic)]


def validate_plan(plan: Plan) -> None:
    """Raise ValueError unless ids are unique, each file has one owner, and dependencies are a DAG
    whose edges never point to a later phase."""
    ids = [t.id for t in plan.tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"plan has duplicate task ids: {', '.join(duplicates)}")
    owners: dict[str, str] = {}
    for task in plan.tasks:
        _check_task(plan, task, set(ids))
        for path in task.files:
            if path in owners:
                raise ValueError(f"file {path} is owned by both {owners[path]} and {task.id}")
            owners[path] = task.id
    topological_order(plan)


def _check_task(plan: Plan, task: PlanTask, ids: set[str]) -> None:
    if task.phase not in plan.phases:
        raise ValueError(f"task {task.id} is in phase {task.phase!r}, not one of {plan.phases}")
    if not task.buildable and (task.files or not task.reason):
        raise ValueError(f"unbuildable task {task.id} must own no files and give a reason")
    for dep in task.depends_on:
        if dep not in ids:
            raise ValueError(f"task {task.id} depends on unknown task {dep!r}")
        if plan.phases.index(plan.task(dep).phase) > plan.phases.index(task.phase):
            raise ValueError(f"task {task.id} ({task.phase}) depends on {dep} of a later phase")


def topological_order(plan: Plan, tasks: Iterable[PlanTask] | None = None) -> list[str]:
    """Task ids with every dependency first (plan order breaks ties); ValueError on a cycle."""
    chosen = list(plan.tasks if tasks is None else tasks)
    pending = {t.id: [d for d in t.depends_on if any(c.id == d for c in chosen)] for t in chosen}
    order: list[str] = []
    while pending:
        ready = [t.id for t in chosen if t.id in pending and all(d in order for d in pending[t.id])]
        if not ready:
            raise ValueError(f"plan dependencies form a cycle among: {', '.join(sorted(pending))}")
        for task_id in ready:
            order.append(task_id)
            del pending[task_id]
    return order


def _summary(plan: Plan, spec: Spec) -> str:
    buildable = [t for t in plan.tasks if t.buildable]
    login = "on" if any(t.kind == "auth" for t in plan.tasks) else "off"
    return (f"{len(plan.tasks)} tasks ({len(buildable)} buildable, {len(plan.tasks) - len(buildable)} "
            f"unbuildable) for {len(spec.entities)} entities in {len(plan.phases)} phase(s); login {login}")


@operator("plan_build", retry=NO_RETRY)
def plan_build(ctx: TaskContext, spec: dict[str, Any], feedback: str | None = None) -> dict[str, Any]:
    """Plan the build of a spec: a DAG of template tasks plus the features no template builds."""
    try:
        parsed = Spec.from_data(spec)
    except (TypeError, ValueError) as exc:
        raise TaskFailure(DESIGN_FLAW, f"plan_build: spec is malformed: {exc}", {}) from None
    with ctx.span("scopeflow.plan", plan__entities=len(parsed.entities)) as span:
        plan = make_plan(parsed, feedback)
        # -- LLM planning (only with SCOPEFLOW_LLM_BASE_URL set): the LLM builds what no template does
        from scopeflow.handlers import llm_agents

        if llm_agents.settings_from_env() is not None:
            plan = llm_agents.plan_llm_features(plan, parsed)
        # -- end of LLM planning
        buildable = [t for t in plan.tasks if t.buildable]
        order = topological_order(plan, buildable)
        span.set(**{"scopeflow.plan.tasks": len(plan.tasks)})
    unbuildable = [{"id": t.id, "title": t.title, "reason": t.reason} for t in plan.tasks if not t.buildable]
    missing = unplanned(parsed, plan)
    ctx.record({
        "scopeflow.plan.tasks": len(plan.tasks),
        "scopeflow.plan.build_tasks": len(order),
        "scopeflow.plan.unbuildable": len(unbuildable),
        "scopeflow.plan.phases": len(plan.phases),
        semconv.REQUIREMENTS_UNPLANNED: len(missing),
    })
    return {"plan": plan.to_data(), "build_order": order, "unbuildable": unbuildable,
            "summary": _summary(plan, parsed)}
