"""The compact form of a spec the scope corpus compares against (``tests/scope_corpus/*.json``).

A field reads like the scope format: ``text required unique min=1 max=200 default=x``,
``choice:a|b``, ``->Author``. Features are their kind, or ``not built`` when no template builds them.
"""

from __future__ import annotations

from typing import Any

from scopeflow.handlers.spec import Field, Spec


def field_text(f: Field) -> str:
    parts = ["choice:" + "|".join(f.choices) if f.type == "choice"
             else f"->{f.reference}" if f.type == "reference" else f.type]
    parts += [word for word, on in (("required", f.required), ("unique", f.unique)) if on]
    if f.default is not None:
        parts.append(f"default={f.default}")
    for word, value in (("min", f.minimum), ("max", f.maximum)):
        if value is not None:
            parts.append(f"{word}={value:g}")
    return " ".join(parts)


def compact(spec: Spec, unmapped: list[int]) -> dict[str, Any]:
    return {
        "title": spec.title,
        "entities": {e.name: {f.name: field_text(f) for f in e.fields} for e in spec.entities},
        "features": [f.kind if f.buildable else "not built" for f in spec.features],
        "integrations": {i.name: i.credentials for i in spec.integrations},
        "constraints": len(spec.constraints),
        "assumed": sorted(r.subject for r in spec.requirements if r.status == "assumed"),
        "not_understood": sorted(r.line for r in spec.requirements if r.status == "not understood"),
        "unmapped_lines": unmapped,
    }
