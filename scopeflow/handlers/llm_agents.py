"""The LLM-backed parts of the agents, used only when an OpenAI-compatible endpoint is configured.

The offline agents stay the reproducible baseline: each agent module (``scope``, ``planner``,
``builder``, ``review``) calls into this module only when :func:`settings_from_env` returns
settings, i.e. when ``SCOPEFLOW_LLM_BASE_URL`` is set. What the LLM does for each agent:

- **analyst** — reads a scope the offline analyst could not structure (no entities found, or
  entities only mined from prose) into a :class:`Spec`. The model answers in JSON (entities with
  typed fields, features, integrations, constraints, questions); that answer is resolved by the
  offline analyst's own field resolver, so names are made safe the same way and every guess becomes
  a question that ``apply_answers`` understands.
- **planner** — features no template builds become buildable tasks with ``author="llm"``, each
  owning one module ``app/webapp/ext/<slug>.py`` and one test file ``app/tests/test_llm_<slug>.py``
  (:func:`plan_llm_features`). Integrations stay unbuildable: they need an outside service.
- **builder** — an ``author="llm"`` task is written by the model as JSON ``{"files": {path: text}}``
  whose keys are exactly the task's owned files (:func:`build_llm_task`). On a rebuild with
  ``feedback`` its own tests and lint are run in the sandbox first: after failed checks that they
  cover (compile, lint, tests) a task whose own run passes is kept as it is (``scopeflow.build.kept``,
  no model call); otherwise the model gets its current files and that output, and rewrites them.
- **reviewer** — the rationale a human reviewer reads comes from the model
  (:func:`review_rationale`); the confidence stays the computed formula.

**Budget from evidence.** Before an agent talks to the model, the instance's spend so far is summed
from its recorded spans (:func:`spent_budget`: ``gen_ai.usage.*`` tokens and ``scopeflow.llm.cost``
of every span with ``scopeflow.span.type = "gen_ai"``, and its ``scopeflow.llm.attempts`` as calls);
the caps come from the settings. The client checks the budget before every request, asks for no
more output tokens than the caps leave, and raises ``external_blocker`` once a cap is exceeded.

**What the report gets** (:func:`llm_written_files`): from the plan alone, a list of
``{"task_id": str, "title": str, "path": str}``, one per file of each ``author="llm"`` task.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scopeflow.config import llm_environment
from scopeflow.handlers import naming
from scopeflow.handlers.budget import Budget
from scopeflow.handlers.builder import safe_target, write_file
from scopeflow.handlers.checks import trim_output
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import CONFIGURATION, DESIGN_FLAW, RECOVERABLE, TaskFailure
from scopeflow.handlers.llm import LLM_ATTEMPTS, LLM_COST, SPAN_TYPE, LlmClient
from scopeflow.handlers.llm_settings import LlmSettings
from scopeflow.handlers.plan import Plan, PlanTask
from scopeflow.handlers.planner import validate_plan
from scopeflow.handlers.sandbox import run_untrusted

# The offline analyst's resolver is reused on purpose (private helpers of ``scope``): LLM answers
# must become exactly the names, types and answerable questions that offline analysis produces.
from scopeflow.handlers.scope import (  # noqa: I001 - grouped apart: private helpers, see above
    _Asker,
    _build_entities,
    _features,
    _integrations,
    _RawEntity,
    _RawField,
    _wants_login,
    score,
)
from scopeflow.handlers.spec import FIELD_TYPES, Entity, Feature, Spec
from scopeflow.handlers.verifier import hidden_from_checks

LLM_AUTHOR = "llm"
LLM_TASK_KIND = "llm_feature"
EXT_MODULE = "app/webapp/ext/{slug}.py"
EXT_TESTS = "app/tests/test_llm_{slug}.py"
MAX_SCOPE_CHARS = 20_000          # of the scope text put into the analyst's prompt
MAX_CONTEXT_FILE_CHARS = 6_000    # of each app file shown to the builder
MAX_FILE_CHARS = 60_000           # of each file the builder may write
SELF_CHECK_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------------
# Settings, budget and the client
# --------------------------------------------------------------------------------------------


def settings_from_env() -> LlmSettings | None:
    """The LLM settings when an endpoint is configured, else None (the agents stay offline).

    Without a base URL nothing else is read, so a stray ``SCOPEFLOW_LLM_*`` value cannot disturb
    the offline agents; with one, unreadable values are a ``configuration`` failure naming the problem.
    """
    environ = llm_environment()
    if not environ.get("SCOPEFLOW_LLM_BASE_URL", "").strip():
        return None
    try:
        settings = LlmSettings.from_env(environ)
    except ValueError as exc:
        raise TaskFailure(CONFIGURATION, f"LLM settings: {exc}", {}) from None
    return settings if settings.configured else None


def _count(value: Any) -> int:
    """A non-negative integer attribute, or 0 for anything else (absent, bool, negative, text)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def spent_budget(settings: LlmSettings, ctx: TaskContext) -> Budget:
    """The instance's budget: the settings' caps, and the spend the recorded GenAI spans show.

    Without recorded spans (a context outside the engine) the spend starts at zero.
    """
    budget = settings.new_budget()
    spans = ctx.recorded_spans() if ctx.recorded_spans is not None else None
    for span in spans or []:
        attributes = span.attributes
        if attributes.get(SPAN_TYPE) != "gen_ai":
            continue
        budget.charge(_count(attributes.get("gen_ai.usage.input_tokens")),
                      _count(attributes.get("gen_ai.usage.output_tokens")),
                      _count(attributes.get(LLM_COST)),
                      failed="error.type" in attributes)
        for _ in range(_count(attributes.get(LLM_ATTEMPTS)) - 1):   # retried attempts: failed calls, no tokens
            budget.charge(0, 0, 0, failed=True)
    return budget


