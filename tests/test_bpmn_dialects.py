"""The JUEL/FEEL subset (processes/dialects.py): what is translated, exactly, and what is refused."""

from __future__ import annotations

import pytest

from scopeflow.engine.sandbox import RestrictedEnvironment
from scopeflow.processes.dialects import (
    FEEL,
    JUEL,
    PYTHON,
    DialectError,
    is_iso_literal,
    timer_expression,
    translate,
)


@pytest.mark.parametrize(("text", "python", "dialect"), [
    ("${approved}", "approved", JUEL),
    ("#{!approved}", "not approved", JUEL),
    ("${amount > 100 && customer.vip}", 'amount > 100 and customer["vip"]', JUEL),
    ("${amount gt 100 or status eq 'open'}", "amount > 100 or status == 'open'", JUEL),
    ("${empty comments}", "not comments", JUEL),
    ("${x mod 2 == 0}", "x % 2 == 0", JUEL),
    ('${execution.getVariable("approved") == true}', "approved == True", JUEL),
    ("= approved", "approved", FEEL),
    ('= status = "open" and amount >= 10.5', 'status == "open" and amount >= 10.5', FEEL),
    ("=not(rejected) or order.total < 0", 'not ( rejected ) or order["total"] < 0', FEEL),
    ("= x != null", "x != None", FEEL),
    ("approval['decision'] == 'approve'", "approval['decision'] == 'approve'", PYTHON),
])
def test_the_subset_translates_to_python(text, python, dialect):
    result = translate(text)
    assert (result.python, result.dialect) == (python, dialect)


@pytest.mark.parametrize(("text", "data", "value"), [
    ("${amount > 100 && customer.vip}", {"amount": 150, "customer": {"vip": True}}, True),
    ("${amount > 100 && customer.vip}", {"amount": 150, "customer": {"vip": False}}, False),
    ('= status = "open"', {"status": "open"}, True),
    ("${empty comments}", {"comments": []}, True),
])
def test_translations_evaluate_in_the_sandbox_as_the_dialect_means(text, data, value):
    assert RestrictedEnvironment().evaluate(translate(text).python, data) is value


@pytest.mark.parametrize(("text", "language", "fragment"), [
    ("${order.isValid()}", None, "outside the supported subset"),
    ("${a ? b : c}", None, "\u201c?"),
    ("= x in [1..5]", None, "outside the supported subset"),
    ("= is defined(x)", None, "not a complete expression"),
    ("${execution.getProcessInstanceId()}", None, "outside the supported subset"),
    ("x > 1", "javascript", "expression language javascript is not supported"),
    ("${approved", None, "must be one ${\u2026} block"),
])
def test_what_is_outside_the_subset_is_refused_with_a_sentence(text, language, fragment):
    with pytest.raises(DialectError) as raised:
        translate(text, language)
    assert fragment in str(raised.value)
    assert "Error(" not in str(raised.value)


@pytest.mark.parametrize("text", ["P7D", "PT5M", "R6/P1D", "R/PT1H", "R3/2030-01-01T09:00:00Z/P1D",
                                  "2030-01-31T09:00:00Z", "2030-01-31", "P1Y2M3DT4H5M6S", "P2W"])
def test_bare_iso_timers_are_quoted(text):
    assert is_iso_literal(text)
    assert timer_expression(text).python == repr(text)


@pytest.mark.parametrize("text", ["'PT5M'", "sla", "P", "PT", "7 days", "R/"])
def test_timer_expressions_that_are_not_bare_iso_stay_python(text):
    assert not is_iso_literal(text)
