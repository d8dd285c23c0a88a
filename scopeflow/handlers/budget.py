"""The LLM spend of one process instance: tokens and money, with caps that stop a runaway loop.

Agent suites whose users lost "$30 in an hour looping" taught us that the loop limit must live
outside the model. Every LLM call an instance makes is charged here (including calls that failed
or whose reply was unusable: they were still paid for, or at least still tried), and
:meth:`Budget.check` turns an exceeded cap into an ``external_blocker`` failure, which the
lifecycle model routes to a blocker plan that says what was spent and which cap stopped it.

Money is an integer number of micro-dollars (1 USD = 1_000_000), tokens are integers: no floats,
so sums stay exact across many small calls.

The budget travels in the instance's task data between advances as the plain dict of
:meth:`Budget.to_data`::

    {"max_tokens": int | None, "max_cost": int | None,      # caps; None = no cap
     "spent_tokens": int, "spent_cost": int,                 # totals charged so far
     "calls": int, "failed_calls": int}                      # HTTP attempts, and the unusable ones
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scopeflow.handlers.failures import EXTERNAL_BLOCKER, TaskFailure

MIN_OUTPUT_TOKENS = 32   # fewer output tokens than this cannot hold a useful JSON reply
_FIELDS = ("max_tokens", "max_cost", "spent_tokens", "spent_cost", "calls", "failed_calls")
_CAPS = ("max_tokens", "max_cost")


@dataclass
class Budget:
    """Caps and running totals of one instance's LLM use.

    A cap of ``None`` means no cap. A cap is *exceeded* once the amount spent is strictly greater
    than it; :meth:`check` is what enforces it (the client calls it before every request).
    """

    max_tokens: int | None = None
    max_cost: int | None = None
    spent_tokens: int = 0
    spent_cost: int = 0
    calls: int = 0
    failed_calls: int = 0

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None and name in _CAPS:
                continue
            _require_count(name, value)

    def charge(self, input_tokens: int, output_tokens: int, cost: int, *, failed: bool = False) -> None:
        """Add one call: its tokens (input + output) and cost in micro-dollars.

        ``failed`` marks a call that gave no usable answer (an HTTP error, a timeout, a reply that
        was not valid JSON or broke the schema); it still counts as a call and its tokens still count.
        """
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens), ("cost", cost)):
            _require_count(name, value)
        self.spent_tokens += input_tokens + output_tokens
        self.spent_cost += cost
        self.calls += 1
        if failed:
            self.failed_calls += 1

    def exceeded_caps(self) -> list[str]:
        """Names of the caps the spend has gone past (``max_tokens``, ``max_cost``), maybe none."""
        exceeded = []
        if self.max_tokens is not None and self.spent_tokens > self.max_tokens:
            exceeded.append("max_tokens")
        if self.max_cost is not None and self.spent_cost > self.max_cost:
            exceeded.append("max_cost")
        return exceeded

    def check(self) -> None:
        """Raise ``TaskFailure("external_blocker")`` with the spend and the caps once a cap is exceeded."""
        exceeded = self.exceeded_caps()
        if not exceeded:
            return
        parts = []
        if "max_tokens" in exceeded:
            parts.append(f"{self.spent_tokens} tokens spent, cap {self.max_tokens}")
        if "max_cost" in exceeded:
            parts.append(f"{self.spent_cost} micro-dollars spent, cap {self.max_cost}")
        raise TaskFailure(
            EXTERNAL_BLOCKER,
            f"LLM budget exceeded: {'; '.join(parts)}",
            {"exceeded": exceeded, **self.to_data()},
        )

    def output_allowance(self, prompt_tokens: int, input_per_mtok: int | None = None,
                         output_per_mtok: int | None = None) -> int | None:
        """How many output tokens the next call may ask for (``max_tokens``), or None without a cap.

        What is left of the token cap after the prompt (``prompt_tokens``, an estimate), and what
        is left of the cost cap after the prompt's price, turned into output tokens at the model's
        output price. A call asked to stay inside this cannot take the spend a whole call past a cap.
        Raises ``external_blocker`` when fewer than :data:`MIN_OUTPUT_TOKENS` are left.
        """
        _require_count("prompt_tokens", prompt_tokens)
        limits = []
        if self.max_tokens is not None:
            limits.append(self.max_tokens - self.spent_tokens - prompt_tokens)
        if self.max_cost is not None and output_per_mtok:
            prompt_cost = -(-prompt_tokens * (input_per_mtok or 0) // 1_000_000)
            money_left = self.max_cost - self.spent_cost - prompt_cost
            limits.append(money_left * 1_000_000 // output_per_mtok)
        if not limits:
            return None
        allowed = min(limits)
        if allowed < MIN_OUTPUT_TOKENS:
            raise TaskFailure(
                EXTERNAL_BLOCKER,
                f"LLM budget too small for the next call: a prompt of about {prompt_tokens} tokens leaves "
                f"{max(allowed, 0)} output tokens under the caps (at least {MIN_OUTPUT_TOKENS} needed)",
                {"exceeded": [], "prompt_tokens": prompt_tokens, "output_tokens_left": max(allowed, 0),
                 **self.to_data()},
            )
        return allowed

    def to_data(self) -> dict[str, Any]:
        """The plain dict shape documented in the module docstring (JSON-safe)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_data(cls, data: Any) -> Budget:
        """Rebuild a budget from :meth:`to_data`; unknown or missing keys are a clear error."""
        if not isinstance(data, dict):
            raise ValueError(f"budget data must be an object, got {type(data).__name__}")
        unknown = set(data) - set(_FIELDS)
        missing = set(_FIELDS) - set(data)
        if unknown or missing:
            raise ValueError(
                "budget data does not match the documented shape: "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        return cls(**{name: data[name] for name in _FIELDS})


def _require_count(name: str, value: Any) -> None:
    """Token and money amounts are non-negative integers (``bool`` is not accepted as one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"budget {name} must be a non-negative integer, got {value!r}")
