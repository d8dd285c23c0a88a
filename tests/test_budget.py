"""The LLM budget: charges add up exactly, caps stop further calls, the state survives task data."""

import json

import pytest

from scopeflow.handlers.budget import Budget
from scopeflow.handlers.failures import EXTERNAL_BLOCKER, TaskFailure


def test_charges_add_tokens_cost_and_calls():
    budget = Budget()
    budget.charge(100, 20, 45)
    budget.charge(10, 5, 3, failed=True)
    assert (budget.spent_tokens, budget.spent_cost) == (135, 48)
    assert (budget.calls, budget.failed_calls) == (2, 1)


def test_a_budget_without_caps_never_blocks():
    budget = Budget()
    budget.charge(10**9, 10**9, 10**12)
    budget.check()
    assert budget.exceeded_caps() == []


def test_spending_exactly_the_cap_is_not_yet_exceeding_it():
    budget = Budget(max_tokens=120, max_cost=50)
    budget.charge(100, 20, 50)
    budget.check()


def test_exceeding_the_token_cap_is_an_external_blocker_with_the_spend():
    budget = Budget(max_tokens=100)
    budget.charge(90, 11, 7)
    with pytest.raises(TaskFailure) as caught:
        budget.check()
    failure = caught.value
    assert failure.kind == EXTERNAL_BLOCKER
    assert failure.message.startswith("LLM budget exceeded: 101 tokens spent, cap 100")
    assert failure.details["exceeded"] == ["max_tokens"]
    assert failure.details["spent_tokens"] == 101
    assert failure.details["max_tokens"] == 100
    assert failure.details["calls"] == 1


def test_exceeding_the_cost_cap_names_the_cost():
    budget = Budget(max_cost=1_000)
    budget.charge(1, 1, 1_001)
    with pytest.raises(TaskFailure) as caught:
        budget.check()
    assert caught.value.details["exceeded"] == ["max_cost"]
    assert "1001 micro-dollars spent, cap 1000" in caught.value.message


def test_failed_calls_count_towards_the_caps():
    budget = Budget(max_tokens=10)
    budget.charge(11, 0, 0, failed=True)
    with pytest.raises(TaskFailure):
        budget.check()


def test_round_trip_through_json_task_data():
    budget = Budget(max_tokens=1000, max_cost=None)
    budget.charge(3, 4, 5, failed=True)
    data = json.loads(json.dumps(budget.to_data()))
    assert data == {
        "max_tokens": 1000, "max_cost": None, "spent_tokens": 7, "spent_cost": 5,
        "calls": 1, "failed_calls": 1,
    }
    assert Budget.from_data(data) == budget


@pytest.mark.parametrize(
    "data, message",
    [
        ("nope", "budget data must be an object"),
        ({"max_tokens": 1}, "missing"),
        ({**Budget().to_data(), "extra": 1}, "unknown ['extra']"),
        ({**Budget().to_data(), "spent_tokens": -1}, "spent_tokens must be a non-negative integer"),
        ({**Budget().to_data(), "spent_cost": 1.5}, "spent_cost must be a non-negative integer"),
    ],
)
def test_malformed_budget_data_is_a_clear_error(data, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Budget.from_data(data)


def test_negative_charges_are_refused_and_leave_the_budget_unchanged():
    budget = Budget()
    with pytest.raises(ValueError, match="cost must be a non-negative integer"):
        budget.charge(1, 1, -5)
    assert budget.to_data() == Budget().to_data()
