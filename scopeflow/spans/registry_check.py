"""Read the Weaver-style attribute registry (``registry/scopeflow.yaml``) and check spans against it.

A span's type is its ``scopeflow.span.type`` attribute; the registry group ``span.scopeflow.<type>``
lists the attributes such a span must carry (``requirement_level: required``) and its span kind.
:func:`check_spans` reports, per span: an unknown type, a missing required attribute, a declared
attribute with a value of the wrong type, and a span kind other than the group's. Spans without a
``scopeflow.span.type`` (other libraries' spans) are not checked. :func:`undeclared_attributes`
lists ``scopeflow.*`` keys the registry does not declare (what Weaver's live-check would flag).

An attribute of Weaver's template type (``type: template[string]``, ``template[any]``, …) declares a
family of keys: its id is a prefix, and ``<id>.<suffix>`` is declared by it and type-checked against
its inner type (``scopeflow.human.data`` declares ``scopeflow.human.data.review_decision.decision``).
The bare template id is not itself a declared key. A template ref marked ``required`` in a span
group is met by any key the template declares (a key with its own entry belongs to that entry).

References (``ref:``) to ids outside ``scopeflow.*`` point at the OpenTelemetry registry (``gen_ai.*``)
and are accepted unresolved; an unresolved ``scopeflow.*`` reference is a :class:`RegistryError`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scopeflow.spans import semconv
from scopeflow.spans.record import SpanRecord

DEFAULT_REGISTRY = Path(__file__).parent / "registry" / "scopeflow.yaml"
SPAN_GROUP_PREFIX = "span.scopeflow."
OWN_PREFIX = "scopeflow."
SPAN_KINDS = ("internal", "server", "client", "producer", "consumer")
SCALAR_TYPES = ("string", "int", "double", "boolean")
# Weaver's simple types: the scalars, their arrays, and ``any`` (any valid attribute value).
SIMPLE_TYPES = (*SCALAR_TYPES, *(f"{t}[]" for t in SCALAR_TYPES), "any")
TEMPLATE_OPEN, TEMPLATE_CLOSE = "template[", "]"


class RegistryError(ValueError):
    """The registry file is unreadable or inconsistent; one line."""


@dataclass(frozen=True)
class AttributeDef:
    id: str
    type: str                       # a SIMPLE_TYPES entry, template[<simple type>], or enum
    brief: str
    stability: str
    members: tuple[str, ...] = ()   # allowed values, for enum attributes

    @property
    def is_template(self) -> bool:
        """Whether the id is a prefix declaring the keys ``<id>.<suffix>`` rather than one key."""
        return self.type.startswith(TEMPLATE_OPEN)

    @property
    def value_type(self) -> str:
        """The type each value must have: the template's inner type, else the type itself."""
        return self.type[len(TEMPLATE_OPEN):-len(TEMPLATE_CLOSE)] if self.is_template else self.type


@dataclass(frozen=True)
class SpanGroup:
    id: str                         # span.scopeflow.<span type>
    span_type: str
    span_kind: str                  # as in SpanRecord.kind: INTERNAL, CLIENT, …
    required: frozenset[str]
    optional: frozenset[str]        # recommended, opt-in and conditionally required


@dataclass(frozen=True)
class Registry:
    attributes: dict[str, AttributeDef]
    spans: dict[str, SpanGroup]     # by span type

    def lookup(self, key: str) -> AttributeDef | None:
        """The definition declaring ``key``: its own entry, else the longest template it lies under."""
        exact = self.attributes.get(key)
        if exact is not None and not exact.is_template:
            return exact
        families = [a for a in self.attributes.values() if a.is_template and key.startswith(a.id + ".")]
        return max(families, key=lambda a: len(a.id), default=None)

    def carries(self, attributes: dict[str, Any], ref: str) -> bool:
        """Whether a span's attributes satisfy a span group's ``ref`` (for a template: a key it declares)."""
        definition = self.attributes.get(ref)
        if definition is None or not definition.is_template:
            return ref in attributes
        return any(self.lookup(key) is definition for key in attributes)


