"""The reporter: the last word of a run, ``DELIVERY.md`` when it delivered, ``BLOCKERS.md`` when not.

A blocker can stop a run at any stage, so every input here may be ``None`` or a partial dict; the
``view_*`` functions read them leniently and the templates only ever see complete views (they run
with ``StrictUndefined``). Files listed as built are the files actually in the workspace, not the
ones the plan promised.

Markdown is rendered without autoescaping, so every piece of text that came from a person or a
tool (titles, labels, messages, log lines) goes through the :func:`md` filter, which turns HTML
into entities and backslash-escapes markdown syntax: a scope titled ``<script>`` shows as text.
Shell commands are only printed when every argument is a plain token (:func:`shell_token`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from scopeflow.handlers import requirements as req
from scopeflow.handlers.checks import Checks
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.deployer import credential_needs
from scopeflow.handlers.failures import (
    CONFIGURATION,
    DESIGN_FLAW,
    EXTERNAL_BLOCKER,
    RECOVERABLE,
    TRANSIENT,
    TaskFailure,
    resumable,
)
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.program import program

TEMPLATES = Path(__file__).parent / "templates" / "reports"
DELIVERY_FILE = "DELIVERY.md"
BLOCKERS_FILE = "BLOCKERS.md"
SCOPE_FILE = "SCOPE.md"          # the scope as submitted (with clarifications), to edit and submit again
MAX_FILES_LISTED = 200
MAX_DETAIL_CHARS = 300
LOG_LINES_SHOWN = 20

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
_CODE_SAFE = re.compile(r"^[\w./:@%+=,() -]+$")
_SHELL_TOKEN = re.compile(r"^[A-Za-z0-9_./:@%+=,-]+$")
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git", ".venv",
                        "venv", "node_modules", "instance"})
CHECK_COUNTS = ("compile_errors", "lint_errors", "tests_passed", "tests_failed", "tests_errors",
                "tests_skipped", "security_high", "security_medium", "security_low")


# ------------------------------------------------------------------------------ escaping
def md(value: Any, limit: int | None = None) -> str:
    """``value`` as inline markdown text: one line, HTML as entities, markdown syntax escaped."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code(value: Any) -> str:
    """``value`` as an inline code span when it is plain text (no backtick, ``<``, ``>``, ``&``), else :func:`md`."""
    text = "" if value is None else " ".join(str(value).split())
    return f"`{text}`" if _CODE_SAFE.match(text) else md(text)


def shell_token(value: Any) -> str | None:
    """``value`` when it is safe to print unquoted in a shell command, else None."""
    text = str(value) if isinstance(value, str | int) else ""
    return text if _SHELL_TOKEN.match(text) else None


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False,  # nosec B701 - markdown; md filter
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["md"] = md
    env.filters["code"] = code
    return env


# ------------------------------------------------------------------------------ lenient readers
def _dict(value: Any, unwrap: str | None = None) -> dict[str, Any]:
    """``value`` if it is a dict (its ``unwrap`` entry when it holds one, e.g. an operator's output)."""
    if not isinstance(value, dict):
        return {}
    if unwrap and isinstance(value.get(unwrap), dict):
        return value[unwrap]
    return value


def _list(value: Any, key: str) -> list[Any]:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def workspace_files(workspace: Path, limit: int = MAX_FILES_LISTED) -> tuple[list[str], int]:
    """Files under ``workspace/app`` (sorted, at most ``limit``) and how many there are in all."""
    app = Path(workspace) / "app"
    found = []
    for dirpath, dirnames, filenames in os.walk(app):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        found += [(Path(dirpath) / n).relative_to(workspace).as_posix() for n in filenames
                  if not n.endswith((".pyc", ".pyo"))]
    return sorted(found)[:limit], len(found)


@dataclass
class ChecksView:
    ran: bool
    counts: dict[str, int] = field(default_factory=dict)
    summary: str = ""
    failures: list[str] = field(default_factory=list)


