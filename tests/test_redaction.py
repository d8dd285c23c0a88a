"""One redactor for every sink: longest secret first, no minimum length."""

from __future__ import annotations

from sqlalchemy import select

from scopeflow.engine.models import Instance
from scopeflow.redaction import REDACTED, secret_redactor


def test_a_secret_containing_another_is_replaced_whole():
    redact = secret_redactor(["TOKEN", "TOKEN-EXTENDED-TAIL"])
    assert redact("use TOKEN-EXTENDED-TAIL or TOKEN") == f"use {REDACTED} or {REDACTED}"


def test_short_secrets_are_redacted_too():
    assert secret_redactor(["123"])("pin is 123") == f"pin is {REDACTED}"


def test_no_secrets_changes_nothing_and_special_characters_are_literal():
    assert secret_redactor([])("a.b") == "a.b"
    assert secret_redactor(["a.b", ""])("axb a.b") == f"axb {REDACTED}"


def test_the_engine_redacts_incidents_with_the_same_rules(tmp_path):
    from scopeflow.engine.service import Engine
    from tests.conftest import make_settings
    from tests.test_security_scripts import _script_model

    models = tmp_path / "models"
    models.mkdir()
    (models / "leaky.bpmn").write_text(_script_model("leaky", "raise ValueError(note)"), encoding="utf-8")
    engine = Engine(make_settings(tmp_path / "home", models))
    engine.secrets.set("SHORT_PIN", "481", actor="test")
    engine.secrets.set("API_TOKEN", "TOKEN", actor="test")
    engine.secrets.set("API_TOKEN_LONG", "TOKEN-EXTENDED-TAIL", actor="test")
    instance_id = engine.start("leaky", {"note": "failed with TOKEN-EXTENDED-TAIL and pin 481"})
    with engine.sessions() as session:
        incident = session.scalar(select(Instance.incident).where(Instance.id == instance_id))
    assert incident is not None
    text = incident["message"] + incident["traceback"]
    assert "481" not in text and "TOKEN" not in text and "TAIL" not in text
    assert REDACTED in incident["message"]
