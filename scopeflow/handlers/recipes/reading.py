"""How one scope line names entities and fields: the words the recipe matchers share.

Matching is by words, singular and case-insensitive: a field is named by the words of its label
and name (``due_on`` is named by "due"), an entity by the words of its label or its name.
"""

from __future__ import annotations

from scopeflow.handlers import naming
from scopeflow.handlers.spec import Entity, Field, Spec

DATE_TYPES = ("date", "datetime")
NUMBER_TYPES = ("integer", "decimal")
# Boolean fields that mean "this row is finished": finished rows are never overdue or upcoming.
_DONE_WORDS = {"done", "returned", "completed", "complete", "closed", "paid", "finished", "resolved",
               "archived", "cancelled", "canceled", "delivered", "watered"}
# Words of a field name that say nothing about which date it is.
_GENERIC_FIELD_WORDS = {"on", "at", "date", "time", "day", "the", "of"}


def words_of(text: str) -> list[str]:
    return [w.lower() for w in naming.ascii_words(text)]


def field_stems(f: Field) -> set[str]:
    """The words that name a field in prose (``due_on`` → ``due``; ``average_rating`` → both)."""
    words = {naming.singular(w).lower() for w in naming.ascii_words(f.label) + f.name.split("_")}
    return (words - _GENERIC_FIELD_WORDS) or words


def entities_in(text: str, spec: Spec) -> list[Entity]:
    """Every entity the line names, in spec order."""
    keys = {naming.singular(w) for w in words_of(text)}
    found = []
    for entity in spec.entities:
        entity_words = {naming.singular(w).lower() for w in naming.ascii_words(entity.label)} | {
            naming.lookup_key(entity.name)}
        if entity_words & keys or naming.lookup_key(entity.label) in keys:
            found.append(entity)
    return found


def entity_in(text: str, spec: Spec, default: str | None) -> Entity | None:
    """The entity the line names (the first in spec order), else ``default``."""
    named = entities_in(text, spec)
    return named[0] if named else (spec.entity(default) if default else None)


def fields_named(text: str, entity: Entity, types: tuple[str, ...]) -> list[tuple[int, Field]]:
    """Fields of ``types`` whose name words occur in ``text``, with the position of the first hit."""
    words = [naming.singular(w) for w in words_of(text)]
    found = []
    for f in entity.fields:
        if f.type not in types:
            continue
        hits = [i for i, w in enumerate(words) if w in field_stems(f)]
        if hits:
            found.append((hits[0], f))
    return sorted(found, key=lambda pair: pair[0])


def done_field(entity: Entity) -> str | None:
    return next((f.name for f in entity.fields if f.type == "boolean" and set(f.name.split("_")) & _DONE_WORDS),
                None)


def date_field(text: str, entity: Entity) -> Field | None:
    named = fields_named(text, entity, DATE_TYPES)
    if named:
        return named[0][1]
    dates = [f for f in entity.fields if f.type in DATE_TYPES]
    due = [f for f in dates if "due" in f.name or "deadline" in f.name or "next" in f.name]
    return (due or dates or [None])[0]
