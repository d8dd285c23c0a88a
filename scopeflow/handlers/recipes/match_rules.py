"""Matchers of the recipes that guard data: row constraints and roles."""

from __future__ import annotations

import re
from typing import Any

from scopeflow.handlers import naming
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.recipes.reading import (
    DATE_TYPES,
    NUMBER_TYPES,
    done_field,
    entity_in,
    field_stems,
    fields_named,
    words_of,
)
from scopeflow.handlers.spec import FIELD_TYPES, Entity, Field, Spec

_AFTER = r"(?:after|later than|greater than|more than|larger than|exceeds?|above)"
_BEFORE = r"(?:before|earlier than|less than|smaller than|below)"
_COMPARE = re.compile(rf"\b(?P<op>(?:on or |at or )?{_AFTER}|(?:on or |at or )?{_BEFORE})\b", re.IGNORECASE)
_NOT_NEGATIVE = re.compile(r"\b(?P<noun>[a-z][\w ]*?)\s+(?:are|is|must|can|may|should)\s+(?:never|not|not be|"
                           r"never be|be)\s*(?P<rule>negative|positive|below zero|less than zero)\b", re.IGNORECASE)


def match_comparison(text: str, spec: Spec, entity_hint: str | None) -> Recipe | None:
    """``due date must be after the lent date``: two date or number fields of one entity compared."""
    m = _COMPARE.search(text)
    if m is None:
        return None
    for entity in ([e for e in [entity_in(text, spec, entity_hint)] if e] + list(spec.entities)):
        named = fields_named(text, entity, DATE_TYPES + NUMBER_TYPES)
        left = [f for pos, f in named if pos < _word_index(text, m.start())]
        right = [f for pos, f in named if pos >= _word_index(text, m.start())]
        if left and right and left[-1].name != right[0].name and \
                (left[-1].type in DATE_TYPES) == (right[0].type in DATE_TYPES):
            op = _operator(m["op"], negated=bool(_NEGATED.search(text[: m.start()])))
            negation = _NEGATED.search(text[: m.start()])
            said = words_of(text)
            return Recipe(kind="constraint", name=f"{left[-1].name}-{_OP_NAMES[op]}-{right[0].name}",
                          entity=entity.name,
                          matched=[said[_position(text, left[-1])], (negation[0] if negation else "") + m["op"],
                                   said[_position(text, right[0])]],
                          params={"rule": "compare", "left": left[-1].name, "op": op, "right": right[0].name,
                                  "left_type": left[-1].type})
    return None


_NEGATED = re.compile(r"\b(?:not|never|cannot|can't|mustn't)\s+(?:be\s+|fall\s+|lie\s+)?$", re.IGNORECASE)
_NEGATIONS = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


def _operator(words: str, negated: bool) -> str:
    """``after`` → ``>``, ``on or after`` → ``>=``, ``not before`` → ``>=`` …"""
    op = (">" if re.search(_AFTER, words, re.IGNORECASE) else "<") + (
        "=" if words.lower().startswith(("on or", "at or")) else "")
    return _NEGATIONS[op] if negated else op


_OP_NAMES = {">": "after", ">=": "not-before", "<": "before", "<=": "not-after"}


def _position(text: str, f: Field) -> int:
    """Index (in :func:`words_of`) of the first word of ``text`` naming field ``f``."""
    words = [naming.singular(w) for w in words_of(text)]
    return next(i for i, w in enumerate(words) if w in field_stems(f))


def _word_index(text: str, char: int) -> int:
    return len(words_of(text[:char]))


def match_not_negative(text: str, spec: Spec, entity_hint: str | None) -> Recipe | None:
    """``quantities are never negative`` / ``price must be positive``: a lower bound on number fields."""
    m = _NOT_NEGATIVE.search(text)
    if m is None:
        return None
    noun = {naming.singular(w) for w in words_of(m["noun"])}
    targets = [(e, f) for e in spec.entities for f in e.fields
               if f.type in NUMBER_TYPES and field_stems(f) & noun]
    if not targets:
        return None
    positive = m["rule"].lower() == "positive" and "never" not in m[0].lower() and "not" not in m[0].lower()
    first = targets[0][0]
    return Recipe(kind="constraint", name=f"{targets[0][1].name}-{'positive' if positive else 'not-negative'}",
                  entity=first.name, matched=[m[0]],
                  params={"rule": "bound", "strict": positive,
                          "targets": [{"entity": e.name, "table": e.table, "field": f.name} for e, f in targets]})


