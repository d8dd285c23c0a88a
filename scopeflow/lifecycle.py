"""``scopeflow submit``: carry one scope through the delivery lifecycle, headless.

With ``yes`` every approval and clarification is answered with its form's defaults (the proposed
answers); credentials never are — the credentials checkpoint's default is to *defer*, which ends
the run with a blocker plan and the buildable part delivered. Without ``yes`` the run stops at the
first human task and says how to answer it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scopeflow.engine import reads
from scopeflow.engine.people import YES_POLICY
from scopeflow.engine.service import Engine, EngineError

MODEL = "delivery"
MAX_SCOPE_BYTES = 1_000_000
MAX_TIMER_WAIT_S = 120.0


class ScopeRejected(EngineError):
    """The scope cannot be submitted at all (empty, too large): exit 2."""


@dataclass
class SubmitResult:
    instance_id: str
    status: str
    outcome: str
    workspace: str
    release: dict[str, Any] | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    blockers: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    report: str | None = None
    waiting_for: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""                      # why the run is not (yet) delivered; "" when it is
    sign_in: dict[str, str] | None = None  # the deployed app's account: username + the secret holding its password
    requirements: dict[str, int] = field(default_factory=dict)   # verdict counts of the report's matrix
    credentials: dict[str, Any] = field(default_factory=dict)    # names the built code reads; integrations not built


class NotUtf8(ScopeRejected):
    """The scope's bytes are not UTF-8 text; ``offset`` is the first byte that is not."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def decode_scope(data: bytes) -> str:
    """A scope file's bytes as text: UTF-8 (a leading BOM dropped). Anything else is refused, not
    guessed: replacing bad bytes turned a binary file into a scope of garbage that ran to a blocker."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotUtf8(f"scope is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                      exc.start) from None
    if "\x00" in text:
        raise ScopeRejected("scope is not text (it holds NUL bytes)")
    return text


def read_scope(text: str) -> str:
    if len(text.encode("utf-8")) > MAX_SCOPE_BYTES:
        raise ScopeRejected("scope is larger than 1 MB")
    if not text.strip():
        raise ScopeRejected("scope is empty")
    return text


def submit(engine: Engine, scope: str, *, yes: bool, secrets: dict[str, str] | None = None,
           actor: str = "cli", progress: Callable[[str], None] = lambda line: None,
           start_data: dict[str, Any] | None = None) -> SubmitResult:
    scope = read_scope(scope)
    for name, value in (secrets or {}).items():
        engine.secrets.set(name, value, actor=actor)
    title = next((line.lstrip("#").strip() for line in scope.splitlines() if line.startswith("# ")), "scope")
    shown: set[str] = set()
    instance_id = engine.start(MODEL, {"scope": scope, **(start_data or {})}, actor=actor, title=title)
    _report_progress(engine, instance_id, shown, progress)
    while True:
        row = reads.instance(engine.sessions, instance_id, open_tasks=True)
        if row["status"] != "waiting":
            break
        open_tasks = row["tasks"]
        if open_tasks:
            if not yes:
                break
            task = open_tasks[0]
            progress(f"  answering '{task['name']}' with its defaults (--yes)")
            engine.complete_task(task["id"], {}, actor=actor, policy=YES_POLICY)
        elif row["wake_at"] is not None:
            wait = (datetime.fromisoformat(row["wake_at"]).timestamp() - time.time())
            if wait > MAX_TIMER_WAIT_S:
                break
            time.sleep(max(0.0, wait) + 0.05)
            engine.advance(instance_id, reason="timer")
        else:
            break
        _report_progress(engine, instance_id, shown, progress)
    return _result(engine, instance_id)


def _unwrap(value: Any, key: str) -> dict[str, Any]:
    """Operators return ``{key: {...}}`` into a result variable of the same name."""
    if isinstance(value, dict) and isinstance(value.get(key), dict):
        return value[key]
    return value if isinstance(value, dict) else {}


def _report_progress(engine: Engine, instance_id: str, shown: set[str], progress: Callable[[str], None]) -> None:
    for span in reads.stored_spans(engine.sessions, instance_id):
        if span.attributes.get("scopeflow.span.type") != "bpmn.task" or span.span_id in shown:
            continue
        shown.add(span.span_id)
        element_type = span.attributes.get("scopeflow.bpmn.element.type", "")
        if element_type not in ("serviceTask", "userTask", "callActivity"):
            continue
        mark = "✗" if span.status == "ERROR" else "✓"
        measured = {k.split(".", 1)[1]: v for k, v in span.attributes.items()
                    if k in ("scopeflow.tests.passed", "scopeflow.tests.failed", "scopeflow.lint.errors",
                             "scopeflow.security.high", "scopeflow.human.actor", "scopeflow.failure.kind")}
        extra = "  " + " ".join(f"{k}={v}" for k, v in measured.items()) if measured else ""
        if span.status == "ERROR" and span.status_message:   # say why, not only that it failed
            extra += f"  — {span.status_message}"
        progress(f"{mark} {span.name} ({(span.end_ns - span.start_ns) / 1e9:.1f}s){extra}")


def _result(engine: Engine, instance_id: str) -> SubmitResult:
    row = reads.instance(engine.sessions, instance_id, open_tasks=True)
    data = reads.last_task_data(engine.sessions, instance_id)
    report = _unwrap(data.get("report"), "report")
    verification = data.get("verification") or {}
    checks = verification.get("checks") if isinstance(verification, dict) else None
    checks = checks or {}
    analysis = data.get("analysis") or {}
    waiting = row["tasks"]
    workspace = engine.workspace(instance_id)
    report_path = report.get("path") if isinstance(report, dict) else None
    status = row["status"]
    outcome = {"completed": "delivered", "blocked": "blocked"}.get(status, status)
    blockers = report.get("blockers", []) if isinstance(report, dict) else []
    release_data = data.get("release") if isinstance(data.get("release"), dict) else {}
    sign_in = release_data.get("sign_in") if isinstance(release_data.get("sign_in"), dict) else None
    return SubmitResult(
        instance_id=instance_id, status=status, outcome=outcome, workspace=str(workspace),
        release=_unwrap(data.get("release"), "release") or None,
        checks={"tests_passed": checks.get("tests_passed"), "tests_failed": checks.get("tests_failed"),
                "lint_errors": checks.get("lint_errors"), "security_high": checks.get("security_high")},
        blockers=blockers,
        questions=analysis.get("questions", []) if isinstance(analysis, dict) else [],
        report=str(Path(workspace) / report_path) if report_path else None,
        waiting_for=waiting,
        reason=_reason(row, blockers, waiting),
        sign_in=sign_in if status == "completed" else None,
        requirements=report.get("requirements", {}) if isinstance(report, dict) else {},
        credentials=report.get("credentials", {}) if isinstance(report, dict) else {},
    )


def _reason(row: dict[str, Any], blockers: list[dict[str, Any]], waiting: list[dict[str, Any]]) -> str:
    """One line saying why a run is not delivered (what --json callers and scripts read)."""
    status = row["status"]
    if status == "completed":
        return ""
    if status == "blocked":
        return "; ".join(f"{b.get('stage')}: {b.get('message')}" for b in blockers) or "blocked"
    if status == "error":
        incident = row["incident"] or {}
        return f"incident at {incident.get('bpmn_id')}: {incident.get('message', '')}"
    if waiting:
        return "waiting for " + ", ".join(f"{t['role']}: {t['name']}" for t in waiting)
    return status
