"""Recognising feature recipes in the words of one feature or constraint line.

Each matcher reads one line against the spec's entities and returns a :class:`Recipe` (the words
that triggered it kept in ``matched``), a :class:`Miss` (the trigger words are there but the spec
lacks what the recipe needs, e.g. "overdue" on an entity without a date field), or ``None``.
Matchers are conservative: a recipe is only recognised when the line names (or implies) one
entity and the fields the recipe works on, because a recognised recipe is built and claimed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from scopeflow.handlers import naming
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.spec import FIELD_TYPES, Entity, Field, Spec

DATE_TYPES = ("date", "datetime")
NUMBER_TYPES = ("integer", "decimal")
# Boolean fields that mean "this row is finished": finished rows are never overdue or upcoming.
_DONE_WORDS = {"done", "returned", "completed", "complete", "closed", "paid", "finished", "resolved",
               "archived", "cancelled", "canceled", "delivered", "watered"}
# Words of a field name that say nothing about which date it is.
_GENERIC_FIELD_WORDS = {"on", "at", "date", "time", "day", "the", "of"}

_DATE_VIEWS = (
    ("overdue", re.compile(r"\b(overdue|past due|late)\b", re.IGNORECASE)),
    ("due-today", re.compile(r"\b(due (?:for \w+ )?today|today)\b", re.IGNORECASE)),
    ("this-week", re.compile(r"\b(this week)\b", re.IGNORECASE)),
    ("upcoming", re.compile(r"\b(upcoming|coming up|next \d+ days|future)\b", re.IGNORECASE)),
)
_BY_FIELD = re.compile(r"\b(?:filter(?:s|ed|ing)?|group(?:s|ed|ing)?|list(?:s|ed|ing)?|show(?:s|n|ing)?|"
                       r"view(?:s|ed|ing)?|brows(?:e|es|ed|ing))\b.*?\bby\s+(?P<what>[\w ]+)", re.IGNORECASE)
_SORT = re.compile(r"\b(?:sort\w*|order(?:ed)?|rank\w*)\s+(?:\w+\s+){0,3}?by\s+(?:the\s+|their\s+|its\s+)?"
                   r"(?:(?P<agg>average|avg|mean|total|sum of|sum|number of|count of|count)\s+(?:of\s+)?)?"
                   r"(?P<what>[\w]+(?:\s[\w]+)?)", re.IGNORECASE)
_AGGREGATES = {"average": "avg", "avg": "avg", "mean": "avg", "total": "sum", "sum of": "sum", "sum": "sum",
               "number of": "count", "count of": "count", "count": "count"}
_AFTER = r"(?:after|later than|greater than|more than|larger than|exceeds?|above)"
_BEFORE = r"(?:before|earlier than|less than|smaller than|below)"
_COMPARE = re.compile(rf"\b(?P<op>(?:on or |at or )?{_AFTER}|(?:on or |at or )?{_BEFORE})\b", re.IGNORECASE)
_NOT_NEGATIVE = re.compile(r"\b(?P<noun>[a-z][\w ]*?)\s+(?:are|is|must|can|may|should)\s+(?:never|not|not be|"
                           r"never be|be)\s*(?P<rule>negative|positive|below zero|less than zero)\b", re.IGNORECASE)


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


def _fields_named(text: str, entity: Entity, types: tuple[str, ...]) -> list[tuple[int, Field]]:
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


def _done_field(entity: Entity) -> str | None:
    return next((f.name for f in entity.fields if f.type == "boolean" and set(f.name.split("_")) & _DONE_WORDS),
                None)


def _date_field(text: str, entity: Entity) -> Field | None:
    named = _fields_named(text, entity, DATE_TYPES)
    if named:
        return named[0][1]
    dates = [f for f in entity.fields if f.type in DATE_TYPES]
    due = [f for f in dates if "due" in f.name or "deadline" in f.name or "next" in f.name]
    return (due or dates or [None])[0]


def match_date_view(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """overdue / due today / this week / upcoming on a date field of the entity the line names."""
    view, words = next(((name, m[0]) for name, rule in _DATE_VIEWS if (m := rule.search(text))), (None, ""))
    if view is None:
        return None
    entity = entity_in(text, spec, entity_hint)
    if entity is None:
        return Miss("filter", [words], f"{words!r} needs an entity with a date field; the line names none")
    field = _date_field(text, entity)
    if field is None:
        return Miss("filter", [words], f"{words!r} needs a date field on {entity.name}; it has none")
    return Recipe(kind="filter", name=view, entity=entity.name, matched=[words, field.name],
                  params={"field": field.name, "field_type": field.type, "view": view,
                          "done": _done_field(entity)})


def match_by_field(text: str, spec: Spec, entity_hint: str | None) -> Recipe | None:
    """``filter tickets by status`` / ``list stock items by warehouse``: a choice or reference field."""
    m = _BY_FIELD.search(text)
    if m is None:
        return None
    entity = entity_in(text[: m.start("what")], spec, entity_hint)
    if entity is None:
        return None
    named = _fields_named(m["what"], entity, ("choice", "reference"))
    if not named:
        return None
    field = named[0][1]
    return Recipe(kind="filter", name=f"by-{field.name.replace('_', '-')}", entity=entity.name,
                  matched=[m[0].split()[0], "by", field.name],
                  params={"field": field.name, "field_type": field.type, "view": "by-field",
                          "choices": list(field.choices)})


def _children(spec: Spec, entity: Entity) -> list[tuple[Entity, Field]]:
    return [(child, f) for child in spec.entities for f in child.fields
            if f.type == "reference" and f.reference == entity.name and child.name != entity.name]


def match_sort(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``sorted by pages`` (a field) or ``sorted by average rating`` (an aggregate of a child entity)."""
    m = _SORT.search(text)
    if m is None:
        return None
    entity = entity_in(text[: m.start()] or text, spec, entity_hint) or entity_in(text, spec, entity_hint)
    if entity is None:
        return Miss("sort", [m[0]], "sorting needs an entity; the line names none")
    aggregate = _AGGREGATES.get((m["agg"] or "").lower())
    if aggregate is None:
        named = _fields_named(m["what"], entity, NUMBER_TYPES + DATE_TYPES + ("text", "choice"))
        if not named:
            return None
        field = named[0][1]
        return Recipe(kind="sort", name=f"by-{field.name.replace('_', '-')}", entity=entity.name,
                      matched=[m[0]], params={"field": field.name, "field_type": field.type, "aggregate": None})
    return _aggregate_sort(m, spec, entity, aggregate)