@functools.cache
def load_registry(path: Path = DEFAULT_REGISTRY) -> Registry:
    """Parse and cross-check the registry file (cached per path)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read registry ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list):
        raise RegistryError(f"{path}: expected a top-level 'groups' list")
    attributes: dict[str, AttributeDef] = {}
    span_groups = []
    for group in groups:
        _require(isinstance(group, dict) and "id" in group and "type" in group, path, "a group without id/type")
        if group["type"] == "attribute_group":
            for raw in group.get("attributes", []):
                attribute = _attribute(raw, path)
                _require(attribute.id not in attributes, path, f"attribute {attribute.id} declared twice")
                attributes[attribute.id] = attribute
        elif group["type"] == "span":
            span_groups.append(group)
    spans = {g.span_type: g for g in (_span_group(raw, attributes, path) for raw in span_groups)}
    _check_span_types(attributes, spans, path)
    return Registry(attributes, spans)


def _require(condition: bool, path: Path, problem: str) -> None:
    if not condition:
        raise RegistryError(f"{Path(path).name}: {problem}")


def _attribute(raw: Any, path: Path) -> AttributeDef:
    _require(isinstance(raw, dict) and isinstance(raw.get("id"), str), path, f"attribute without an id: {raw!r}")
    type_ = raw.get("type")
    members: tuple[str, ...] = ()
    if isinstance(type_, dict):
        raw_members = type_.get("members")
        _require(isinstance(raw_members, list) and bool(raw_members)
                 and all(isinstance(m, dict) and "value" in m for m in raw_members),
                 path, f"attribute {raw['id']}: enum type needs members, each with a value")
        members = tuple(str(m["value"]) for m in raw_members)
        type_ = "enum"
    _require(isinstance(type_, str), path, f"attribute {raw['id']}: missing type")
    _require(type_ == "enum" or _known_type(type_), path,
             f"attribute {raw['id']}: unknown type {type_!r} (expected one of {', '.join(SIMPLE_TYPES)}, "
             "template[<one of those>] or an enum)")
    for key in ("brief", "stability"):
        _require(isinstance(raw.get(key), str), path, f"attribute {raw['id']}: missing {key}")
    return AttributeDef(raw["id"], type_, raw["brief"], raw["stability"], members)


def _known_type(type_: str) -> bool:
    if type_.startswith(TEMPLATE_OPEN) and type_.endswith(TEMPLATE_CLOSE):
        type_ = type_[len(TEMPLATE_OPEN):-len(TEMPLATE_CLOSE)]
    return type_ in SIMPLE_TYPES


def _span_group(raw: dict[str, Any], attributes: dict[str, AttributeDef], path: Path) -> SpanGroup:
    group_id = raw["id"]
    _require(group_id.startswith(SPAN_GROUP_PREFIX), path, f"span group {group_id} must be named {SPAN_GROUP_PREFIX}<type>")
    kind = raw.get("span_kind")
    _require(kind in SPAN_KINDS, path, f"span group {group_id}: span_kind must be one of {', '.join(SPAN_KINDS)}")
    required, optional = set(), set()
    for entry in raw.get("attributes", []):
        ref = entry.get("ref") if isinstance(entry, dict) else None
        _require(isinstance(ref, str), path, f"span group {group_id}: attributes must be refs")
        _require(ref in attributes or not ref.startswith(OWN_PREFIX), path,
                 f"span group {group_id}: ref {ref} is not declared")
        (required if entry.get("requirement_level") == "required" else optional).add(ref)
    return SpanGroup(group_id, group_id[len(SPAN_GROUP_PREFIX):], kind.upper(), frozenset(required), frozenset(optional))


def _check_span_types(attributes: dict[str, AttributeDef], spans: dict[str, SpanGroup], path: Path) -> None:
    declared = attributes.get(semconv.SPAN_TYPE)
    _require(declared is not None, path, f"attribute {semconv.SPAN_TYPE} is not declared")
    members = set(declared.members) if declared else set()
    _require(members == set(spans), path,
             f"{semconv.SPAN_TYPE} members {sorted(members)} differ from span groups {sorted(spans)}")


def required_attributes(span_type: str, registry: Registry | None = None) -> set[str]:
    """Attributes a span of ``span_type`` must carry; an unknown type is a RegistryError."""
    registry = registry or load_registry()
    if span_type not in registry.spans:
        raise RegistryError(f"unknown span type {span_type!r}; known: {', '.join(sorted(registry.spans))}")
    return set(registry.spans[span_type].required)


def check_spans(spans: list[SpanRecord], registry: Registry | None = None) -> list[str]:
    """One message per problem found on typed spans (see the module docstring)."""
    registry = registry or load_registry()
    problems: list[str] = []
    for span in spans:
        span_type = span.attributes.get(semconv.SPAN_TYPE)
        if span_type is None:
            continue
        where = f"span {span.span_id} ({span.name!r}, type {span_type})"
        group = registry.spans.get(span_type) if isinstance(span_type, str) else None
        if group is None:
            problems.append(f"span {span.span_id} ({span.name!r}): unknown {semconv.SPAN_TYPE} {span_type!r}")
            continue
        missing = sorted(ref for ref in group.required if not registry.carries(span.attributes, ref))
        if missing:
            problems.append(f"{where}: missing required attribute(s) {', '.join(missing)}")
        if span.kind != group.span_kind:
            problems.append(f"{where}: span kind {span.kind}, expected {group.span_kind}")
        problems += [f"{where}: {p}" for p in _value_problems(span.attributes, registry)]
    return problems


def undeclared_attributes(spans: list[SpanRecord], registry: Registry | None = None) -> set[str]:
    """``scopeflow.*`` attribute keys on these spans that the registry does not declare.

    A key under a template attribute's id (``<id>.<suffix>``) counts as declared.
    """
    registry = registry or load_registry()
    keys = {key for span in spans for key in span.attributes if key.startswith(OWN_PREFIX)}
    return {key for key in keys if registry.lookup(key) is None}


def _value_problems(attributes: dict[str, Any], registry: Registry) -> list[str]:
    problems = []
    for key, value in attributes.items():
        definition = registry.lookup(key)
        if definition is not None and not _has_type(value, definition):
            expected = f"one of {', '.join(definition.members)}" if definition.members else definition.value_type
            problems.append(f"attribute {key} is {value!r}, expected {expected}")
    return problems


_SCALAR_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _has_type(value: Any, definition: AttributeDef) -> bool:
    type_ = definition.value_type
    if type_ == "enum":
        return value in definition.members
    if type_ == "any":
        return _is_attribute_value(value)
    if type_.endswith("[]"):
        check = _SCALAR_CHECKS.get(type_[:-2])
        return check is not None and isinstance(value, list | tuple) and all(check(v) for v in value)
    check = _SCALAR_CHECKS.get(type_)
    return check is not None and check(value)


def _is_attribute_value(value: Any) -> bool:
    """An OpenTelemetry attribute value: a scalar, or a list of scalars of one type."""
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list | tuple) and len({type(v) for v in value}) <= 1 \
        and all(isinstance(v, str | bool | int | float) for v in value)