def open_client(settings: LlmSettings, ctx: TaskContext) -> LlmClient:
    """A client for one handler run, charging a budget that starts from the recorded spend.

    The budget is checked here too, so an instance that is already over a cap stops before any
    other work of the agent (e.g. the builder's test run) is done.
    """
    budget = spent_budget(settings, ctx)
    budget.check()
    return LlmClient(settings, budget, ctx)


# --------------------------------------------------------------------------------------------
# Analyst
# --------------------------------------------------------------------------------------------

_FIELD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": 80},
        "type": {"enum": list(FIELD_TYPES)},
        "required": {"type": "boolean"},
        "unique": {"type": "boolean"},
        "choices": {"type": "array", "maxItems": 30, "items": {"type": "string", "minLength": 1, "maxLength": 60}},
        "reference": {"type": ["string", "null"], "maxLength": 80},
        "minimum": {"type": ["number", "null"]},
        "maximum": {"type": ["number", "null"]},
        "default": {"type": ["string", "null"], "maxLength": 200},
    },
    "required": ["label", "type"],
    "additionalProperties": False,
}
ANALYST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 120},
        "summary": {"type": "string", "maxLength": 500},
        "entities": {"type": "array", "maxItems": 30, "items": {
            "type": "object",
            "properties": {"label": {"type": "string", "minLength": 1, "maxLength": 80},
                           "fields": {"type": "array", "maxItems": 40, "items": _FIELD_SCHEMA}},
            "required": ["label", "fields"],
            "additionalProperties": False,
        }},
        "features": {"type": "array", "maxItems": 40, "items": {"type": "string", "minLength": 1, "maxLength": 300}},
        "integrations": {"type": "array", "maxItems": 10, "items": {
            "type": "object",
            "properties": {"label": {"type": "string", "minLength": 1, "maxLength": 80},
                           "credentials": {"type": "array", "maxItems": 5,
                                           "items": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}}},
            "required": ["label", "credentials"],
            "additionalProperties": False,
        }},
        "constraints": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 300}},
        "questions": {"type": "array", "maxItems": 10, "items": {"type": "string", "minLength": 1, "maxLength": 300}},
    },
    "required": ["title", "entities", "features", "questions"],
    "additionalProperties": False,
}