def _aggregate_sort(m: re.Match[str], spec: Spec, entity: Entity, aggregate: str) -> Recipe | Miss:
    what = {naming.singular(w) for w in words_of(m["what"])}
    for child, ref in _children(spec, entity):
        child_words = {naming.singular(w).lower() for w in naming.ascii_words(child.label)}
        if aggregate == "count" and child_words & what:
            return Recipe(kind="sort", name=f"by-{aggregate}-of-{child.table.replace('_', '-')}",
                          entity=entity.name, matched=[m[0]],
                          params={"aggregate": "count", "child": child.name, "child_table": child.table,
                                  "link": ref.name, "child_field": None, "field": None})
        numbers = [f for f in child.fields if f.type in NUMBER_TYPES and field_stems(f) & what]
        if numbers and aggregate != "count":
            field = numbers[0]
            return Recipe(kind="sort", name=f"by-{aggregate}-{field.name.replace('_', '-')}", entity=entity.name,
                          matched=[m[0]], params={"aggregate": aggregate, "child": child.name,
                                                  "child_table": child.table, "link": ref.name,
                                                  "child_field": field.name, "field": None})
    return Miss("sort", [m[0]], f"no entity referring to {entity.name} has a number field "
                f"matching {m['what']!r} to take the {aggregate} of")


