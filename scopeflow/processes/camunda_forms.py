"""Camunda 7 generated forms (``camunda:formData``) as the JSON Schema forms Scopeflow shows.

A designer in Camunda Modeler draws a user task's or start event's fields in the diagram itself
(``camunda:formField`` with a type, a label, a default and validation constraints). Skipping them
would complete the task with no data, so each such form becomes an *inline form*: a schema kept
with the element, named ``camunda:formData#<file>#<element id>`` where a file in ``forms/`` would
be named. The diagram file holds the fields, so the model version's content hash covers them.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

INLINE = "camunda:formData#"

_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "long": {"type": "integer"},
    "boolean": {"type": "boolean"},
    # Camunda's date fields hold text in the field's datePattern (dd/MM/yyyy unless it says otherwise).
    "date": {"type": "string"},
    "enum": {"type": "string"},
}


def inline_name(path: str, element_id: str) -> str:
    return f"{INLINE}{path}#{element_id}"


def is_inline(name: str) -> bool:
    return name.startswith(INLINE)


def split_inline(name: str) -> tuple[str, str]:
    """(file, element id) of an inline form's name."""
    path, _, element_id = name.removeprefix(INLINE).rpartition("#")
    return path, element_id


def _camunda(el: etree._Element, path: str) -> str:
    """``path`` (slash-separated local names) in the Camunda namespace ``el`` is written in."""
    namespace = etree.QName(el).namespace
    return "/".join(f"{{{namespace}}}{part}" for part in path.split("/"))


def schema_of(form: etree._Element, title: str = "") -> dict[str, Any]:
    """The JSON Schema of one ``camunda:formData`` (fields in the order drawn)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in form.iterfind(_camunda(form, "formField")):
        name = (field.get("id") or "").strip()
        if not name:
            continue
        prop, needed = _field(field)
        properties[name] = prop
        if needed:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if title:
        schema["title"] = title
    if required:
        schema["required"] = required
    return schema


def _field(field: etree._Element) -> tuple[dict[str, Any], bool]:
    kind = (field.get("type") or "string").strip()
    prop = dict(_TYPES.get(kind, {"type": "string"}))
    if field.get("label"):
        prop["title"] = field.get("label")
    if kind == "date":
        prop["description"] = f"a date as {field.get('datePattern') or 'dd/MM/yyyy'}"
    if kind == "enum":
        values = [v.get("id") for v in field.iterfind(_camunda(field, "value")) if v.get("id")]
        if values:
            prop["enum"] = values
    default = _default(kind, field.get("defaultValue"))
    if default is not None:
        prop["default"] = default
    needed = False
    for constraint in field.iterfind(_camunda(field, "validation/constraint")):
        needed = _constrain(prop, (constraint.get("name") or "").strip(), constraint.get("config")) or needed
    return prop, needed


def _default(kind: str, text: str | None) -> Any:
    """The field's default as its type's value; an expression (``${...}``) has none here."""
    if text is None or text.strip().startswith(("${", "#{")):
        return None
    if kind == "long":
        try:
            return int(text.strip())
        except ValueError:
            return None
    if kind == "boolean":
        return text.strip().lower() == "true"
    return text


def _constrain(prop: dict[str, Any], name: str, config: str | None) -> bool:
    """Apply one validation constraint; True when it makes the field required."""
    if name == "required":
        return True
    if name == "readonly":
        prop["readOnly"] = True
        return False
    keyword = {"minlength": "minLength", "maxlength": "maxLength", "min": "minimum", "max": "maximum"}.get(name)
    if keyword and config is not None:
        try:
            number = float(config)
        except ValueError:
            return False
        prop[keyword] = int(number) if keyword.endswith("Length") or number.is_integer() else number
    return False


_CONSTRAINTS = {"required", "readonly", "minlength", "maxlength", "min", "max"}


def not_carried_over(form: etree._Element) -> list[str]:
    """What of a ``camunda:formData`` the schema cannot hold (lint names each, as a warning)."""
    out = []
    for field in form.iterfind(_camunda(form, "formField")):
        name = field.get("id") or "?"
        kind = (field.get("type") or "string").strip()
        if kind not in _TYPES:
            out.append(f"field {name}: type {kind} is shown as text")
        if (field.get("defaultValue") or "").strip().startswith(("${", "#{")):
            out.append(f"field {name}: the default is an expression, which Scopeflow does not evaluate")
        for constraint in field.iterfind(_camunda(field, "validation/constraint")):
            if (constraint.get("name") or "").strip() not in _CONSTRAINTS:
                out.append(f"field {name}: constraint {constraint.get('name')} is not checked")
    return out
