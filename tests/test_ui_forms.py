"""Task forms from JSON schema (including secret name/value rows), and the small filters the
templates use (ages, SLA states, safe markdown)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from werkzeug.datastructures import MultiDict

from scopeflow.ui.filters import age, render_markdown, sla_state
from scopeflow.ui.schema_form import build_fields, parse_form, safe_echo
from tests.conftest import MODELS

FORMS = MODELS / "forms"


def _schema(name: str) -> dict:
    return json.loads((FORMS / name).read_text())


def test_fields_follow_the_schema_kinds_defaults_and_help():
    fields = {f.name: f for f in build_fields(_schema("confirm_scope.schema.json"),
                                              map_keys={"answers": {"q1": "yes"}})}
    assert fields["confirmed"].kind == "boolean" and fields["confirmed"].value is True
    assert fields["answers"].kind == "map" and fields["answers"].rows[0] == ("q1", "")
    assert fields["answers"].placeholders == {"q1": "yes"}
    assert fields["comment"].kind == "text" and fields["comment"].description.startswith("Anything")
    review = {f.name: f for f in build_fields(_schema("final_review.schema.json"))}
    assert review["decision"].kind == "enum" and review["decision"].options == ["approve", "request_changes", "reject"]
    assert review["decision"].required and review["decision"].value == "approve"


def test_read_only_properties_are_not_offered():
    names = {f.name for f in build_fields(_schema("delivery.start.schema.json"))}
    assert "regenerations" not in names and "max_regenerations" in names


def test_posted_fields_become_typed_data():
    schema = _schema("confirm_scope.schema.json")
    form = MultiDict([("f.confirmed.present", "1"), ("f.answers.key", "q1"), ("f.answers.value", "Book"),
                      ("f.answers.key", ""), ("f.answers.value", ""), ("f.comment", "fine")])
    data, errors = parse_form(schema, form)
    assert errors == {} and data == {"confirmed": False, "answers": {"q1": "Book"}, "comment": "fine"}


def test_invalid_values_are_reported_per_field():
    data, errors = parse_form(_schema("final_review.schema.json"), MultiDict([("f.decision", "maybe")]))
    assert "decision" in errors and "is not one of" in errors["decision"]
    data, errors = parse_form(_schema("delivery.start.schema.json"),
                              MultiDict([("f.scope", "x"), ("f.max_regenerations", "lots")]))
    assert errors["max_regenerations"] == "must be a whole number"
    _data, errors = parse_form(_schema("confirm_scope.schema.json"),
                               MultiDict([("f.answers.key", ""), ("f.answers.value", "orphan")]))
    assert errors["answers"] == "every value needs a name"


def test_credential_values_are_password_inputs_and_never_echoed():
    schema = _schema("provide_credentials.schema.json")
    fields = {f.name: f for f in build_fields(schema, {"values": {"STRIPE_API_KEY": "sk_live_x"}},
                                              map_keys={"values": {"STRIPE_API_KEY": ""}})}
    assert fields["values"].kind == "secret_map"
    assert fields["values"].rows[0] == ("STRIPE_API_KEY", "")        # the name is proposed, the value never
    data, errors = parse_form(schema, MultiDict([("f.action", "provide"), ("f.values.key", "STRIPE_API_KEY"),
                                                 ("f.values.value", "sk_live_x")]))
    assert errors == {} and data["values"] == {"STRIPE_API_KEY": "sk_live_x"}
    assert "values" not in safe_echo(schema, data)


def test_sla_states_and_ages():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert sla_state(now - timedelta(minutes=1), now) == "overdue"
    assert sla_state(now + timedelta(minutes=30), now) == "due soon"
    assert sla_state(now + timedelta(hours=5), now) == "ok"
    assert sla_state(None, now) == ""
    assert age(now - timedelta(hours=3), now) == "3h" and age((now - timedelta(days=2)).isoformat(), now) == "2d"


def test_markdown_escapes_html_and_drops_script_links():
    html = str(render_markdown("# T\n\n<img src=x onerror=alert(1)>\n\n[a](javascript:alert(1)) | x\n"))
    assert "<h1>T</h1>" in html and "<img" not in html and "&lt;img" in html and "href=\"javascript" not in html
