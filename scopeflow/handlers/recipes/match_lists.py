"""Matchers of the recipes that show rows: saved filters, sorted views, boards and charts."""

from __future__ import annotations

import re

from scopeflow.handlers import naming
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.recipes.reading import (
    DATE_TYPES,
    NUMBER_TYPES,
    date_field,
    done_field,
    entity_in,
    field_stems,
    fields_named,
    words_of,
)
from scopeflow.handlers.spec import Entity, Field, Spec

_DATE_VIEWS = (
    ("overdue", re.compile(r"\b(overdue|past due|late|expired|lapsed)\b", re.IGNORECASE)),
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


def match_date_view(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """overdue / due today / this week / upcoming on a date field of the entity the line names."""
    view, words = next(((name, m[0]) for name, rule in _DATE_VIEWS if (m := rule.search(text))), (None, ""))
    if view is None:
        return None
    entity = entity_in(text, spec, entity_hint)
    if entity is None:
        return Miss("filter", [words], f"{words!r} needs an entity with a date field; the line names none")
    field = date_field(text, entity)
    if field is None:
        return Miss("filter", [words], f"{words!r} needs a date field on {entity.name}; it has none")
    return Recipe(kind="filter", name=view, entity=entity.name, matched=[words, field.name],
                  params={"field": field.name, "field_type": field.type, "view": view,
                          "done": done_field(entity)})


def match_by_field(text: str, spec: Spec, entity_hint: str | None) -> Recipe | None:
    """``filter tickets by status`` / ``list stock items by warehouse``: a choice or reference field."""
    m = _BY_FIELD.search(text)
    if m is None or _CHART.search(text):      # "show a chart of tickets by status" is a chart
        return None
    entity = entity_in(text[: m.start("what")], spec, entity_hint)
    if entity is None:
        return None
    named = fields_named(m["what"], entity, ("choice", "reference"))
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
        named = fields_named(m["what"], entity, NUMBER_TYPES + DATE_TYPES + ("text", "choice"))
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
    named = fields_named(text, entity, ("choice",))
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
# "how many visits per month", "number of loans each week": a count per period is a chart without the word.
_COUNT_PER = re.compile(r"\b(?:how\s+many|number\s+of|count\s+of)\b(?=.*\b(?:per|each|a|by)\s+(?:day|week|month)\b)",
                        re.IGNORECASE)


def match_chart(text: str, spec: Spec, entity_hint: str | None) -> Recipe | Miss | None:
    """``orders per month chart`` / ``monthly statistics of loans``: counts (or sums of a number field)
    per day, week or month of a date field; ``chart of tickets by status`` / ``pie chart of products per
    category``: per value of a choice or reference field. Drawn as a server-rendered SVG with a data table."""
    m = _CHART.search(text) or _COUNT_PER.search(text)
    if m is None:
        return None
    period, said = next(((name, p[0]) for name, rule in _PERIODS if (p := rule.search(text))), (None, ""))
    if period is None:
        return _grouped_chart(text, m, spec, entity_hint)
    entity = entity_in(text, spec, entity_hint)
    if entity is None:
        return Miss("chart", [m[0]], _CHART_NEEDS)
    field = date_field(text, entity)
    if field is None:
        return Miss("chart", [m[0], said], f"a chart per {period} needs a date field on {entity.name}; it has none")
    total = _SUM.search(text)
    measured = fields_named(total["what"], entity, NUMBER_TYPES) if total else []
    measure = measured[0][1].name if measured else None
    name = f"{'sum-' + measure.replace('_', '-') if measure else 'count'}-per-{period}"
    return Recipe(kind="chart", name=name, entity=entity.name, matched=[m[0], said] + ([total[0]] if measure else []),
                  params={"field": field.name, "field_type": field.type, "period": period, "measure": measure,
                          "group": None, "style": "bar"})


_CHART_NEEDS = ("a chart needs an entity and a period or a field to group by: say what to count per day, week or "
                "month (e.g. 'loans per month chart') or per value of a choice or reference field (e.g. 'chart of "
                "loans by status')")
_GROUP = re.compile(r"\b(?:by|per|for each|of each|across|split by|broken down by)\s+(?:the\s+|their\s+|its\s+)?"
                    r"(?P<what>\w+(?:\s\w+)?)", re.IGNORECASE)
_TOTAL = re.compile(r"\b(?:sum|total)\b", re.IGNORECASE)


def _group_field(what: str, spec: Spec, entity: Entity) -> Field | None:
    """The choice or reference field ``what`` names: by its own words or its target entity's."""
    named = fields_named(what, entity, ("choice", "reference"))
    if named:
        return named[0][1]
    said = {naming.singular(w) for w in words_of(what)}
    return next((f for f in entity.fields if f.type == "reference" and f.reference and said & {
        naming.singular(w).lower() for w in naming.ascii_words(spec.entity(f.reference).label)}), None)


def _grouped_chart(text: str, m: re.Match[str], spec: Spec, entity_hint: str | None) -> Recipe | Miss:
    group = next((g for g in _GROUP.finditer(text) if entity_in(text[: g.start()], spec, None)), None)
    entity = entity_in(text[: group.start()], spec, entity_hint) if group else None
    field = _group_field(group["what"], spec, entity) if group and entity else None
    if group is None or entity is None or field is None:
        return Miss("chart", [m[0]] + ([group[0]] if group else []), _CHART_NEEDS)
    measured = fields_named(text[: group.start()], entity, NUMBER_TYPES) if _TOTAL.search(text) else []
    measure = measured[0][1].name if measured else None
    target = spec.entity(field.reference) if field.type == "reference" and field.reference else None
    said = re.match(r"\w+(?:\s+each)?", group[0])
    name = f"{'sum-' + measure.replace('_', '-') if measure else 'count'}-by-{field.name.replace('_', '-')}"
    return Recipe(kind="chart", name=name, entity=entity.name,
                  matched=[m[0], f"{said[0] if said else ''} {field.name}".strip()] + (
                      [measured[0][1].name] if measure else []) + (["pie"] if _PIE.search(text) else []),
                  params={"field": field.name, "field_type": field.type, "period": None, "measure": measure,
                          "group": field.type, "choices": list(field.choices),
                          "group_table": target.table if target else None,
                          "style": "pie" if _PIE.search(text) else "bar"})


_PIE = re.compile(r"\b(?:pie|donut|doughnut)\b", re.IGNORECASE)
