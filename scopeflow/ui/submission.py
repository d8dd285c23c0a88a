"""Submitting a scope from the web: read and validate the form, start a delivery instance.

Shared by the submit page and ``POST /api/v1/instances`` so both refuse the same bad input with
the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers.scope import ScopeError, analyze, describe
from scopeflow.handlers.serde import to_data
from scopeflow.lifecycle import MAX_SCOPE_BYTES, MODEL, ScopeRejected, decode_scope, read_scope
from scopeflow.processes.catalog import CatalogError

TITLE_MAX = 300


@dataclass
class Submission:
    """A validated submission, or the field errors that stop it (field name → message)."""

    title: str = ""
    scope: str = ""
    options: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def start_options(engine: Any) -> dict[str, dict[str, Any]]:
    """The delivery start form's settable integer options (name → schema), e.g. revision limits."""
    try:
        catalog = engine.catalog()
        schema = catalog.form(catalog.process(MODEL).start_form or "") or {}
    except (CatalogError, ValueError):
        return {}
    return {name: prop for name, prop in (schema.get("properties") or {}).items()
            if isinstance(prop, dict) and prop.get("type") == "integer" and not prop.get("readOnly")}


def _title_from(scope: str) -> str:
    return next((line.lstrip("#").strip() for line in scope.splitlines() if line.startswith("# ")), "")


def validate(title: str, scope: str | bytes | None, raw_options: dict[str, Any],
             allowed: dict[str, dict[str, Any]]) -> Submission:
    """Check every field; collect one message per bad field instead of stopping at the first."""
    out = Submission()
    if isinstance(scope, bytes):
        try:
            scope = decode_scope(scope)
        except ScopeRejected as exc:
            out.errors["scope"] = f"the uploaded file: {exc}"
            scope = ""
    scope = scope or ""
    if "scope" not in out.errors:
        try:
            out.scope = read_scope(scope)
        except ScopeRejected as exc:
            out.errors["scope"] = str(exc)
    title = (title or "").strip() or _title_from(scope)
    if len(title) > TITLE_MAX:
        out.errors["title"] = f"title is longer than {TITLE_MAX} characters"
    out.title = title[:TITLE_MAX] or "scope"
    for name, value in (raw_options or {}).items():
        if name not in allowed:
            out.errors[name] = f"unknown option {name!r}"
            continue
        if value in ("", None):
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            out.errors[name] = "must be a whole number"
            continue
        if number < allowed[name].get("minimum", 0) or number > 20:
            out.errors[name] = f"must be between {allowed[name].get('minimum', 0)} and 20"
            continue
        out.options[name] = number
    return out


def preview(scope: str) -> dict[str, Any]:
    """What the analyst reads from ``scope`` (no instance is started): spec data plus a one-line summary."""
    if len(scope.encode("utf-8", errors="replace")) > MAX_SCOPE_BYTES:
        return {"error": "scope is larger than 1 MB"}
    try:
        spec = analyze(scope)
    except ScopeError as exc:
        return {"error": str(exc)}
    return {"summary": describe(spec), "spec": to_data(spec)}


def start(engine: Any, submission: Submission, actor: str) -> str:
    """Start a delivery instance for a valid submission; returns its id."""
    return engine.start(MODEL, {"scope": submission.scope, **submission.options},
                        title=submission.title, actor=actor)