def view_checks(checks: Any) -> ChecksView:
    """The verifier's measured figures; missing counts are left out rather than shown as 0."""
    data = _dict(checks, unwrap="checks")
    counts = {name: _int(data.get(name)) for name in CHECK_COUNTS}
    counts = {name: value for name, value in counts.items() if value is not None}
    if not counts:
        return ChecksView(ran=False)
    summary = Checks(**counts).summary() if len(counts) == len(CHECK_COUNTS) else ""
    failures = [str(f) for f in _list(data, "failures")]
    return ChecksView(ran=True, counts=counts, summary=summary, failures=failures)


def view_built(ctx: TaskContext, spec: Any, review: Any) -> dict[str, Any]:
    """Entities (from the spec), endpoints (from the review) and the files in the workspace."""
    spec_data, summary = _dict(spec), _dict(_dict(review, unwrap="review").get("summary"))
    entities = [{"label": e.get("label") or e.get("name"), "name": e.get("name"),
                 "fields": len(_list(e, "fields"))} for e in _list(spec_data, "entities") if isinstance(e, dict)]
    files, total = workspace_files(ctx.workspace)
    return {"title": spec_data.get("title") or "(untitled scope)", "summary": spec_data.get("summary") or "",
            "entities": entities, "endpoints": [str(e) for e in _list(summary, "endpoints")],
            "files": files, "files_total": total}


def view_review(review: Any) -> dict[str, Any] | None:
    data = _dict(review, unwrap="review")
    if not data:
        return None
    confidence = data.get("confidence")
    return {
        "confidence": f"{confidence:.2f}" if isinstance(confidence, int | float) else "not given",
        "basis": data.get("confidence_basis") or "",
        "decisions": [d for d in _list(data, "decisions") if isinstance(d, dict)],
        "risks": [str(r) for r in _list(data, "risks")],
    }


def view_unbuildable(spec: Any, plan: Any) -> list[dict[str, str]]:
    """Features the offline templates cannot build, with why: from the plan, else from the spec."""
    tasks = [t for t in _list(plan, "tasks") if isinstance(t, dict) and t.get("buildable") is False]
    if tasks:
        return [{"what": t.get("title") or t.get("id") or "", "reason": t.get("reason") or ""} for t in tasks]
    return [{"what": f.get("text") or "", "reason": f.get("reason") or ""}
            for f in _list(spec, "features") if isinstance(f, dict) and f.get("buildable") is False]


def view_release(release: Any, ctx: TaskContext) -> dict[str, Any]:
    """The release URL and the commands that stop and start it (only when paths are plain tokens).

    ``steps`` are (what it does, command) pairs; each command works as printed: the release's own
    ``run.sh`` uses the interpreter Scopeflow runs with, and the "anywhere" command makes the virtual
    environment the app needs (its requirements come from the package index)."""
    data = _dict(release, unwrap="release")
    path = shell_token(data.get("path"))
    release_id = shell_token(data.get("id"))
    app_dir = shell_token(str(Path(ctx.workspace) / "app"))
    steps = []
    if release_id and data.get("status") == "running":
        steps.append(("Stop the running release", f"{program()} releases stop {release_id}"))
    if path:
        steps.append(("Start this release by hand (in the foreground, on its port)", f"sh {path}/run.sh"))
    if app_dir:
        steps.append(("Run the app from its source on any machine with Python 3.11+ (installs its requirements "
                      "into a fresh virtual environment; PORT=8000 by default)",
                      f"cd {app_dir} && python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt "
                      "&& .venv/bin/python run.py"))
    health = _dict(data.get("health"))
    sign_in = _dict(_dict(release).get("sign_in"))
    secret = shell_token(sign_in.get("password_secret"))
    return {"deployed": bool(data), "url": data.get("url") or "", "id": data.get("id") or "",
            "status": data.get("status") or "", "health_ok": health.get("ok"),
            "health_status": health.get("status"), "steps": steps,
            "commands": [command for _what, command in steps],
            "sign_in": {"username": str(sign_in.get("username") or ""),
                        "command": f"{program()} secrets reveal {secret}"} if secret else None}


def _stored(ctx: TaskContext, name: str) -> bool | None:
    try:
        return ctx.secret_exists(name)
    except RuntimeError:        # a context without a secret store cannot say
        return None


