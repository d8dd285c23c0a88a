"""What a workflow waits on, as rows: timers (their due time wakes the instance) and message
subscriptions (``send_message`` finds its targets by them). Written by every checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import Connection, delete, insert

from scopeflow.engine.models import MessageSubscription, Timer

if TYPE_CHECKING:
    from scopeflow.engine.unit_of_work import Work

TIMERS = Timer.__table__
SUBSCRIPTIONS = MessageSubscription.__table__


def waits(work: Work) -> tuple[list[dict], list[dict], datetime | None]:
    """Timer and message-subscription rows for what the workflow waits on, and the earliest due."""
    timers, subscriptions, earliest = [], [], None
    for task in list(work.workflow.event_manager.tasks.values()):
        definition = task.task_spec.event_definition
        if isinstance(definition, TimerEventDefinition):
            due = timer_due(definition, task)
            if due is not None:
                timers.append({"instance_id": work.instance_id, "bpmn_id": task.task_spec.bpmn_id, "due_at": due})
                earliest = due if earliest is None or due < earliest else earliest
        elif isinstance(definition, MessageEventDefinition):
            element = work.runner.element_of(task)
            key_var = element.properties.get("correlationKey") if element else None
            key = task.data.get(key_var) if key_var else None
            subscriptions.append({"instance_id": work.instance_id, "bpmn_id": task.task_spec.bpmn_id,
                                  "message_name": definition.name,
                                  "correlation_key": None if key is None else str(key)})
    return timers, subscriptions, earliest


def store_waits(conn: Connection, work: Work, timers: list[dict], subscriptions: list[dict]) -> None:
    """Replace the instance's wait rows (skipping the deletes for one that never had any)."""
    if work.had_waits:
        conn.execute(delete(TIMERS).where(TIMERS.c.instance_id == work.instance_id))
        conn.execute(delete(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.instance_id == work.instance_id))
    if timers:
        conn.execute(insert(TIMERS), timers)
    if subscriptions:
        conn.execute(insert(SUBSCRIPTIONS), subscriptions)
    work.had_waits = work.had_waits or bool(timers or subscriptions)


def timer_due(definition, task) -> datetime | None:
    """The timer's due time when it is a date (timezone-naive means UTC); None for anything else."""
    value = definition.details(task).value
    if isinstance(value, str):
        try:
            due = datetime.fromisoformat(value)
        except ValueError:
            return None
        return due if due.tzinfo else due.replace(tzinfo=UTC)
    return None