_ANALYST_INSTRUCTIONS = f"""You are the scope analyst of Scopeflow, which builds small Flask + SQLAlchemy data apps.
Read the scope a person wrote and describe the app it asks for:
- entities: the things the app stores (singular label, e.g. "Plant"), each with its fields.
  Field types: {", ".join(FIELD_TYPES)}. A "reference" field points to another entity: put that
  entity's label in "reference". A "choice" field lists its "choices". Use "required", "unique",
  "minimum"/"maximum" (numbers, or text length) and "default" only where the scope implies them.
- features: one short sentence per capability the person wants, as they would say it (listing,
  searching, exporting, reminders, charts, ...).
- integrations: outside services the app must call, with the environment variable names of their
  credentials (e.g. STRIPE_API_KEY).
- constraints: rules the app must respect.
- questions: what the scope leaves open that you had to guess (at most a few)."""


def needs_llm_analysis(spec: Spec) -> bool:
    """Whether the offline analysis leaves prose to read: no entities, or entities only mined from prose."""
    return not spec.entities or any(q.topic == "entities:prose" for q in spec.questions)


def analyst_messages(scope: str, offline: Spec) -> list[dict[str, str]]:
    """The analyst's prompt: its instructions, the scope, and what offline parsing made of it."""
    found = ", ".join(e.name for e in offline.entities) or "no entities"
    text = scope if len(scope) <= MAX_SCOPE_CHARS else scope[:MAX_SCOPE_CHARS] + "\n[… scope shortened]"
    return [
        {"role": "system", "content": _ANALYST_INSTRUCTIONS},
        {"role": "user", "content": f"The scope:\n\n{text}\n\nA keyword parser found {found} in it; "
                                    "read the whole text yourself."},
    ]


def _field_pieces(field: dict[str, Any]) -> list[str]:
    """One answered field in the scope format's own words (``integer``, ``-> Plant``, ``min 1``)."""
    kind = field["type"]
    if kind == "reference" and field.get("reference"):
        pieces = [f"-> {field['reference']}"]
    elif kind == "choice":
        values = [naming.clean_label(c).replace("|", "/") for c in field.get("choices") or []]
        pieces = ["choice: " + " | ".join(v for v in values if v)]
    else:
        pieces = ["text" if kind == "reference" else kind]
    pieces.append("required" if field.get("required") else "optional")
    if field.get("unique"):
        pieces.append("unique")
    for key, word in (("minimum", "min"), ("maximum", "max")):
        if field.get(key) is not None:
            pieces.append(f"{word} {field[key]:g}")
    if field.get("default") not in (None, ""):
        pieces.append(f"default {naming.clean_label(field['default'])}")
    return pieces


def _integration_item(integration: dict[str, Any]) -> str:
    """An integration bullet the offline reader understands: ``Label (needs KEY_A, KEY_B)``."""
    label = "".join(ch for ch in naming.clean_label(integration["label"]) if ch not in "():—–-") or "service"
    credentials = [c for c in integration["credentials"] if not c.startswith("SCOPEFLOW_")]
    return f"{label} (needs {', '.join(credentials)})" if credentials else label