def view_credentials(ctx: TaskContext, spec: Any) -> dict[str, Any]:
    """What the built code reads (required / optional, each with the command that stores it) and the
    integrations whose credentials no built code reads ("needed once … is built", never requested).
    Decided from the workspace's app as it is now, by the same rule the deploy uses."""
    try:
        needs = credential_needs(ctx.workspace, spec or None)
    except TaskFailure as failure:
        return {"read": False, "required": [], "optional": [], "not_built": [], "error": failure.message}

    def entry(name: str) -> dict[str, Any]:
        token = shell_token(name)
        return {"name": name, "by": ", ".join(needs.labels.get(name, [])), "stored": _stored(ctx, name),
                "command": f"{program()} secrets set {token}" if token else ""}

    return {"read": bool(needs.read), "required": [entry(n) for n in needs.required],
            "optional": [entry(n) for n in needs.optional], "error": "",
            "not_built": [{"integration": item.integration, "names": item.names} for item in needs.not_built]}


def credentials_summary(view: dict[str, Any]) -> dict[str, Any]:
    """The report's credential view as plain names (what ``scopeflow submit`` prints and ``--json`` shows)."""
    return {"required": [c["name"] for c in view["required"]], "optional": [c["name"] for c in view["optional"]],
            "optional_stored": [c["name"] for c in view["optional"] if c["stored"]], "not_built": view["not_built"]}


def view_evidence(evidence: Any) -> dict[str, Any] | None:
    """Rule results of the evidence gate (``verify_evidence`` output or a bare report) and the chain head."""
    outer = _dict(evidence)
    if not outer:
        return None
    report = _dict(outer, unwrap="report")
    rules = [{"name": r.get("name") or "", "passed": r.get("passed") is True,
              "why": "; ".join(str(a.get("message") or a.get("assertion") or "") for a in _failed_assertions(r))}
             for r in _list(report, "rules") if isinstance(r, dict)]
    ok = report.get("ok", outer.get("ok"))
    head = outer.get("chain_head") or report.get("chain_head") or outer.get("head")
    decisions = report.get("decisions")
    return {"ok": ok if isinstance(ok, bool) else None, "stage": report.get("stage"), "rules": rules,
            "chain_head": head if isinstance(head, str) else "",
            "decisions": DECISIONS_TEXT.get(decisions, "") if isinstance(decisions, str) else ""}


DECISIONS_TEXT = {
    "automated": "Human checkpoints were auto-approved by --yes (not confirmed by a person): the weaker rule "
                 "set for automated decisions was applied.",
    "people": "Every human checkpoint was decided by a person (an account holding the task's role): the rule "
              "set for decisions by people was applied.",
    "none": "No human decision was recorded: the rule set for decisions by people was applied.",
}


MATRIX_LIST_LIMIT = 3


