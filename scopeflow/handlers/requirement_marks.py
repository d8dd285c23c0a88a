"""Which scope requirements each generated test proves: the ``@pytest.mark.requirements`` marks.

The template pack writes a fixed set of tests per app (``test_core.py``, ``test_auth.py``) and per
entity (``tests/_test_entity.py.j2``); this module maps each of those tests, by name, to the ids
of the requirements its assertions exercise. A requirement that no test here names can never be
``delivered`` (see :mod:`scopeflow.handlers.requirements`): that is the point of keeping the map
explicit, next to the names the templates use.
"""

from __future__ import annotations

from typing import Any

from scopeflow.handlers import recipes
from scopeflow.handlers.planner import LOGIN_WORDS
from scopeflow.handlers.scope import feature_kinds
from scopeflow.handlers.spec import Entity, Spec


def marker(ids: list[str]) -> str:
    """The marker expression for a generated test (templates put ``@`` or ``pytestmark =`` before it) (an empty marker when it proves nothing specific)."""
    return "pytest.mark.requirements(" + ", ".join(repr(i) for i in dict.fromkeys(ids)) + ")"


def _by_subject(spec: Spec) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for requirement in spec.requirements:
        if requirement.subject and requirement.status != "not understood":
            found.setdefault(requirement.subject, []).append(requirement.id)
    return found


def _features(spec: Spec, kinds: set[str], entity: str | None = None) -> list[str]:
    """Ids of buildable features of ``kinds`` about ``entity`` (or about no entity in particular)."""
    subjects = _by_subject(spec)
    ids = []
    by_recipe = recipes.covered_subjects(spec)     # recipe lines are proven by the recipe tests only
    for number, feature in enumerate(spec.features, start=1):
        if f"feature:{number}" in by_recipe:
            continue
        if entity is not None and feature.entity not in (None, entity):
            continue
        if set(feature_kinds(feature)) & kinds:
            ids.extend(subjects.get(f"feature:{number}", []))
    return ids


def login_ids(spec: Spec) -> list[str]:
    """Login features and the constraints that ask for login."""
    subjects = _by_subject(spec)
    by_recipe = recipes.covered_subjects(spec)
    constraints = [rid for number, text in enumerate(spec.constraints, start=1) if LOGIN_WORDS.search(text)
                   and f"constraint:{number}" not in by_recipe for rid in subjects.get(f"constraint:{number}", [])]
    return _features(spec, {"login"}) + constraints


def core_test_marks(spec: Spec) -> dict[str, list[str]]:
    """``test_core.py`` and ``test_auth.py`` (every auth test proves login: module mark ``auth``)."""
    subjects = _by_subject(spec)
    return {
        "healthz_reports_ok_after_a_database_query": _features(spec, {"health"}),
        "index_shows_the_title_and_summary": subjects.get("title", []) + subjects.get("summary", []),
        "unknown_api_path_answers_json_404": _features(spec, {"api"}),
        "api_rejects_a_body_that_is_not_a_json_object": _features(spec, {"api"}),
        "auth": login_ids(spec),
    }


_CASE_SUFFIXES = (("_outside_choices", "field"), ("_in_wrong_format", "field"), ("_pointing_nowhere", "field"),
                  ("_below_minimum", "minimum"), ("_shorter_than_minimum", "minimum"),
                  ("_above_maximum", "maximum"), ("_longer_than_maximum", "maximum"))


def entity_test_marks(spec: Spec, entity: Entity, context: dict[str, Any], login: bool) -> dict[str, list[str]]:
    """The tests of one entity (names as in ``_test_entity.py.j2``, without ``test_``) → ids."""
    subjects = _by_subject(spec)
    name = entity.name
    own = subjects.get(f"entity:{name}", [])
    fields = [rid for f in entity.fields for rid in subjects.get(f"field:{name}.{f.name}", [])]
    marks = {
        "api_create_read_update_delete": own + fields + _features(spec, {"crud", "api"}, name),
        "unknown_id_is_404": own,
        "pages_create_edit_and_delete": own + fields + _features(spec, {"crud"}, name),
        "labels_are_shown_escaped": fields,
        "csv_export_lists_rows": _features(spec, {"export"}, name),
        "search_finds_matching_rows": _features(spec, {"search"}, name) if context["search_field"] else [],
        "login_is_required": login_ids(spec) if login else [],
    }
    for field in context["required"]:
        marks[f"{field}_is_required"] = subjects.get(f"modifier:{name}.{field}:required", [])
    for field in context["unique"]:
        marks[f"{field}_must_be_unique"] = subjects.get(f"modifier:{name}.{field}:unique", [])
    for field in context["defaults"]:
        marks[f"{field}_defaults_when_left_out"] = subjects.get(f"modifier:{name}.{field}:default", [])
    for case in context["invalid"]:
        suffix, kind = next((s, k) for s, k in _CASE_SUFFIXES if case["test"].endswith(s))
        subject = (f"field:{name}.{case['field']}" if kind == "field"
                   else f"modifier:{name}.{case['field']}:{kind}")
        marks[f"{case['test']}_is_rejected"] = subjects.get(subject, [])
    for ref in context["references"]:
        marks[f"deleting_the_{ref['table']}_row_a_{ref['field']}_points_to_is_refused"] = subjects.get(
            f"field:{name}.{ref['field']}", [])
    return marks
