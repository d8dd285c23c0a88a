"""The nouns of the recipe library: a recognised :class:`Recipe` and a :class:`Miss`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recipe:
    """One feature recipe the flask_app pack renders for one requirement of the scope."""

    kind: str                      # filter | sort | constraint | roles | board | chart | reminder | notify
    name: str                      # URL-safe, unique per entity: overdue, by-status, due-on-after-lent-on
    entity: str                    # Entity.name it works on
    matched: list[str] = field(default_factory=list)     # the words of the line that triggered it
    params: dict[str, Any] = field(default_factory=dict)  # fields, operator, aggregate, …
    requirement: str = ""          # id of the requirement it realises (R-n)
    subject: str = ""              # that requirement's subject (feature:N / constraint:N)
    table: str = ""                # the entity's table, filled in by recipes.find
    text: str = ""                 # the scope line as written, filled in by recipes.find
    assumption: str = ""           # what the matcher guessed that the line does not say (its verdict is "assumed")

    @property
    def slug(self) -> str:
        """A Python identifier naming this recipe in generated code and test names."""
        return f"{self.kind}_{self.table}_{self.name}".replace("-", "_")


@dataclass
class Miss:
    """Trigger words of a recipe were found, but the spec lacks what the recipe needs."""

    kind: str
    matched: list[str]
    reason: str
    requirement: str = ""
    subject: str = ""
    partial: bool = False          # other recipes build the rest of the same line