def _short(names: list[str]) -> str:
    """``a, b, c (+2 more)``: test ids without their module path, files as they are."""
    shown = [name.rsplit("::", 1)[-1] for name in names[:MATRIX_LIST_LIMIT]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def matrix(spec: Any, plan: Any, checks: Any, review: Any) -> list[req.Requirement]:
    """The requirement matrix: the reviewer's when there is one, else decided here from the plan and
    whatever the verifier measured (a run stopped before verification proves nothing)."""
    reviewed = _list(_dict(review, unwrap="review"), "requirements")
    if reviewed:
        return req.load(reviewed)
    requirements = req.load(_list(spec, "requirements"))
    measured = _dict(checks, unwrap="checks")
    results = measured.get("requirements") if isinstance(measured.get("requirements"), dict) else None
    tasks = [t for t in _list(plan, "tasks") if isinstance(t, dict)]
    return req.decide(requirements, tasks, results if measured else None)


def spec_or_scope(spec: dict[str, Any], scope: Any) -> dict[str, Any]:
    """``spec``, or, for a run stopped before any spec was confirmed, the analyst's reading of the
    submitted scope (so the report keeps its title and shows every line's requirement)."""
    if spec or not isinstance(scope, str):
        return spec
    from scopeflow.handlers.scope import ScopeError, analyze

    try:
        return analyze(scope).to_data()
    except ScopeError:
        return spec


def view_matrix(requirements: list[req.Requirement]) -> dict[str, Any]:
    """Rows of the report's requirement table, the assumptions, and the verdict counts."""
    rows = [{"id": r.id, "text": r.text, "line": r.line or "", "source": r.source, "verdict": r.verdict,
             "reason": r.reason if r.verdict != req.DELIVERED else "", "tests": _short(r.tests),
             "files": _short(r.files)} for r in requirements]
    assumptions = [{"id": r.id, "text": r.text, "line": r.line or "", "assumption": r.assumption or r.reason,
                    "question": r.question} for r in requirements if r.status == req.ASSUMED]
    return {"rows": rows, "assumptions": assumptions, "counts": req.counts(requirements),
            "not_built": [row for row in rows if row["verdict"] == req.NOT_BUILT]}


# ------------------------------------------------------------------------------ blockers
NEEDED = {
    CONFIGURATION: "a configuration value or credential",
    EXTERNAL_BLOCKER: "the outside dependency named in the message to work again",
    DESIGN_FLAW: "a revised scope or plan",
    RECOVERABLE: "a build that passes verification",
    TRANSIENT: "the temporary failure to pass",
    "unbuildable": "a scope the offline templates can build (see the open questions)",
    "decision": "a person's decision (see the comment)",
    "evidence": "evidence rules that hold over the recorded spans",
}
OPTIONS = {
    CONFIGURATION: ["store the missing value and resume", "remove the integration that needs it from the scope "
                    "and submit the scope again"],
    EXTERNAL_BLOCKER: ["fix the cause (see the details and log) and resume",
                       "use what was delivered anyway: run the built app by hand (commands below)"],
    DESIGN_FLAW: ["change the scope and submit it again", "answer the open questions differently and resume"],
    RECOVERABLE: ["resume: the agents build again with the failure as context",
                  "fix the generated code in the workspace by hand, then resume"],
    TRANSIENT: ["resume later"],
    "unbuildable": ["add what is missing (answer the open questions) and submit the scope again",
                    "list the things the app keeps with their fields under a heading \"## Entities\" "
                    "(one line each, e.g. \"- Book: title (text, required), author\") and submit the scope again"],
    "decision": ["talk to whoever decided (their comment is in the details)", "submit a revised scope"],
    "evidence": ["find out why the failed rules do not hold (see the details), fix the cause and submit the "
                 "scope again",
                 "if a rule is wrong, fix it in the model's evidence rules first (a new model version)"],
}


@dataclass
class BlockerItem:
    kind: str
    stage: str
    message: str
    needed: str
    options: list[str]
    commands: list[str]                                          # shell commands, plain tokens only
    resumable: bool = True                                       # False: the commands submit the scope again
    skipped: list[str] = field(default_factory=list)             # names left out of commands (not plain)
    details: list[tuple[str, str]] = field(default_factory=list)  # (key, value as text), scalars only
    log: list[str] = field(default_factory=list)                 # last lines of a log, if one came along

    def summary(self) -> dict[str, str]:
        return {"kind": self.kind, "stage": self.stage, "message": self.message}


def _text_list(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str | int | float)] if isinstance(value, list) else []


def merged_details(blocker: dict[str, Any]) -> dict[str, Any]:
    """A blocker's details with those of the failure it wraps (the model's record scripts put a
    handler's ``TaskFailure`` details under ``details.failure``); the outer keys win."""
    details = _dict(blocker.get("details"))
    return {**_dict(details.get("failure")), **{k: v for k, v in details.items() if k != "failure"}}


def missing_names(details: dict[str, Any]) -> list[str]:
    """Missing credential names: ``details.missing`` as a list, or the check's payload under it."""
    missing = details.get("missing")
    return _text_list(missing if isinstance(missing, list) else _dict(missing).get("missing"))


def resume_commands(kind: str, blocker: dict[str, Any], instance_id: str,
                    scope_path: str = "") -> tuple[list[str], list[str]]:
    """The CLI commands that go on after this blocker, as fits its kind, and the names that could
    not be put in a command because they are not plain tokens. A blocker that is not resumable
    (see :func:`failures.resumable`) gets the command that submits the scope again instead of one
    that would refuse."""
    commands, skipped = [], []
    if not resumable(kind) and not blocker.get("task_id"):
        path = shell_token(scope_path)
        if path:
            commands.append(f"{program()} submit {path}   # edit the scope first")
        return commands, skipped
    if kind == CONFIGURATION:
        for name in missing_names(merged_details(blocker)):
            token = shell_token(name)
            if token:
                commands.append(f"{program()} secrets set {token}   # reads the value from stdin")
            else:
                skipped.append(name)
    task = shell_token(blocker.get("task_id"))
    instance = shell_token(instance_id)
    if task:
        commands.append(f"{program()} tasks show {task}   # prints the exact command that completes it")
    elif instance:
        commands.append(f"{program()} instances retry {instance}")
    return commands, skipped