def spec_from_answer(answer: dict[str, Any], offline: Spec, *, keep_title: bool = False) -> Spec:
    """The Spec an analyst answer (valid against :data:`ANALYST_SCHEMA`) describes.

    The title is the model's unless ``keep_title`` (the scope has its own ``# Title``); the summary
    is the offline one (the person's first paragraph) when there is one.

    Fields go through the offline resolver, so unsafe or reserved names get the usual suffixes,
    references to entities the answer does not define create them (with a question), and a choice
    without values asks. The first question (topic ``entities:prose``, default ``yes``) lists what
    the model read and its own open questions; answering it with entity lines replaces the entities.
    """
    asker = _Asker()
    asker.ask("entities:prose", "", "yes")
    raws = [_RawEntity(e["label"], [_RawField(f["label"], _field_pieces(f)) for f in e["fields"]])
            for e in answer["entities"]]
    entities = _build_entities(raws, asker)
    asker.questions[0].text = _read_entities_question(entities, answer["questions"])
    if not entities:
        asker.questions[0].topic = "data:none"
        asker.questions[0].default = ""
    features = _features([naming.clean_label(t) for t in answer["features"]], entities, strict=True)
    integrations = _integrations([_integration_item(i) for i in answer.get("integrations", [])], asker)
    constraints = [naming.clean_label(c) for c in answer.get("constraints", []) if naming.clean_label(c)]
    spec = Spec(
        title=offline.title if keep_title else (naming.clean_label(answer["title"])[:120] or offline.title),
        summary=offline.summary or naming.clean_label(answer.get("summary", ""))[:500],
        entities=entities, features=features, integrations=integrations, constraints=constraints,
        questions=asker.questions, wants_login=_wants_login(features, constraints),
    )
    spec.complexity_score, spec.complexity = score(spec)
    return spec


def _read_entities_question(entities: list[Entity], open_questions: list[str]) -> str:
    read = "; ".join(f"{e.name} ({', '.join(f.name for f in e.fields)})" for e in entities) or "no entities"
    text = f"An LLM read these entities from the prose: {read}."
    if open_questions:
        text += " It could not tell: " + " ".join(naming.clean_label(q) for q in open_questions)
    return text + (" Reply 'yes' or give entity lines like 'Book: title (text, required), author (-> Author)'."
                   if entities else " Which entities should the app store? (entity lines like "
                   "'Book: title (text, required)')")


def analyze_with_llm(ctx: TaskContext, settings: LlmSettings, scope: str, offline: Spec) -> Spec:
    """The analyst's Spec for ``scope`` read by the model (call when :func:`needs_llm_analysis`)."""
    with open_client(settings, ctx) as client:
        answer = client.chat_json("analyst", analyst_messages(scope, offline), ANALYST_SCHEMA)
    has_title = any(line.startswith("# ") for line in scope.splitlines())
    return spec_from_answer(answer, offline, keep_title=has_title)


# --------------------------------------------------------------------------------------------
# Planner
# --------------------------------------------------------------------------------------------


def plan_llm_features(plan: Plan, spec: Spec) -> Plan:
    """``plan`` with each feature no template builds turned into a buildable ``author="llm"`` task.

    The task keeps its id, title and phase, owns ``app/webapp/ext/<slug>.py`` and
    ``app/tests/test_llm_<slug>.py`` (slugs made unique against every file the plan owns), and
    depends on app-core, auth when planned, and the entity the feature is about (every entity when
    it names none). Integration tasks stay unbuildable.
    """
    owned = {path for task in plan.tasks for path in task.files}
    entity_tasks = {t.entity: t.id for t in plan.tasks if t.kind == "entity"}
    extra = ["auth"] if any(t.id == "auth" for t in plan.tasks) else []
    tasks = []
    for task in plan.tasks:
        feature = _feature_of(task, spec)
        if feature is None:
            tasks.append(task)
            continue
        slug = _free_slug(feature.text, owned)
        files = [EXT_MODULE.format(slug=slug), EXT_TESTS.format(slug=slug)]
        owned.update(files)
        about = [entity_tasks[feature.entity]] if feature.entity in entity_tasks else list(entity_tasks.values())
        tasks.append(PlanTask(id=task.id, title=task.title, kind=LLM_TASK_KIND, files=files,
                              depends_on=["app-core", *extra, *about], phase=task.phase,
                              entity=task.entity, buildable=True, author=LLM_AUTHOR,
                              requirements=list(task.requirements)))
    planned = Plan(tasks=tasks, phases=list(plan.phases), feedback=plan.feedback, notes=list(plan.notes))
    validate_plan(planned)
    return planned


def _feature_of(task: PlanTask, spec: Spec) -> Feature | None:
    """The spec feature behind an unbuildable ``feature-<n>`` task (numbered from 1), else None."""
    if task.buildable or not task.id.startswith("feature-"):
        return None
    number = task.id.removeprefix("feature-")
    if not number.isdigit() or not 1 <= int(number) <= len(spec.features):
        return None
    return spec.features[int(number) - 1]


