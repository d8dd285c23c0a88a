"""HTML forms from a task's JSON schema, and posted form fields back to JSON data.

Supported property shapes: string (textarea when the description or name suggests prose), integer,
number, boolean (checkbox), enum (select), and objects whose ``additionalProperties`` are strings —
rendered as name/value rows; when those values are ``x-secret`` the value inputs are password
fields and nothing posted is ever echoed back. Anything else is edited as JSON text.
Posted names: ``f.<prop>`` for scalars, ``f.<prop>.key`` / ``f.<prop>.value`` lists for maps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from werkzeug.datastructures import MultiDict

from scopeflow.engine.answers import is_secret, is_string_map

MAP_ROWS = 3


@dataclass
class FormField:
    name: str
    kind: str                       # text | password | integer | number | boolean | enum | choice | map | secret_map | json
    title: str
    description: str = ""
    required: bool = False
    value: Any = None
    options: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)   # (key, value) for map kinds
    placeholders: dict[str, str] = field(default_factory=dict)  # map key → hint (e.g. a question's default)
    error: str = ""


def _kind(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    if "enum" in prop:
        # x-explicit: a consequential choice is never preselected (radio buttons, none checked)
        return "choice" if prop.get("x-explicit") else "enum"
    if is_string_map(prop):
        return "secret_map" if is_secret(prop) else "map"
    if kind in ("integer", "number", "boolean"):
        return kind
    if kind == "string":
        return "password" if prop.get("format") == "password" or prop.get("x-secret") else "text"
    return "json"


def build_fields(schema: dict[str, Any], values: dict[str, Any] | None = None,
                 map_keys: dict[str, dict[str, str]] | None = None) -> list[FormField]:
    """One FormField per writable property, prefilled from ``values`` or the schema defaults.

    ``map_keys`` proposes row names for map properties (e.g. question ids → their default answers).
    Secret values are never prefilled.
    """
    values = values or {}
    required = set(schema.get("required") or [])
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or prop.get("readOnly"):
            continue
        kind = _kind(prop)
        value = values.get(name) if kind == "choice" else values.get(name, prop.get("default"))
        item = FormField(name=name, kind=kind, title=prop.get("title") or name,
                         description=prop.get("description", ""), required=name in required,
                         options=[str(o) for o in prop.get("enum", [])])
        if kind in ("map", "secret_map"):
            proposed = (map_keys or {}).get(name, {})
            current = value if isinstance(value, dict) and kind == "map" else {}
            keys = list(dict.fromkeys([*proposed, *current]))
            item.rows = [(k, "" if kind == "secret_map" else str(current.get(k, ""))) for k in keys]
            item.rows += [("", "")] * max(1, MAP_ROWS - len(item.rows)) if not keys else [("", "")]
            item.placeholders = dict(proposed)
        elif kind == "json":
            item.value = json.dumps(value, indent=2) if value is not None else ""
        else:
            item.value = value
        out.append(item)
    return out


def _scalar(kind: str, raw: str, name: str) -> Any:
    if kind == "integer":
        return int(raw)
    if kind == "number":
        number = float(raw)
        return int(number) if number.is_integer() else number
    if kind == "json":
        return json.loads(raw)
    return raw


def parse_form(schema: dict[str, Any], form: MultiDict,
               map_keys: dict[str, dict[str, str]] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(data, field errors) from posted fields; the data is then validated against the schema."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    fields = {item.name: item for item in build_fields(schema, {}, map_keys)}
    for item in fields.values():
        key = f"f.{item.name}"
        if item.kind == "boolean":
            if form.get(f"{key}.present"):
                data[item.name] = form.get(key) in ("on", "true", "1")
            continue
        if item.kind in ("map", "secret_map"):
            names, values = form.getlist(f"{key}.key"), form.getlist(f"{key}.value")
            pairs = {n.strip(): v for n, v in zip(names, values, strict=False) if n.strip() and v != ""}
            if any(not n.strip() and v for n, v in zip(names, values, strict=False)):
                errors[item.name] = "every value needs a name"
            data[item.name] = pairs
            continue
        raw = form.get(key)
        if raw is None or (raw == "" and item.kind not in ("text", "password", "enum", "choice")):
            continue
        try:
            data[item.name] = _scalar(item.kind, raw, item.name)
        except (ValueError, json.JSONDecodeError):
            errors[item.name] = {"integer": "must be a whole number", "number": "must be a number"}.get(
                item.kind, "must be valid JSON")
    for problem in Draft202012Validator(schema).iter_errors(data):
        where = str(problem.absolute_path[0]) if problem.absolute_path else _missing_field(problem)
        errors.setdefault(where, _in_words(problem, fields.get(where)))
    return data, errors


def _in_words(problem: Any, item: FormField | None) -> str:
    """jsonschema's message, said the way a person filling the form needs it."""
    if problem.validator == "required" and item is not None:
        return "choose one of: " + ", ".join(item.options) if item.options else "this field is required"
    if problem.validator == "pattern" and item is not None and item.kind in ("map", "secret_map"):
        return f"{problem.instance!r} is not a usable name: letters, digits and underscores, not starting with a digit"
    if problem.validator == "minProperties" and item is not None and item.kind in ("map", "secret_map"):
        names = [k for k, _ in item.rows if k]
        return f"enter a value for {', '.join(names)}" if names else "enter at least one name and value"
    return problem.message


def _missing_field(problem: Any) -> str:
    if problem.validator == "required":
        missing = [name for name in problem.validator_value if name not in (problem.instance or {})]
        return missing[0] if missing else "(form)"
    return "(form)"


def safe_echo(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without secret values, for re-rendering a form after an error."""
    props = schema.get("properties") or {}
    return {k: v for k, v in data.items() if not (isinstance(props.get(k), dict) and is_secret(props[k]))}
