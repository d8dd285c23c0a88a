"""Message delivery matches the message's name: an instance waiting for two messages at once gets
the one that was sent, and the other keeps waiting (its subscription row stays)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scopeflow.engine.models import Instance, MessageSubscription
from scopeflow.engine.service import Engine
from tests.bpmn_text import definitions, flow, process, script
from tests.conftest import make_settings


def _catch(eid: str, message_ref: str) -> str:
    return (f'<bpmn:intermediateCatchEvent id="{eid}"><bpmn:messageEventDefinition id="def_{eid}" '
            f'messageRef="{message_ref}"/></bpmn:intermediateCatchEvent>')


def _two_waits() -> str:
    """start → parallel split → (wait for "alpha" → got_alpha | wait for "beta" → got_beta) → join → end."""
    return definitions(process("two_waits", "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "split"),
        '<bpmn:parallelGateway id="split"/>', flow("fa", "split", "wait_alpha"), flow("fb", "split", "wait_beta"),
        _catch("wait_alpha", "msg_alpha"), _catch("wait_beta", "msg_beta"),
        flow("fa2", "wait_alpha", "got_alpha"), flow("fb2", "wait_beta", "got_beta"),
        script("got_alpha", "alpha_seen = True"), script("got_beta", "beta_seen = True"),
        '<bpmn:parallelGateway id="join"/>', flow("fa3", "got_alpha", "join"), flow("fb3", "got_beta", "join"),
        '<bpmn:endEvent id="end"/>', flow("f9", "join", "end"),
    ])), extra='<bpmn:message id="msg_alpha" name="alpha"/><bpmn:message id="msg_beta" name="beta"/>')


@pytest.fixture
def engine(tmp_path) -> Engine:
    models = tmp_path / "models"
    models.mkdir()
    (models / "two_waits.bpmn").write_text(_two_waits(), encoding="utf-8")
    return Engine(make_settings(tmp_path / "home", models, migrated_copy=True))


def _waiting_for(engine: Engine, instance_id: str) -> list[str]:
    with engine.sessions() as session:
        return sorted(session.scalars(select(MessageSubscription.message_name)
                                      .where(MessageSubscription.instance_id == instance_id)))


@pytest.mark.parametrize(("first", "second"), [("alpha", "beta"), ("beta", "alpha")])
def test_each_message_reaches_the_wait_of_its_own_name(engine, first, second):
    instance_id = engine.start("two_waits", {})
    assert _waiting_for(engine, instance_id) == ["alpha", "beta"]
    assert engine.send_message(first, {}) == [instance_id]
    assert _waiting_for(engine, instance_id) == [second], f"{first} was delivered to the wait for {second}"
    assert engine.send_message(second, {}) == [instance_id]
    with engine.sessions() as session:
        assert session.get(Instance, instance_id).status == "completed"