def _free_slug(text: str, owned: set[str]) -> str:
    """A module name from the feature's first words, suffixed until none of its files is taken."""
    base = naming.field_name(" ".join(naming.ascii_words(text)[:4]), fallback="feature")
    for candidate in naming.dedupe([base] * 1000):
        if not {EXT_MODULE.format(slug=candidate), EXT_TESTS.format(slug=candidate)} & owned:
            return candidate
    raise TaskFailure(DESIGN_FLAW, f"no free module name for the feature {text!r}", {})


def llm_written_files(plan: dict[str, Any] | Plan) -> list[dict[str, str]]:
    """Every file an ``author="llm"`` task owns: ``[{"task_id", "title", "path"}]`` in plan order."""
    parsed = plan if isinstance(plan, Plan) else Plan.from_data(plan)
    return [{"task_id": t.id, "title": t.title, "path": path}
            for t in parsed.tasks if t.author == LLM_AUTHOR for path in t.files]


# --------------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------------

_BUILDER_INSTRUCTIONS = """You write one feature of a generated Flask 3 + SQLAlchemy 2 app (Python 3.11).
The app lives in a directory app/ with the package webapp (app factory webapp.create_app(overrides),
database helpers in webapp.db: Base, session()) and pytest tests in app/tests whose conftest gives
the fixtures `app` (a fresh app on a temporary SQLite file) and `client`.
Rules:
- Write exactly the files asked for, complete, as {"files": {"<path>": "<file text>"}}.
- The module must define `register(app: Flask) -> None` that adds the feature to an app, e.g. by
  registering a Blueprint whose URLs start with /ext/. Import only flask, sqlalchemy, the standard
  library and webapp modules.
- create_app() already calls register(app) for every module in webapp/ext, so the test file uses
  the `app` fixture (or `client`) as it is, never calls register(app) itself, and asserts real
  behaviour of the feature.
- Code must pass ruff (rules E, F, W, B; line length 100), bandit without high findings, and its tests."""


def files_schema(task: PlanTask) -> dict[str, Any]:
    """The builder's answer: exactly the task's owned files, each a string."""
    return {
        "type": "object",
        "properties": {
            "files": {
                "type": "object",
                "properties": {path: {"type": "string", "minLength": 1, "maxLength": MAX_FILE_CHARS}
                               for path in task.files},
                "required": list(task.files),
                "additionalProperties": False,
            },
        },
        "required": ["files"],
        "additionalProperties": False,
    }


def _read_app_file(workspace: Path, path: str) -> str | None:
    target = safe_target(workspace, path)
    if not target.is_file():
        return None
    text = target.read_text(encoding="utf-8", errors="replace")
    return text if len(text) <= MAX_CONTEXT_FILE_CHARS else text[:MAX_CONTEXT_FILE_CHARS] + "\n# [… shortened]"


def _spec_outline(spec: Spec) -> str:
    lines = [f"App: {spec.title}. {spec.summary}".strip()]
    for entity in spec.entities:
        fields = ", ".join(f"{f.name} ({f.type}{' -> ' + f.reference if f.reference else ''}"
                           f"{', required' if f.required else ''})" for f in entity.fields)
        lines.append(f"- entity {entity.name}, table {entity.table}, module webapp.entities.{entity.table}: {fields}")
    return "\n".join(lines)


