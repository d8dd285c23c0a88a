"""The registry check must refuse a boolean where the registry declares an int (a test count of
``True`` is not one test): the one type check no existing test made fail."""

from __future__ import annotations

from scopeflow.spans import semconv
from scopeflow.spans.registry_check import check_spans
from tests.test_registry import complete_task


def test_a_boolean_is_not_an_int_attribute():
    problems = check_spans([complete_task(**{semconv.TESTS_PASSED: True})])
    assert problems and any("scopeflow.tests.passed is True, expected int" in p for p in problems)
    assert check_spans([complete_task(**{semconv.TESTS_PASSED: 3})]) == []