def _needed(kind: str, blocker: dict[str, Any]) -> str:
    if isinstance(blocker.get("needed"), str):
        return blocker["needed"]
    missing = missing_names(merged_details(blocker))
    if kind == CONFIGURATION and missing:
        return "credential(s): " + ", ".join(missing)
    return NEEDED.get(kind, "see the message")


def _details(details: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for key, value in details.items():
        if isinstance(value, str | int | float | bool) and key != "log_tail":
            shown.append((str(key), str(value)))
        elif isinstance(value, list) and _text_list(value):
            shown.append((str(key), ", ".join(_text_list(value))))
    return shown


def _failed_assertions(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The assertion results of an evidence report's rule (as data) that did not hold."""
    return [a for a in _list(rule, "assertions") if isinstance(a, dict) and a.get("passed") is False]


def _failed_rules(report: Any) -> list[tuple[str, str]]:
    """For an evidence report: each failed rule with the assertion that failed and what it saw, and
    the rule's description (which says what to do about it), so the plan explains the failure."""
    shown = []
    for rule in _list(report, "rules"):
        if not isinstance(rule, dict) or rule.get("passed") is not False:
            continue
        why = "; ".join(f"{a.get('assertion')}: {a.get('message') or 'did not hold'}" for a in _failed_assertions(rule))
        shown.append((f"rule \u201c{rule.get('name')}\u201d", why or "did not hold"))
        if str(rule.get("description") or "").strip():
            shown.append(("what it means", str(rule["description"]).strip()))
    return shown


def view_blocker(blocker: Any, instance_id: str, scope_path: str = "") -> BlockerItem:
    data = _dict(blocker)
    kind = str(data.get("kind") or "unknown")
    details = merged_details(data)
    stage = data.get("stage") or details.get("stage") or data.get("task") or ""
    options = _text_list(data.get("options")) or OPTIONS.get(kind, ["resume once the cause is fixed"])
    log = str(details.get("log_tail") or "").splitlines()
    commands, skipped = resume_commands(kind, data, instance_id, scope_path)
    return BlockerItem(kind=kind, stage=str(stage), message=str(data.get("message") or "no message was given"),
                       needed=_needed(kind, data), options=options, commands=commands, skipped=skipped,
                       resumable=resumable(kind) or bool(data.get("task_id")),
                       details=_details(details) + _failed_rules(details.get("report")),
                       log=[line for line in log if line.strip()][-LOG_LINES_SHOWN:])


def raw_blockers(blocker: Any) -> list[dict[str, Any]]:
    """``blocker`` is one blocker (a failure payload or a record script's dict) or holds a ``blockers`` list."""
    return [b for b in _list(blocker, "blockers") if isinstance(b, dict)] or [_dict(blocker)]


def view_blockers(blocker: Any, instance_id: str, scope_path: str = "") -> list[BlockerItem]:
    return [view_blocker(b, instance_id, scope_path) for b in raw_blockers(blocker)]


def view_questions(questions: Any, spec: Any, blocker: Any) -> list[dict[str, str]]:
    """``questions`` when given, else the spec's, else those the blockers carry (ideation blockers do)."""
    given = questions if isinstance(questions, list) else _list(spec, "questions")
    if not given:
        given = [q for b in raw_blockers(blocker) for q in _list(merged_details(b), "questions")]
    return [{"id": str(q.get("id") or ""), "text": str(q.get("text") or ""), "default": str(q.get("default") or ""),
             "topic": str(q.get("topic") or "")} for q in given if isinstance(q, dict)]


def view_rollback(raw: Any) -> dict[str, str] | None:
    """The release that kept serving when a deploy was rolled back, if one did."""
    for data in raw_blockers(raw):
        details = merged_details(data)
        active = _dict(details.get("active_release"))
        if details.get("rolled_back") is True and active:
            return {"id": str(active.get("id") or ""), "url": str(active.get("url") or "")}
    return None


# ------------------------------------------------------------------------------ writing
def write_markdown(ctx: TaskContext, name: str, template: str, view: dict[str, Any]) -> dict[str, str]:
    """Render ``template`` with ``view`` to ``ctx.workspace / name`` (atomically); its path and sha256."""
    with ctx.span("render report", **{"scopeflow.report.template": template}) as span:
        text = make_environment().get_template(template).render(**view)
        data = text.encode("utf-8")
        target = Path(ctx.workspace) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{name}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)
        span.set(**{"scopeflow.report.bytes": len(data)})
    return {"path": name, "sha256": hashlib.sha256(data).hexdigest()}


@operator("write_report", retry=NO_RETRY)
def write_report(ctx: TaskContext, spec: Any = None, plan: Any = None, checks: Any = None, review: Any = None,
                 release: Any = None, evidence: Any = None) -> dict[str, Any]:
    """Write DELIVERY.md: what was built, how to run it, the measured checks, review and evidence."""
    spec, plan = _dict(spec, unwrap="spec"), _dict(plan, unwrap="plan")
    requirements = view_matrix(matrix(spec, plan, checks, review))
    view = {"instance_id": ctx.instance_id, "built": view_built(ctx, spec, review), "checks": view_checks(checks),
            "review": view_review(review), "unbuildable": view_unbuildable(spec, plan),
            "release": view_release(release, ctx), "evidence": view_evidence(evidence),
            "requirements": requirements, "credentials": view_credentials(ctx, spec)}
    written = write_markdown(ctx, DELIVERY_FILE, "DELIVERY.md.j2", view)
    (Path(ctx.workspace) / BLOCKERS_FILE).unlink(missing_ok=True)   # a resumed run: the old plan is stale
    ctx.record({"scopeflow.report.kind": "delivery", "scopeflow.report.blockers": 0,
                **req.span_attributes(requirements["counts"])})
    return {"report": {**written, "outcome": "delivered", "requirements": requirements["counts"],
                       "credentials": credentials_summary(view["credentials"])}}


@operator("write_blocker_plan", retry=NO_RETRY)
def write_blocker_plan(ctx: TaskContext, blocker: Any = None, spec: Any = None, plan: Any = None,
                       checks: Any = None, release: Any = None, questions: Any = None,
                       scope: Any = None) -> dict[str, Any]:
    """Write BLOCKERS.md: each blocker with what is needed, options and how to go on, plus what was
    delivered; and SCOPE.md, the scope as submitted, for the blockers that end with submitting again."""
    spec, plan = spec_or_scope(_dict(spec, unwrap="spec"), scope), _dict(plan, unwrap="plan")
    scope_path = ""
    if isinstance(scope, str) and scope.strip():
        target = Path(ctx.workspace) / SCOPE_FILE
        target.write_text(scope, encoding="utf-8")
        scope_path = str(target.resolve())
    blockers = view_blockers(blocker, ctx.instance_id, scope_path)
    view = {"instance_id": ctx.instance_id, "blockers": blockers, "built": view_built(ctx, spec, None),
            "checks": view_checks(checks), "release": view_release(release, ctx),
            "rollback": view_rollback(blocker), "unbuildable": view_unbuildable(spec, plan),
            "questions": view_questions(questions, spec, blocker),
            "requirements": view_matrix(matrix(spec, plan, checks, None)),
            "credentials": view_credentials(ctx, spec)}
    written = write_markdown(ctx, BLOCKERS_FILE, "BLOCKERS.md.j2", view)
    (Path(ctx.workspace) / DELIVERY_FILE).unlink(missing_ok=True)
    ctx.record({"scopeflow.report.kind": "blockers", "scopeflow.report.blockers": len(blockers),
                **req.span_attributes(view["requirements"]["counts"])})
    return {"report": {**written, "outcome": "blocked", "blockers": [b.summary() for b in blockers],
                       "requirements": view["requirements"]["counts"],
                       "credentials": credentials_summary(view["credentials"])}}
