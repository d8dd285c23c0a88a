"""The limits of ``processes.bounds``, enforced where SpiffWorkflow computes timers and instances.

Lint refuses literal values over the limits; this module catches computed ones (a timer expression
or a cardinality read from task data) at the moment SpiffWorkflow evaluates them, so a hostile value
becomes an incident instead of a hang: ``P999999999999Y`` would otherwise loop over every month,
``R/PT0S`` would fire on every engine step, and a cardinality of 10,000,000 would build that many tasks.

Installed once, on import (``engine/spiff.py`` imports it), by wrapping four SpiffWorkflow functions.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import (
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
)

from scopeflow.processes import bounds

_UNIT_SECONDS = {"years": 365.25 * 86400, "months": 30.44 * 86400, "weeks": 7 * 86400, "days": 86400,
                 "hours": 3600, "minutes": 60, "seconds": 1}


def _bounded_parse_iso_duration(original):
    def parse_iso_duration(expression: str) -> dict[str, Any]:
        parsed = original(expression)
        seconds = sum(float(value) * _UNIT_SECONDS.get(unit, 0) for unit, value in parsed.items())
        if seconds > bounds.MAX_TIMER_DAYS * 86400:
            raise bounds.BoundError(f"timer duration {expression} is longer than the limit of "
                                    f"{bounds.MAX_TIMER_DAYS // 366} years")
        return parsed
    return staticmethod(parse_iso_duration)


def _bounded_recurring_interval(original):
    def parse_iso_recurring_interval(expression: str):
        cycles, start, duration = original(expression)
        if cycles > bounds.MAX_CYCLE_REPETITIONS:
            raise bounds.BoundError(f"timer cycle {expression} repeats more than "
                                    f"{bounds.MAX_CYCLE_REPETITIONS:,} times")
        if duration.total_seconds() < bounds.MIN_CYCLE_INTERVAL_S:
            raise bounds.BoundError(f"timer cycle {expression} repeats every {duration.total_seconds():g}s; "
                                    f"the minimum interval is {bounds.MIN_CYCLE_INTERVAL_S}s")
        bounds.check_catch_up(expression, start, duration.total_seconds())
        return cycles, start, duration
    return staticmethod(parse_iso_recurring_interval)


def _bounded_instances(original):
    """Wrap the method that creates instances (all at once, or the next one of a sequence)."""
    def create(self, my_task, *args, **kwargs):
        try:
            bounds.check_cardinality(_instance_count(self, my_task))
        except bounds.BoundError as exc:
            raise WorkflowTaskException(str(exc), task=my_task, exception=exc) from exc
        return original(self, my_task, *args, **kwargs)
    return create


def _instance_count(spec, my_task) -> Any:
    if spec.data_input is not None:
        try:
            value = spec.data_input.get(my_task)
        except Exception:  # SpiffWorkflow reports a missing input itself, with its own message
            return None
        return len(value) if hasattr(value, "__len__") else None
    if spec.cardinality:
        return my_task.workflow.script_engine.evaluate(my_task, spec.cardinality)
    return None


def install() -> None:
    if getattr(TimerEventDefinition, "_scopeflow_bounded", False):
        return
    TimerEventDefinition.parse_iso_duration = _bounded_parse_iso_duration(TimerEventDefinition.parse_iso_duration)
    TimerEventDefinition.parse_iso_recurring_interval = _bounded_recurring_interval(
        TimerEventDefinition.parse_iso_recurring_interval)
    ParallelMultiInstanceTask.create_children = _bounded_instances(ParallelMultiInstanceTask.create_children)
    SequentialMultiInstanceTask.add_next_child = _bounded_instances(SequentialMultiInstanceTask.add_next_child)
    TimerEventDefinition._scopeflow_bounded = True


install()
