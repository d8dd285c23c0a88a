"""Recognising feature recipes in the words of one feature or constraint line.

Each matcher reads one line against the spec's entities and returns a :class:`Recipe` (the words
that triggered it kept in ``matched``), a :class:`Miss` (the trigger words are there but the spec
lacks what the recipe needs, e.g. "overdue" on an entity without a date field), or ``None``.
Matchers are conservative: a recipe is only recognised when the line names (or implies) one
entity and the fields the recipe works on, because a recognised recipe is built and claimed.
"""

from __future__ import annotations

from collections.abc import Callable

from scopeflow.handlers.recipes.match_lists import (
    match_board,
    match_by_field,
    match_chart,
    match_date_view,
    match_sort,
)
from scopeflow.handlers.recipes.match_notifications import match_notification
from scopeflow.handlers.recipes.match_owner import match_ownership
from scopeflow.handlers.recipes.match_reminders import match_reminder
from scopeflow.handlers.recipes.match_rules import (
    match_comparison,
    match_not_negative,
    match_only_one,
    match_roles,
)
from scopeflow.handlers.recipes.model import Miss, Recipe
from scopeflow.handlers.spec import Spec

FEATURE_MATCHERS: tuple[Callable[[str, Spec, str | None], Recipe | Miss | None], ...] = (
    match_reminder, match_notification, match_board, match_chart, match_sort, match_date_view, match_by_field, match_roles,
    match_ownership)
CONSTRAINT_MATCHERS: tuple[Callable[[str, Spec, str | None], Recipe | Miss | None], ...] = (
    match_only_one, match_comparison, match_not_negative, match_roles, match_ownership)
