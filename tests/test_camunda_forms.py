"""Camunda 7 form fields drawn in a diagram (``camunda:formData``) are the task's form: shown, defaulted,
validated and stored like a Scopeflow form file, instead of completing the task with no data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lxml import etree

from scopeflow.engine import reads
from scopeflow.engine.errors import EngineError
from scopeflow.engine.service import Engine
from scopeflow.processes import camunda_forms
from scopeflow.processes.bpmn_xml import CAMUNDA_NS
from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import ERROR, lint_catalog
from tests.conftest import add_account, make_settings

LEAVE = Path(__file__).parent / "camunda_forms" / "leave.bpmn"   # its enum value "approve" is also a task id


def fields(xml: str) -> dict:
    root = etree.fromstring(f'<camunda:formData xmlns:camunda="{CAMUNDA_NS}">{xml}</camunda:formData>')
    return camunda_forms.schema_of(root, "A task")


def test_each_field_type_label_default_and_constraint_becomes_json_schema():
    schema = fields(
        '<camunda:formField id="who" label="Who" type="string"><camunda:validation>'
        '<camunda:constraint name="required"/><camunda:constraint name="minlength" config="2"/>'
        '<camunda:constraint name="maxlength" config="40"/></camunda:validation></camunda:formField>'
        '<camunda:formField id="days" type="long" defaultValue="3"><camunda:validation>'
        '<camunda:constraint name="min" config="1"/><camunda:constraint name="max" config="30"/>'
        '<camunda:constraint name="required"/></camunda:validation></camunda:formField>'
        '<camunda:formField id="paid" type="boolean" defaultValue="TRUE"/>'
        '<camunda:formField id="when" type="date" datePattern="yyyy-MM-dd"/>'
        '<camunda:formField id="kind" type="enum" defaultValue="a"><camunda:value id="a" name="A"/>'
        '<camunda:value id="b" name="B"/></camunda:formField>'
        '<camunda:formField id="ref" type="string" defaultValue="R-1"><camunda:validation>'
        '<camunda:constraint name="readonly"/></camunda:validation></camunda:formField>')
    assert schema == {"type": "object", "title": "A task", "required": ["who", "days"], "properties": {
        "who": {"type": "string", "title": "Who", "minLength": 2, "maxLength": 40},
        "days": {"type": "integer", "default": 3, "minimum": 1, "maximum": 30},
        "paid": {"type": "boolean", "default": True},
        "when": {"type": "string", "description": "a date as yyyy-MM-dd"},
        "kind": {"type": "string", "enum": ["a", "b"], "default": "a"},
        "ref": {"type": "string", "default": "R-1", "readOnly": True},
    }}


def test_what_the_schema_cannot_hold_is_named_not_dropped():
    xml = ('<camunda:formField id="x" type="custom" defaultValue="${now()}"><camunda:validation>'
           '<camunda:constraint name="validator" config="com.acme.Check"/></camunda:validation></camunda:formField>')
    schema = fields(xml)
    assert schema["properties"]["x"] == {"type": "string"}   # no expression default, no unknown check
    root = etree.fromstring(f'<camunda:formData xmlns:camunda="{CAMUNDA_NS}">{xml}</camunda:formData>')
    assert camunda_forms.not_carried_over(root) == [
        "field x: type custom is shown as text",
        "field x: the default is an expression, which Scopeflow does not evaluate",
        "field x: constraint validator is not checked"]


def test_lint_takes_the_drawn_form_as_the_tasks_form(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(LEAVE, models / "leave.bpmn")
    messages = lint_catalog(scan(models))
    assert [m for m in messages if m.level == ERROR] == []
    assert not any("no form" in m.message or "is ignored" in m.message for m in messages)
    assert [m.message for m in messages if m.code == "camunda:formData"] == [
        "camunda:formData field note: constraint validator is not checked"]


def test_a_drawn_form_beside_a_named_form_file_is_reported_as_ignored(tmp_path):
    models = tmp_path / "models"
    (models / "forms").mkdir(parents=True)
    (models / "forms" / "approve.json").write_text('{"type": "object", "properties": {}}', encoding="utf-8")
    xml = LEAVE.read_text(encoding="utf-8").replace(
        '<bpmn:userTask id="approve" name="Approve leave" camunda:candidateGroups="reviewer">\n'
        '      <bpmn:extensionElements>',
        '<bpmn:userTask id="approve" name="Approve leave" camunda:candidateGroups="reviewer">\n'
        '      <bpmn:extensionElements><spiffworkflow:properties><spiffworkflow:property '
        'name="formJsonSchemaFilename" value="approve.json"/></spiffworkflow:properties>').replace(
        'xmlns:camunda=', 'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" xmlns:camunda=')
    (models / "leave.bpmn").write_text(xml, encoding="utf-8")
    catalog = scan(models)
    assert catalog.processes["leave"].element("approve").properties["formJsonSchemaFilename"] == "approve.json"
    messages = lint_catalog(catalog)
    assert any(m.element == "approve" and "camunda:formData is ignored" in m.message for m in messages)


@pytest.fixture
def engine(tmp_path) -> Engine:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(LEAVE, models / "leave.bpmn")
    return Engine(make_settings(tmp_path / "home", models))


def test_a_run_validates_the_start_form_and_the_task_form_and_keeps_the_answers(engine):
    with pytest.raises(EngineError, match="'employee' is a required property"):
        engine.start("leave", {"days": 3})
    with pytest.raises(EngineError, match="99 is greater than the maximum of 30"):
        engine.start("leave", {"employee": "Ada", "days": 99})
    instance_id = engine.start("leave", {"employee": "Ada"})
    [task] = reads.tasks(engine.sessions, instance_id=instance_id)
    row = reads.task(engine.sessions, task["id"])
    assert row["form_schema"]["properties"]["decision"]["enum"] == ["approve", "reject"]
    reviewer = add_account(engine, "rita", "reviewer")
    with pytest.raises(EngineError, match="'maybe' is not one of"):
        engine.complete_task(task["id"], {"decision": "maybe"}, actor=reviewer)
    assert engine.complete_task(task["id"], {"decision": "reject", "paid": False}, actor=reviewer) == "completed"
    data = engine.instance_data(instance_id)
    assert {k: data[k] for k in ("employee", "days", "decision", "paid")} == {
        "employee": "Ada", "days": 1, "decision": "reject", "paid": False}
