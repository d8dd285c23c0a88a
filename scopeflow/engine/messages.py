"""Message delivery: a message goes to every instance subscribed to its name (and correlation key),
each in its own unit of work, so one instance that stopped waiting never blocks the others' delivery
of what they did wait for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from sqlalchemy import select

from scopeflow.engine.checkpoint import audit_row
from scopeflow.engine.errors import EngineError
from scopeflow.engine.models import MessageSubscription
from scopeflow.engine.unit_of_work import Work, open_work, run

if TYPE_CHECKING:
    from scopeflow.engine.service import Engine


def send_message(engine: Engine, name: str, payload: dict[str, Any] | None = None, *,
                 correlation_key: str | None = None, actor: str = "cli") -> list[str]:
    """Deliver a message to every instance waiting for ``name`` (with that correlation key)."""
    with engine.sessions() as session:
        query = select(MessageSubscription.instance_id).where(MessageSubscription.message_name == name)
        if correlation_key is not None:
            query = query.where(MessageSubscription.correlation_key == str(correlation_key))
        targets = sorted(set(session.scalars(query).all()))
    delivered = []
    for instance_id in targets:
        def deliver(work: Work) -> None:
            waiting = [t.task_spec.event_definition for t in work.workflow.event_manager.tasks.values()
                       if isinstance(t.task_spec.event_definition, MessageEventDefinition)
                       and t.task_spec.event_definition.name == name]
            if not waiting:
                raise EngineError(f"instance {work.instance_id} is no longer waiting for {name!r}", code=1)
            # The waiting task's own definition: matching compares the definition class too.
            work.workflow.send_event(BpmnEvent(waiting[0], payload=payload or {}))

        audit = [audit_row(actor, "message.deliver", name, instance_id, {"correlation_key": correlation_key})]
        with open_work(engine, instance_id) as work:
            run(engine, work, f"message {name}", before=deliver, audit=audit)
        delivered.append(instance_id)
    return delivered
