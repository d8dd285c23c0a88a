"""The builder: renders the files one plan task owns from the ``flask_app`` template pack.

Rendering is deterministic (same spec, plan and task → byte-identical files), so building a task
twice is harmless. Files land at their plan paths under the workspace (``app/...``); a path that
would leave the workspace is refused. The generator's Jinja environment uses ``<% %>``/``<< >>``
delimiters (see ``templates/flask_app/README.md``) so the generated app's own templates survive.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from scopeflow.handlers import recipes
from scopeflow.handlers import requirement_marks as tracing
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import DESIGN_FLAW, EXTERNAL_BLOCKER, TaskFailure
from scopeflow.handlers.plan import Plan, PlanTask
from scopeflow.handlers.planner import (
    APP_CORE_FILES,
    AUTH_FILES,
    ENTITY_FILE,
    ENTITY_TESTS_FILE,
    TEMPLATE_PACK,
    check_spec,
    entity_order,
    reference_edges,
)
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.handlers.spec import Entity, Field, Spec
from scopeflow.spans import semconv

TEMPLATES_DIR = Path(__file__).parent / "templates" / TEMPLATE_PACK
TEXT_TYPES = ("text", "long_text", "email", "url")
# Field types a wrong-typed value ("not valid") must be rejected for.
FORMAT_CHECKED_TYPES = ("integer", "decimal", "date", "datetime", "email", "url")
COLUMN_TYPES = {
    "long_text": "sa.Text", "integer": "sa.Integer", "decimal": "sa.Float", "boolean": "sa.Boolean",
    "date": "sa.Date", "datetime": "sa.DateTime", "reference": "sa.Integer",
}


def make_environment() -> Environment:
    """The generator's Jinja environment: ``<% %>``/``<< >>`` delimiters, no autoescape (it writes
    Python), strict about undefined names, and a ``pyrepr`` filter for Python literals."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        block_start_string="<%", block_end_string="%>",
        variable_start_string="<<", variable_end_string=">>",
        comment_start_string="<#", comment_end_string="#>",
        autoescape=False,  # nosec B701 - renders Python source; generated HTML autoescapes at runtime
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["pyrepr"] = repr
    return env


def render_task(spec: Spec, plan: Plan, task: PlanTask) -> dict[str, str]:
    """Workspace path → text of every file ``task`` owns (nothing else)."""
    if not task.buildable:
        raise TaskFailure(EXTERNAL_BLOCKER, f"task {task.id} is not buildable: {task.reason}",
                          {"task_id": task.id, "reason": task.reason})
    env = make_environment()
    with recipes.remembered(spec):
        context = _context_for(spec, plan, task)
        rendered = {}
        table = context["entity"].table if "entity" in context else ""
        for path in task.files:
            template = _template_for(task, path, table)
            try:
                rendered[path] = env.get_template(template).render(**context)
            except TemplateError as exc:
                raise TaskFailure(DESIGN_FLAW, f"template {template} failed for {path}: {exc}",
                                  {"task_id": task.id, "path": path}) from None
    return rendered


def _template_for(task: PlanTask, path: str, table: str) -> str:
    fixed = {"app_core": APP_CORE_FILES, "auth": AUTH_FILES}.get(task.kind, {})
    if path in fixed:
        return fixed[path]
    if task.kind == recipes.TASK_KIND and recipes.template_for(path):
        return recipes.template_for(path) or ""
    per_entity = {"entity": ENTITY_FILE, "tests": ENTITY_TESTS_FILE}.get(task.kind)
    if per_entity and table and path == per_entity[0].format(table=table):
        return per_entity[1]
    raise TaskFailure(DESIGN_FLAW, f"no template renders {path} for task {task.id} ({task.kind})",
                      {"task_id": task.id, "path": path})


def _context_for(spec: Spec, plan: Plan, task: PlanTask) -> dict[str, Any]:
    login = any(t.kind == "auth" for t in plan.tasks)
    entities = entity_order(spec)
    context: dict[str, Any] = {
        "spec": spec, "login": login, "entities": entities,
        "tables": tuple(e.table for e in entities),
        "has_recipes": any(t.kind == recipes.TASK_KIND for t in plan.tasks),
        "has_recipe_rules": any(t.kind == recipes.TASK_KIND and recipes.RULES_FILE in t.files for t in plan.tasks),
        "writer_role": recipes.writer_role(spec) if login else None,
        "recipe_notes": recipes.readme_lines(spec) if task.kind == "app_core" else [],
    }
    marks: dict[str, list[str]] = {}
    if task.kind in ("entity", "tests"):
        try:
            entity = spec.entity(task.entity or "")
        except KeyError:
            raise TaskFailure(DESIGN_FLAW, f"task {task.id} names entity {task.entity!r}, not in the spec",
                              {"task_id": task.id}) from None
        context["entity"] = entity
        context.update(_model_context(spec, entity) if task.kind == "entity" else _tests_context(spec, entity))
        if task.kind == "tests":
            marks = tracing.entity_test_marks(spec, entity, context, login)
    elif task.kind in ("app_core", "auth"):
        marks = tracing.core_test_marks(spec)
    elif task.kind == recipes.TASK_KIND:
        context.update(recipes.build_context(spec))
    context["mark"] = lambda test: tracing.marker(marks.get(test, []))
    return context