def builder_messages(ctx: TaskContext, spec: Spec, task: PlanTask, feedback: str | None,
                     self_check: str | None) -> list[dict[str, str]]:
    """The builder's prompt; on a rebuild it carries the feedback, the current files and the
    output of their own tests and lint, so the model fixes what failed."""
    context_files = ["app/webapp/db.py"] + [f"app/webapp/entities/{e.table}.py" for e in spec.entities
                                            if task.entity in (None, e.name)]
    shown = [(path, text) for path in context_files if (text := _read_app_file(ctx.workspace, path))]
    request = [_spec_outline(spec), "", f"Feature to build (task {task.id}): {task.title}",
               "Files to write: " + ", ".join(task.files)]
    request += [f"\n--- {path} (existing, read only) ---\n{text}" for path, text in shown]
    if feedback:
        request.append(f"\nThe last build failed its checks. Feedback: {feedback}")
        for path in task.files:
            current = _read_app_file(ctx.workspace, path)
            request.append(f"\n--- {path} (your current version) ---\n{current or '(missing)'}")
        if self_check:
            request.append(f"\n--- output of your tests and lint now ---\n{self_check}")
        request.append("\nRewrite the files so that every check passes.")
    return [{"role": "system", "content": _BUILDER_INSTRUCTIONS},
            {"role": "user", "content": "\n".join(request)}]


@dataclass(frozen=True)
class SelfCheck:
    """What pytest and ruff said about one task's own files."""

    output: str          # trimmed tool output, what the model gets on a rebuild
    passed: bool         # both exited 0