def match_comparison(text: str, spec: Spec, entity_hint: str | None) -> Recipe | None:
    """``due date must be after the lent date``: two date or number fields of one entity compared."""
    m = _COMPARE.search(text)
    if m is None:
        return None
    for entity in ([e for e in [entity_in(text, spec, entity_hint)] if e] + list(spec.entities)):
        named = _fields_named(text, entity, DATE_TYPES + NUMBER_TYPES)
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


_BOARD = re.compile(r"\b(?:kanban(?:\s+board)?|board)\b", re.IGNORECASE)
_BOARD_FIELD_WORDS = ("status", "stage", "state", "phase", "step", "column", "lane")


def match_board(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``a board of deals by stage``: a kanban page grouping an entity by one of its choice fields."""
    m = _BOARD.search(text)
    if m is None:
        return None
    entity = entity_in(text, spec, entity_hint)
    if entity is None:
        return Miss("board", [m[0]], "a board needs an entity with a choice field; the line names none")
    named = _fields_named(text, entity, ("choice",))
    choices = [f for f in entity.fields if f.type == "choice"]
    field = named[0][1] if named else next(
        (f for f in choices if set(f.name.split("_")) & set(_BOARD_FIELD_WORDS)), choices[0] if choices else None)
    if field is None:
        return Miss("board", [m[0]], f"a board needs a choice field on {entity.name} to make its columns; "
                    "it has none")
    return Recipe(kind="board", name=f"by-{field.name.replace('_', '-')}", entity=entity.name,
                  matched=[m[0], field.name], params={"field": field.name, "choices": list(field.choices)})


_CHART = re.compile(r"\b(charts?|graphs?|statistics|stats|histograms?|plots?)\b", re.IGNORECASE)
_PERIODS = (("day", re.compile(r"\b(daily|(?:per|by|each|a) day)\b", re.IGNORECASE)),
            ("week", re.compile(r"\b(weekly|(?:per|by|each|a) week)\b", re.IGNORECASE)),
            ("month", re.compile(r"\b(monthly|(?:per|by|each|a) month)\b", re.IGNORECASE)))
_SUM = re.compile(r"\b(?:sum|total)\s+(?:of\s+)?(?:the\s+)?(?P<what>\w+)", re.IGNORECASE)


def match_chart(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``orders per month chart`` / ``monthly statistics of loans``: counts (or sums of a number field)
    per day, week or month of a date field, drawn as a server-rendered SVG with a data table."""
    m = _CHART.search(text)
    if m is None:
        return None
    period, said = next(((name, p[0]) for name, rule in _PERIODS if (p := rule.search(text))), (None, ""))
    entity = entity_in(text, spec, entity_hint)
    if period is None or entity is None:
        return Miss("chart", [m[0]], "a chart needs an entity and a period: say what to count per day, week "
                    "or month (e.g. 'loans per month chart')")
    field = _date_field(text, entity)
    if field is None:
        return Miss("chart", [m[0], said], f"a chart per {period} needs a date field on {entity.name}; it has none")
    total = _SUM.search(text)
    measured = _fields_named(total["what"], entity, NUMBER_TYPES) if total else []
    measure = measured[0][1].name if measured else None
    name = f"{'sum-' + measure.replace('_', '-') if measure else 'count'}-per-{period}"
    return Recipe(kind="chart", name=name, entity=entity.name, matched=[m[0], said] + ([total[0]] if measure else []),
                  params={"field": field.name, "field_type": field.type, "period": period, "measure": measure})


_REMIND = re.compile(r"\b(remind\w*|notif\w*|alerts?)\b", re.IGNORECASE)
_EVENT_WORDS = re.compile(r"\b(when|whenever|once|as soon as|after)\b(?!.*\bdue\b)", re.IGNORECASE)
_DAYS_BEFORE = re.compile(r"\b(?P<n>\d+|one|two|three|seven)\s+days?\s+(?:before|ahead|in advance)\b", re.IGNORECASE)
_NUMBERS = {"one": 1, "two": 2, "three": 3, "seven": 7}


def _recipient(spec: Spec, entity: Entity) -> tuple[str, str | None] | None:
    """(email field, reference field it is reached through or None): on the row, or one reference away."""
    own = next((f.name for f in entity.fields if f.type == "email"), None)
    if own:
        return own, None
    for f in entity.fields:
        if f.type == "reference" and f.reference:
            target = spec.entity(f.reference)
            email = next((g.name for g in target.fields if g.type == "email"), None)
            if email:
                return email, f.name
    return None


def match_reminder(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``remind borrowers when loans are due`` / ``a reminder 3 days before an event starts``: due-date
    reminders written to an outbox and sent by a CLI command of the app."""
    m = _REMIND.search(text)
    if m is None:
        return None
    if _EVENT_WORDS.search(text) and not re.search(r"\b(due|deadline|before|upcoming|starts?)\b", text, re.IGNORECASE):
        return Miss("reminder", [m[0]], "notifications on events (a change of a row) are not built; "
                    "only due-date reminders are")
    dated = [e for e in entities_in(text, spec) if any(f.type in DATE_TYPES for f in e.fields)]
    entity = dated[0] if dated else entity_in(text, spec, entity_hint)
    field = _date_field(text, entity) if entity else None
    if entity is None or field is None:
        return Miss("reminder", [m[0]], "a reminder needs an entity with a date field to be due on")
    recipient = _recipient(spec, entity)
    if recipient is None:
        return Miss("reminder", [m[0]], f"a reminder needs an email address on {entity.name} or on an "
                    "entity it refers to")
    days = _DAYS_BEFORE.search(text)
    ahead = (int(days["n"]) if days["n"].isdigit() else _NUMBERS[days["n"].lower()]) if days else 1
    via = recipient[1]
    return Recipe(kind="reminder", name=f"{field.name.replace('_', '-')}-reminder", entity=entity.name,
                  matched=[m[0]] + ([days[0]] if days else []),
                  params={"field": field.name, "field_type": field.type, "days": ahead, "done": _done_field(entity),
                          "email": recipient[0], "via": via,
                          "via_table": spec.entity(next(f.reference for f in entity.fields if f.name == via) or "").table
                          if via else None})


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
    done = _done_field(entity)
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
    named = _fields_named(m["field"], entity, tuple(t for t in FIELD_TYPES if t != "boolean"))
    state = _state(entity, (m["state"] or "").lower()) if m["state"] else None
    if not named or state is None:
        return Miss("constraint", [m[0]], f"'only one … per …' needs a field of {entity.name} named "
                    f"{m['field']!r} and a state word: one of its choices, or open/active with a done flag")
    field = named[0][1]
    word = "-".join(words_of(m["state"]))
    return Recipe(kind="constraint", name=f"one-{word}-per-{field.name.replace('_', '-')}",
                  entity=entity.name, matched=[m[0]],
                  params={"rule": "only-one", "field": field.name, "state": state[0], "value": state[1]})


_OWN = re.compile(r"\b(?:see|sees|view|views|access|read|edit|manage|list)\s+(?:only\s+)?(?:their|his|her)\s+"
                  r"(?:own\s+)?(?P<what>\w+)|\b(?:their|his|her)\s+own\s+(?P<what2>\w+)", re.IGNORECASE)


def match_ownership(text: str, spec: Spec, entity_hint: str | None) -> Miss | None:
    """``sellers only see their own orders``: per-user row ownership is not built; the line says so
    instead of being credited to login or CRUD."""
    m = _OWN.search(text)
    if m is None:
        return None
    return Miss("ownership", [m[0]], "ownership (each user sees or changes only their own rows) is not built "
                "by the offline templates")


FEATURE_MATCHERS: tuple[Callable[[str, Spec, str | None], Recipe | Miss | None], ...] = (
    match_reminder, match_board, match_chart, match_sort, match_date_view, match_by_field, match_roles,
    match_ownership)
CONSTRAINT_MATCHERS: tuple[Callable[[str, Spec, str | None], Recipe | Miss | None], ...] = (
    match_only_one, match_comparison, match_not_negative, match_roles, match_ownership)