def _optional_references(spec: Spec) -> set[tuple[str, str]]:
    """References that close a cycle: always optional (see ``planner.reference_edges``)."""
    return reference_edges(spec)[1]


def _is_required(spec: Spec, entity: Entity, f: Field) -> bool:
    return f.required and (entity.name, f.name) not in _optional_references(spec)


def _model_context(spec: Spec, entity: Entity) -> dict[str, Any]:
    columns = [{"name": f.name, "args": _column_args(spec, entity, f)} for f in entity.fields]
    return {"columns": columns, "checks": _checks(entity), "rules": [_rule_args(spec, entity, f)
                                                                     for f in entity.fields],
            "owner_column": recipes.owned_tables(spec).get(entity.table, {}).get("column")}


def _column_args(spec: Spec, entity: Entity, f: Field) -> str:
    if f.type in COLUMN_TYPES:
        args = [COLUMN_TYPES[f.type]]
    elif f.type == "choice":
        args = [f"sa.String({max(len(c) for c in f.choices)})"]
    else:
        length = int(f.maximum) if f.maximum is not None and f.type in TEXT_TYPES else 255
        args = [f"sa.String({max(length, 1)})"]
    if f.type == "reference":
        args.append(f"sa.ForeignKey({spec.entity(f.reference or '').table + '.id'!r})")
    required = _is_required(spec, entity, f) or f.type == "boolean"
    args.append(f"nullable={not required}")
    if f.unique:
        args.append("unique=True")
    return ", ".join(args)


def _checks(entity: Entity) -> list[dict[str, str]]:
    """Database CHECK constraints: choices, and numeric bounds (text lengths are checked in Python)."""
    checks = []
    for f in entity.fields:
        column = f"sa.column({f.name!r})"
        if f.type == "choice":
            checks.append({"name": f"ck_{entity.table}_{f.name}_choice",
                           "expr": f"{column}.in_({tuple(f.choices)!r})"})
        if f.type in ("integer", "decimal") and f.minimum is not None:
            checks.append({"name": f"ck_{entity.table}_{f.name}_min", "expr": f"{column} >= {f.minimum!r}"})
        if f.type in ("integer", "decimal") and f.maximum is not None:
            checks.append({"name": f"ck_{entity.table}_{f.name}_max", "expr": f"{column} <= {f.maximum!r}"})
    return checks


def _rule_args(spec: Spec, entity: Entity, f: Field) -> str:
    args: dict[str, Any] = {"name": f.name, "label": f.label, "type": f.type}
    if _is_required(spec, entity, f):
        args["required"] = True
    if f.unique:
        args["unique"] = True
    for key in ("default", "minimum", "maximum"):
        if getattr(f, key) is not None:
            args[key] = getattr(f, key)
    if f.choices:
        args["choices"] = tuple(f.choices)
    if f.type == "reference":
        target = spec.entity(f.reference or "")
        args["reference"] = target.table
        args["reference_display"] = _display_field(target)
    return ", ".join(f"{key}={value!r}" for key, value in args.items())


def _display_field(entity: Entity) -> str | None:
    """The field that names a row in select boxes: the first short text field, if any."""
    return next((f.name for f in entity.fields if f.type in ("text", "email", "url", "choice")), None)


def _tests_context(spec: Spec, entity: Entity) -> dict[str, Any]:
    optional = _optional_references(spec)
    searchable = [f for f in entity.fields if f.type in TEXT_TYPES + ("choice",)]
    exclusive = [f for f in searchable if f.type != "choice"]
    search = (exclusive or searchable or [None])[0]
    return {
        "labels": [entity.label] + [f.label for f in entity.fields],
        "edit_field": next((f.name for f in entity.fields if f.type != "reference"), None),
        "search_field": search.name if search else None,
        "search_exclusive": bool(exclusive),
        "required": [f.name for f in entity.fields
                     if _is_required(spec, entity, f) and f.default is None and f.type != "boolean"],
        "unique": [f.name for f in entity.fields if f.unique and f.type != "boolean"],
        "invalid": _invalid_cases(entity),
        "references": [{"field": f.name, "table": spec.entity(f.reference or "").table}
                       for f in entity.fields
                       if f.type == "reference" and (entity.name, f.name) not in optional],
        "defaults": [f.name for f in entity.fields
                     if f.default is not None and f.type != "reference" and not f.unique],
    }