def self_check(ctx: TaskContext, task: PlanTask) -> SelfCheck | None:
    """Run pytest and ruff on the task's own files (sandboxed); None if none of them exist.

    This is the failing output the model gets on a rebuild: measured here, not taken from the
    one-line feedback, which only names the failing check.
    """
    app_dir = safe_target(ctx.workspace, "app")
    rel = [path.removeprefix("app/") for path in task.files if (app_dir.parent / path).is_file()]
    if not rel:
        return None
    tests = [path for path in rel if path.startswith("tests/")]
    hide = (hidden_from_checks(ctx.workspace),)  # the LLM's code sees no store, key or other workspace
    outputs, exits = [], []
    with ctx.span("scopeflow.build.self_check", **{"scopeflow.build.task": task.id}) as span:
        if tests:
            result = run_untrusted([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                                   cwd=app_dir, timeout_s=SELF_CHECK_TIMEOUT_S, hide=hide)
            outputs.append(f"$ pytest {' '.join(tests)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
            span.set(**{"scopeflow.build.self_check.pytest_exit": result.returncode})
            exits.append(result.returncode)
        result = run_untrusted([sys.executable, "-m", "ruff", "check", "--no-cache", *rel],
                               cwd=app_dir, timeout_s=SELF_CHECK_TIMEOUT_S, hide=hide)
        outputs.append(f"$ ruff check (exit {result.returncode})\n{result.stdout}{result.stderr}")
        span.set(**{"scopeflow.build.self_check.ruff_exit": result.returncode})
        exits.append(result.returncode)
    complete = len(rel) == len(task.files) and bool(tests)
    return SelfCheck(trim_output("\n".join(outputs)), passed=complete and not any(exits))


def self_check_output(ctx: TaskContext, task: PlanTask) -> str | None:
    """The self-check's output alone (see :func:`self_check`)."""
    check = self_check(ctx, task)
    return check.output if check else None


# Verification feedback the self-check covers: pytest (which imports the module through the app)
# and ruff see compile errors, lint errors and failing tests in the task's own files. A security
# finding or a human reviewer's comment is not attributable that way: every LLM task is rewritten.
_COVERED_FEEDBACK = f"{RECOVERABLE}: checks failed: "


def keeps_on_rebuild(feedback: str | None, check: SelfCheck | None) -> bool:
    """Whether a rebuild may keep an LLM task's files: the verifier failed, but not on this task."""
    return bool(feedback and feedback.startswith(_COVERED_FEEDBACK) and "security" not in feedback
                and check is not None and check.passed)


def _check_module(task: PlanTask, files: dict[str, str]) -> None:
    """The module must parse and define ``register``; otherwise the build is recoverable."""
    module = next(path for path in task.files if path.startswith("app/webapp/"))
    try:
        tree = ast.parse(files[module], filename=module)
    except SyntaxError as exc:
        raise TaskFailure(RECOVERABLE, f"{module} written by the LLM does not parse: {exc.msg} (line {exc.lineno})",
                          {"task_id": task.id, "path": module}) from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "register" for node in tree.body):
        raise TaskFailure(RECOVERABLE, f"{module} written by the LLM defines no register(app) function",
                          {"task_id": task.id, "path": module})


def build_llm_task(ctx: TaskContext, settings: LlmSettings | None, spec: Spec, plan: Plan, task: PlanTask,
                   feedback: str | None = None) -> dict[str, Any]:
    """Have the model write the files of an ``author="llm"`` task into the workspace.

    Returns the builder's usual ``{"task_id", "files": [{"path", "sha256"}]}`` plus ``"author": "llm"``.
    Raises ``configuration`` without an endpoint, ``recoverable`` when the module does not parse or
    lacks ``register`` (the files are written first, so a rebuild sees them).
    """
    if settings is None:
        raise TaskFailure(CONFIGURATION, f"plan task {task.id} is to be written by an LLM but "
                          "SCOPEFLOW_LLM_BASE_URL is not set", {"task_id": task.id})
    targets = {path: safe_target(ctx.workspace, path) for path in task.files}
    check = self_check(ctx, task) if feedback else None
    if keeps_on_rebuild(feedback, check):
        return _keep_task(ctx, task, targets)
    with open_client(settings, ctx) as client:
        messages = builder_messages(ctx, spec, task, feedback, check.output if check else None)
        with ctx.span("scopeflow.build.llm", **{"scopeflow.build.task": task.id}) as span:
            answer = client.chat_json("builder", messages, files_schema(task))
            files = [{"path": path, "sha256": write_file(targets[path], answer["files"][path])}
                     for path in task.files]
            span.set(**{"scopeflow.build.files": len(files)})
    ctx.record({"scopeflow.build.files": len(files), "scopeflow.build.task": task.id,
                "scopeflow.build.author": LLM_AUTHOR, "scopeflow.build.feedback_used": bool(feedback)})
    _check_module(task, answer["files"])
    return {"task_id": task.id, "files": files, "author": LLM_AUTHOR}


def _keep_task(ctx: TaskContext, task: PlanTask, targets: dict[str, Path]) -> dict[str, Any]:
    """A rebuild leaves a task whose own tests and lint pass as it is: no model call, files unchanged."""
    files = [{"path": path, "sha256": hashlib.sha256(targets[path].read_bytes()).hexdigest()} for path in task.files]
    ctx.record({"scopeflow.build.files": len(files), "scopeflow.build.task": task.id,
                "scopeflow.build.author": LLM_AUTHOR, "scopeflow.build.feedback_used": False,
                "scopeflow.build.kept": True})
    return {"task_id": task.id, "files": files, "author": LLM_AUTHOR, "kept": True}


# --------------------------------------------------------------------------------------------
# Reviewer
# --------------------------------------------------------------------------------------------

REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rationale": {"type": "string", "minLength": 1, "maxLength": 4000}},
    "required": ["rationale"],
    "additionalProperties": False,
}

_REVIEWER_INSTRUCTIONS = """You are the reviewer of Scopeflow. From the facts given, write for a human
reviewer a short rationale (3 to 6 sentences): what was built, what the checks show, what is risky or
missing, and what to look at before approving. Do not invent facts and do not change the confidence;
it is computed by a formula and given to you."""


def review_messages(spec: Spec, review: dict[str, Any], llm_files: list[dict[str, str]]) -> list[dict[str, str]]:
    facts = {"title": spec.title, "review": review, "files_written_by_an_llm": [f["path"] for f in llm_files]}
    return [{"role": "system", "content": _REVIEWER_INSTRUCTIONS},
            {"role": "user", "content": json.dumps(facts, indent=1, sort_keys=True)}]


def review_rationale(ctx: TaskContext, settings: LlmSettings, spec: Spec, plan: Plan,
                     review: dict[str, Any]) -> str:
    """The rationale text of a review (``review`` is ``Review.to_data()``), written by the model."""
    with open_client(settings, ctx) as client:
        answer = client.chat_json("reviewer", review_messages(spec, review, llm_written_files(plan)),
                                  REVIEW_SCHEMA)
    return answer["rationale"].strip()
