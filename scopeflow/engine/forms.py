"""Form data as the engine accepts it: JSON Schema defaults filled in, validated, and ``x-secret``
fields taken out (their values go to the secret store, the task data keeps only their names)."""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator

from scopeflow.engine.errors import EngineError


def validate(schema: dict[str, Any], data: dict[str, Any], what: str) -> None:
    """Refuse ``data`` with the first problem (by path), so the message names one field to fix."""
    validator = Draft202012Validator(schema)
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        first = problems[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(root)"
        raise EngineError(f"{what} is invalid at {where}: {first.message}")


def with_defaults(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with the schema's top-level defaults for the fields it leaves out."""
    out = copy.deepcopy(data)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


def split_secrets(schema: dict[str, Any], data: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Take ``x-secret`` fields out of the data (their values go to the secret store only)."""
    secrets: dict[str, str] = {}
    clean = dict(data)
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or key not in clean:
            continue
        if prop.get("x-secret"):
            value = clean.pop(key)
            if isinstance(value, dict):
                secrets.update({str(k): str(v) for k, v in value.items() if v})
                clean[key] = sorted(str(k) for k, v in value.items() if v)
            elif value:
                secrets[key] = str(value)
        elif prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict) \
                and prop["additionalProperties"].get("x-secret") and isinstance(clean[key], dict):
            value = clean.pop(key)
            secrets.update({str(k): str(v) for k, v in value.items() if v})
            clean[key] = sorted(str(k) for k, v in value.items() if v)
    return secrets, clean
