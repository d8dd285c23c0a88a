"""What an answer to a human task must hold beyond its form's schema, for every channel (the task
page, the JSON API and ``scopeflow tasks complete``): a credential task answered "provide" needs a
value for each credential the run reported missing, or the run comes back to the same question.

The names a task's map fields propose (the scope's question ids, the missing credential names) come
from the task data the delivery model's operators write; :func:`proposed_names` reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scopeflow.program import program

if TYPE_CHECKING:
    from scopeflow.engine.reads import Sessions, TaskRecord


def unwrap(value: Any, key: str) -> dict[str, Any]:
    """Operators return ``{key: {...}}`` into a variable of the same name; give the inner object."""
    if isinstance(value, dict) and isinstance(value.get(key), dict):
        return value[key]
    return value if isinstance(value, dict) else {}


def spec_of(data: dict[str, Any]) -> dict[str, Any]:
    """The spec in a task's data: its own variable, else the one inside the analysis."""
    analysis = unwrap(data.get("analysis"), "analysis")
    return unwrap(data.get("spec"), "spec") or unwrap(analysis.get("spec"), "spec")


def questions_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The scope's open questions (each a dict with an ``id`` and a ``default``)."""
    spec = unwrap(data.get("spec"), "spec")
    analysis = unwrap(data.get("analysis"), "analysis")
    return [q for q in (spec.get("questions") or analysis.get("questions") or []) if isinstance(q, dict)]


def missing_credentials(payload: Any) -> list[str]:
    """The credential names a configuration failure reported missing (its details' ``missing``)."""
    details = payload.get("details") if isinstance(payload, dict) else None
    missing = details.get("missing") if isinstance(details, dict) else None
    return [str(name) for name in missing] if isinstance(missing, list) else []


def proposed_names(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Row names a task's map fields propose: question ids (→ their defaults) for answer maps, the
    missing credential names (else every credential the spec's integrations name) for secret maps."""
    questions = {str(q.get("id")): str(q.get("default", "")) for q in questions_of(data) if q.get("id")}
    credentials = {name: "" for name in missing_credentials(data.get("error_payload"))} or \
        {name: "" for i in spec_of(data).get("integrations") or [] if isinstance(i, dict)
         for name in i.get("credentials") or []}
    return {"answers": questions, "values": credentials}


def is_secret(prop: dict[str, Any]) -> bool:
    """An ``x-secret`` property, or a map whose values are."""
    extra = prop.get("additionalProperties")
    return bool(prop.get("x-secret") or (isinstance(extra, dict) and extra.get("x-secret")))


def is_string_map(prop: dict[str, Any]) -> bool:
    """An object of free names to strings (edited as name/value rows)."""
    extra = prop.get("additionalProperties")
    return prop.get("type") == "object" and isinstance(extra, dict) and extra.get("type") == "string" \
        and not prop.get("properties")


def _secret_maps(schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties") or {}
    return [name for name, prop in props.items()
            if isinstance(prop, dict) and not prop.get("readOnly") and "enum" not in prop
            and is_string_map(prop) and is_secret(prop)]


def unanswered(schema: dict[str, Any], data: dict[str, Any], map_keys: dict[str, dict[str, str]],
               is_stored: Callable[[str], bool]) -> dict[str, str]:
    """Errors for secret maps that must be answered: one whose ``x-required-when`` matches the data
    (e.g. ``{"action": "provide"}``) needs a value for every proposed name (each missing credential)
    that is not stored already, and one answered in part needs the rest, or the run would come back
    to the same question. A name stored meanwhile (``scopeflow secrets set``) needs no value."""
    props = schema.get("properties") or {}
    errors = {}
    for name in _secret_maps(schema):
        given = data.get(name) if isinstance(data.get(name), dict) else {}
        when = props[name].get("x-required-when")
        required = isinstance(when, dict) and all(data.get(k) == v for k, v in when.items())
        if not (required or given):
            continue
        proposed = map_keys.get(name, {})
        missing = [k for k in proposed if k not in given and not is_stored(k)]
        if missing:
            errors[name] = (f"{'also ' if given else ''}enter a value for {', '.join(missing)} "
                            f"(or store it first with: {program()} secrets set NAME)")
        elif required and not given and not proposed:
            errors[name] = "enter at least one name and value"
    return errors


def unanswered_task(sessions: Sessions, task: TaskRecord, data: dict[str, Any],
                    is_stored: Callable[[str], bool]) -> dict[str, str]:
    """:func:`unanswered` for ``data`` as the answer to ``task``, with the names its data proposes
    (what the task page, the API and ``scopeflow tasks complete`` all check before completing)."""
    from scopeflow.engine import reads

    opened_with = reads.last_task_data(sessions, task.instance_id, task.spiff_task_id)
    return unanswered(task.form_schema, data, proposed_names(opened_with), is_stored)
