"""The ``Spec``: what the scope analyst understood a scope to ask for.

It is the first typed object of the lifecycle (scope → **spec** → plan → files → checks → …).
Names are split in two everywhere: ``name`` is a safe ASCII identifier used in generated code, and
``label`` is what the person wrote (unicode kept), used in generated pages (always escaped there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers.requirements import Requirement
from scopeflow.handlers.serde import from_data, to_data

FIELD_TYPES = (
    "text", "long_text", "integer", "decimal", "boolean", "date", "datetime",
    "email", "url", "choice", "reference",
)
COMPLEXITY_CLASSES = ("simple", "medium", "complex", "monster")


@dataclass
class Field:
    name: str                      # snake_case ASCII identifier, never a Python/SQL keyword
    label: str                     # as written in the scope
    type: str                      # one of FIELD_TYPES
    required: bool = False
    unique: bool = False
    default: str | None = None     # as text; the builder converts it per type
    minimum: float | None = None   # number value, or text length for text types
    maximum: float | None = None
    choices: list[str] = field(default_factory=list)   # for type == "choice"
    reference: str | None = None   # Entity.name it points to, for type == "reference"


@dataclass
class Entity:
    name: str                      # PascalCase ASCII identifier (class name)
    label: str
    table: str                     # snake_case plural table / URL segment
    fields: list[Field] = field(default_factory=list)


@dataclass
class Feature:
    text: str                      # the feature as written
    kind: str                      # crud | search | export | login | api | health | custom
    buildable: bool                # can the offline templates build it?
    reason: str = ""               # why not, when not buildable
    entity: str | None = None      # the entity it is about, when known


@dataclass
class Integration:
    name: str                      # safe identifier
    label: str
    credentials: list[str] = field(default_factory=list)   # secret names it needs, e.g. STRIPE_API_KEY
    description: str = ""


@dataclass
class Question:
    id: str                        # stable, e.g. "q1"
    text: str
    default: str                   # the proposed answer used by ``--yes``
    topic: str = ""                # what it is about, e.g. "entity:Book" or "field:Book.title"


@dataclass
class Spec:
    title: str
    summary: str = ""
    entities: list[Entity] = field(default_factory=list)
    features: list[Feature] = field(default_factory=list)
    integrations: list[Integration] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    complexity: str = "simple"     # one of COMPLEXITY_CLASSES
    complexity_score: int = 0
    wants_login: bool = False
    # One per meaningful scope line or item, with its source line (see handlers/requirements.py).
    requirements: list[Requirement] = field(default_factory=list)

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"no entity {name!r} in spec")

    def to_data(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Spec:
        return from_data(cls, data)