_CHANGE = r"(?:change|edit|add|create|delete|remove|modify|update|manage|write)"
_WRITERS = re.compile(rf"\bonly\s+(?:the\s+)?(?P<who>[a-z][\w -]*?)\s+(?:can|may|are allowed to|is allowed to)\s+"
                      rf"(?:(?:log|sign)\s?in\s+(?:to|and)\s+)?(?P<verb>{_CHANGE})\b(?P<what>[^.;,]*)", re.IGNORECASE)
_READERS = re.compile(r"\b(?P<who>[a-z][\w-]*)\s+(?:can|may)\s+only\s+(?:read|view|see|browse|look)\b|"
                      r"\b(?P<who2>[a-z][\w-]*)\s+(?:are|is|get)\s+read[- ]only\b", re.IGNORECASE)
_NOT_ROLE_WORDS = {"logged", "in", "authenticated", "signed", "registered", "user", "users", "people", "staff",
                   "one", "someone", "owner", "owners", "their", "own"}


def _role(words: str) -> str | None:
    """``librarians`` → ``librarian``; None for words that name no role (``logged-in users``)."""
    kept = [naming.singular(w) for w in words_of(words) if w not in _NOT_ROLE_WORDS]
    return "_".join(kept[-1:]) or None


def match_roles(text: str, spec: Spec, entity_hint: str | None) -> Recipe | None:
    """``only librarians can change anything, students can only read``: named roles, write vs read."""
    m = _WRITERS.search(text)
    if m is None:
        return None
    writer = _role(m["who"])
    if writer is None:
        return None
    reader_match = _READERS.search(text)
    reader = _role(reader_match["who"] or reader_match["who2"]) if reader_match else None
    target = entity_in(m["what"], spec, None) if not re.search(r"\b(anything|everything|all)\b", m["what"]) else None
    matched = [m[0].strip()] + ([reader_match[0]] if reader_match else [])
    return Recipe(kind="roles", name=f"{writer}-writes", entity=(target or spec.entities[0]).name, matched=matched,
                  params={"writer": writer, "reader": reader if reader != writer else None,
                          "tables": [target.table] if target else None})


_ONLY_ONE = (
    re.compile(r"\bonly one (?:(?P<state>\w+) )?(?P<entity>\w+) (?:at a time )?(?:per|for each|for every|for any|"
               r"for a|for the|for one) (?P<field>\w+)", re.IGNORECASE),
    re.compile(r"\b(?P<field>\w+) (?:can|may) (?:only )?be (?:on|in|part of) (?:only )?one (?:(?P<state>\w+) )?"
               r"(?P<entity>\w+)", re.IGNORECASE),
)
_OPEN_WORDS = {"open", "active", "current", "outstanding", "unreturned", "unpaid", "pending", "ongoing"}


def _state(entity: Entity, word: str) -> tuple[str, Any] | None:
    """(field, value) that puts a row in the state ``word`` names: a choice value, or "open"-like
    words for a done-like boolean being false."""
    for f in entity.fields:
        if f.type == "choice" and word in [c.lower() for c in f.choices]:
            return f.name, next(c for c in f.choices if c.lower() == word)
    done = done_field(entity)
    if done and word in _OPEN_WORDS:
        return done, False
    return None


def match_only_one(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``only one open loan per title`` / ``a title can be on only one open loan at a time``."""
    m = next((found for rule in _ONLY_ONE if (found := rule.search(text))), None)
    if m is None:
        return None
    entity = entity_in(m["entity"], spec, None)
    if entity is None:
        return None
    named = fields_named(m["field"], entity, tuple(t for t in FIELD_TYPES if t != "boolean"))
    state = _state(entity, (m["state"] or "").lower()) if m["state"] else None
    if not named or state is None:
        return Miss("constraint", [m[0]], f"'only one … per …' needs a field of {entity.name} named "
                    f"{m['field']!r} and a state word: one of its choices, or open/active with a done flag")
    field = named[0][1]
    word = "-".join(words_of(m["state"]))
    return Recipe(kind="constraint", name=f"one-{word}-per-{field.name.replace('_', '-')}",
                  entity=entity.name, matched=[m[0]],
                  params={"rule": "only-one", "field": field.name, "state": state[0], "value": state[1]})