def _invalid_cases(entity: Entity) -> list[dict[str, Any]]:
    """Values each field must reject: outside its choices, its bounds, its format, a missing id."""
    cases = []
    for f in entity.fields:
        if f.type == "choice":
            cases.append({"test": f"{f.name}_outside_choices", "field": f.name,
                          "value": "not a choice" + "!" * max(len(c) for c in f.choices)})
        if f.type in FORMAT_CHECKED_TYPES:
            cases.append({"test": f"{f.name}_in_wrong_format", "field": f.name, "value": "not valid"})
        if f.type == "reference":
            cases.append({"test": f"{f.name}_pointing_nowhere", "field": f.name, "value": 999_999})
        cases.extend(_bound_cases(f))
    return cases


def _bound_cases(f: Field) -> list[dict[str, Any]]:
    cases = []
    if f.type in ("integer", "decimal"):
        if f.minimum is not None:
            cases.append({"test": f"{f.name}_below_minimum", "field": f.name, "value": _number(f.minimum - 1)})
        if f.maximum is not None:
            cases.append({"test": f"{f.name}_above_maximum", "field": f.name, "value": _number(f.maximum + 1)})
    elif f.type in TEXT_TYPES:
        if f.minimum is not None and int(f.minimum) >= 2:
            cases.append({"test": f"{f.name}_shorter_than_minimum", "field": f.name,
                          "value": "x" * (int(f.minimum) - 1)})
        if f.maximum is not None:
            cases.append({"test": f"{f.name}_longer_than_maximum", "field": f.name,
                          "value": "x" * (int(f.maximum) + 1)})
    return cases


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def safe_target(workspace: Path, relative: str) -> Path:
    """``workspace / relative``, refusing (design_flaw) any path that would end up outside it."""
    root = workspace.resolve()
    target = (root / relative).resolve()
    if Path(relative).is_absolute() or not target.is_relative_to(root) or target == root:
        raise TaskFailure(DESIGN_FLAW, f"refusing to write {relative!r}: it leaves the workspace",
                          {"path": relative})
    return target


def write_file(target: Path, text: str) -> str:
    """Write ``text`` (UTF-8) atomically unless the file already holds it; its sha256."""
    data = text.encode("utf-8")
    if not target.exists() or target.read_bytes() != data:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, target)
    return hashlib.sha256(data).hexdigest()


def app_endpoints(spec: Spec, login: bool) -> list[str]:
    """The HTTP endpoints the template pack generates for ``spec`` (what the reviewer lists)."""
    endpoints = ["GET /", "GET /healthz"]
    if login:
        endpoints += ["GET|POST /login", "POST /logout"]
    for entity in spec.entities:
        t = entity.table
        endpoints += [f"GET /{t}/", f"GET|POST /{t}/new", f"GET|POST /{t}/<id>/edit",
                      f"POST /{t}/<id>/delete", f"GET /{t}/export.csv", f"GET|POST /api/{t}",
                      f"GET|PUT|DELETE /api/{t}/<id>"]
    return endpoints + recipes.endpoints(spec)


def _parse(spec: dict[str, Any], plan: dict[str, Any]) -> tuple[Spec, Plan]:
    try:
        return Spec.from_data(spec), Plan.from_data(plan)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TaskFailure(DESIGN_FLAW, f"build_task: spec or plan is malformed: {exc}", {}) from None


@operator("build_task", expensive=False, retry=NO_RETRY)
def build_task(ctx: TaskContext, spec: dict[str, Any], plan: dict[str, Any], task_id: str,
               feedback: str | None = None) -> dict[str, Any]:
    """Render the files of one plan task into the workspace (``<workspace>/app/...``).

    The template author is deterministic and cannot act on ``feedback``; when feedback is given it
    says so on the span (``scopeflow.build.feedback_ignored = true``) instead of pretending.
    """
    parsed_spec, parsed_plan = _parse(spec, plan)
    check_spec(parsed_spec)
    try:
        task = parsed_plan.task(task_id)
    except KeyError:
        raise TaskFailure(DESIGN_FLAW, f"build_task: the plan has no task {task_id!r}", {}) from None
    # -- LLM author (plan tasks with author="llm"): the model writes them; templates never do
    if task.author == "llm":
        from scopeflow.handlers import llm_agents

        return llm_agents.build_llm_task(ctx, llm_agents.settings_from_env(), parsed_spec, parsed_plan, task,
                                         feedback)
    # -- end of the LLM author
    targets = {path: safe_target(ctx.workspace, path) for path in task.files}
    with ctx.span("scopeflow.build.render", **{"scopeflow.build.task": task.id}) as span:
        rendered = render_task(parsed_spec, parsed_plan, task)
        files = [{"path": path, "sha256": write_file(targets[path], text)} for path, text in rendered.items()]
        span.set(**{"scopeflow.build.files": len(files)})
    ctx.record({"scopeflow.build.files": len(files), "scopeflow.build.task": task.id,
                semconv.BUILD_REQUIREMENTS: len(task.requirements)})
    if feedback:
        ctx.record({"scopeflow.build.feedback_ignored": True})
    return {"task_id": task.id, "files": files, "requirements": list(task.requirements)}
