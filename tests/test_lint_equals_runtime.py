"""Lint equals runtime (issue 16): what lint accepts runs, what would fail at run time is a located
lint error, and valid BPMN from other modelers is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine, EngineError
from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import ERROR, WARNING, errors, grouped, lint_catalog
from scopeflow.program import program
from tests.bpmn_text import definitions, flow, gateway_choice, process, script
from tests.conftest import make_settings
from tests.test_bpmn_corpus import REPR


def write(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def lint(root: Path):
    messages = lint_catalog(scan(root))
    for message in messages:
        assert not REPR.search(message.message), str(message)
    return messages


def run(tmp_path: Path, root: Path, model: str, data: dict | None = None) -> tuple[str, set[str]]:
    """Start ``model`` like `scopeflow start`; (status, ids of the elements that ran)."""
    engine = Engine(make_settings(tmp_path / "home", root))
    instance_id = engine.start(model, data or {})
    with engine.sessions() as session:
        status = session.get(Instance, instance_id).status
    if status == "waiting":  # a due timer: what a worker does next
        status = engine.advance(instance_id, reason="timer")
    ran = {s.attributes.get("scopeflow.bpmn.element.id") for s in engine.recorded_spans(instance_id)}
    return status, ran


# ------------------------------------------------------------------------------ dialects that run

@pytest.mark.parametrize(("dialect", "conditions", "data", "taken"), [
    ("JUEL", ("${approved}", "${!approved}"), {"approved": True}, "yes"),
    ("JUEL", ("${amount gt 100 &amp;&amp; order.rush}", "${amount le 100 || !order.rush}"),
     {"amount": 150, "order": {"rush": False}}, "no"),
    ("FEEL", ("= amount > 100 and status = \"open\"", "= not(amount > 100 and status = \"open\")"),
     {"amount": 150, "status": "open"}, "yes"),
    ("Python", ("approved == True", "approved != True"), {"approved": False}, "no"),
])
def test_juel_and_feel_conditions_lint_clean_and_take_the_right_path(tmp_path, dialect, conditions, data, taken):
    root = write(tmp_path, {"choice.bpmn": definitions(gateway_choice("choice", conditions))})
    assert errors(lint(root)) == []
    status, ran = run(tmp_path, root, "choice", data)
    assert status == "completed"
    assert taken in ran and ({"yes", "no"} - {taken}).isdisjoint(ran)


@pytest.mark.parametrize("timer", ["PT0S", "P0D", "${'PT0S'}"])
def test_an_unquoted_iso_timer_lints_clean_and_fires(tmp_path, timer):
    body = "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "wait"),
        f'<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>{timer}'
        '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>',
        flow("f1", "wait", "end"), '<bpmn:endEvent id="end"/>'])
    root = write(tmp_path, {"timer.bpmn": definitions(process("timer", body))})
    assert errors(lint(root)) == []
    assert run(tmp_path, root, "timer")[0] == "completed"


# ------------------------------------------------------------------------------ what would fail is a lint error

def one_task(task: str, extra: str = "") -> str:
    return definitions(process("m", "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "t"), task, flow("f1", "t", "end"),
        '<bpmn:endEvent id="end"/>'])), extra=extra)


@pytest.mark.parametrize(("name", "xml", "element", "fragment"), [
    ("javascript", one_task(script("t", "x = 1", fmt="javascript")), "t", "script format \u201cjavascript\u201d"),
    ("unparseable_timer", one_task('<bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition>'
                                   '<bpmn:timeDuration>in five minutes</bpmn:timeDuration>'
                                   '</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>'),
     "t", "timeDuration does not compile"),
    ("empty_timer", one_task('<bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition/>'
                             '</bpmn:intermediateCatchEvent>'), "t", "timer has no time"),
    ("cron", one_task('<bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition><bpmn:timeCycle>'
                      '0 0/5 * * * ?</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>'),
     "t", "cron expression"),
    ("juel_method_call", definitions(gateway_choice("m", ("${order.isValid()}", "${true}"))), "f_yes",
     "outside the supported subset"),
    ("python_syntax", definitions(gateway_choice("m", ("approved ==", "True"))), "f_yes",
     "does not compile in the script sandbox"),
    ("undefined_message", one_task('<bpmn:intermediateCatchEvent id="t"><bpmn:messageEventDefinition '
                                   'messageRef="nowhere"/></bpmn:intermediateCatchEvent>'), "t", "is not defined in this file"),
    ("nameless_message", one_task('<bpmn:intermediateCatchEvent id="t"><bpmn:messageEventDefinition/>'
                                  '</bpmn:intermediateCatchEvent>'), "t", "neither a message"),
    ("groovy_condition", definitions(gateway_choice("m", ("${x}", "${y}"))).replace(
        'xsi:type="bpmn:tFormalExpression">${x}', 'xsi:type="bpmn:tFormalExpression" language="groovy">${x}'),
     "f_yes", "groovy is not supported"),
])
def test_what_would_fail_at_run_time_is_a_located_lint_error_and_refuses_the_start(tmp_path, name, xml, element, fragment):
    root = write(tmp_path, {"m.bpmn": xml})
    problems = errors(lint(root))
    assert problems, name
    [problem] = [p for p in problems if p.element == element]
    assert problem.file == "m.bpmn" and problem.line > 0
    assert fragment in problem.message
    with pytest.raises(EngineError, match="lint error"):
        Engine(make_settings(tmp_path / "home", root)).start("m", {})


def test_a_message_start_event_without_a_message_is_an_error_naming_the_wait(tmp_path):
    xml = definitions(process("m", '<bpmn:startEvent id="s"><bpmn:messageEventDefinition/></bpmn:startEvent>'
                                   + flow("f", "s", "e") + '<bpmn:endEvent id="e"/>'))
    [problem] = errors(lint(write(tmp_path, {"m.bpmn": xml})))
    assert problem.element == "s" and "wait forever" in problem.message


def test_every_error_of_a_file_is_reported_and_one_bad_pool_hides_nothing(tmp_path):
    bad = process("bad", '<bpmn:startEvent id="s1"/>' + flow("g1", "s1", "x1")
                  + script("x1", "x = 1", fmt="groovy") + flow("g2", "x1", "e1") + '<bpmn:endEvent id="e1"/>')
    worse = gateway_choice("worse", ("${a.b()}", "approved ==")).replace('id="start"', 'id="start2"').replace(
        'sourceRef="start"', 'sourceRef="start2"')
    good = process("good", '<bpmn:startEvent id="s3"/>' + flow("h1", "s3", "e3") + '<bpmn:endEvent id="e3"/>')
    root = write(tmp_path, {"pools.bpmn": definitions(bad, worse, good)})
    problems = errors(lint(root))
    assert {p.element for p in problems} == {"x1", "f_yes", "f_no"}
    assert all(p.line > 0 for p in problems)
    # The good pool of the same file still runs.
    assert run(tmp_path, root, "good")[0] == "completed"


# ------------------------------------------------------------------------------ valid BPMN is accepted

def test_a_missing_is_executable_counts_as_executable(tmp_path):
    xml = definitions(process("p", '<bpmn:startEvent id="s"/>' + flow("f", "s", "e") + '<bpmn:endEvent id="e"/>',
                              attrs=""))
    root = write(tmp_path, {"p.bpmn": xml})
    assert errors(lint(root)) == [] and scan(root).models == ["p"]
    assert run(tmp_path, root, "p")[0] == "completed"


def test_is_executable_false_is_a_located_error_and_start_says_how_to_fix_it(tmp_path):
    xml = definitions(process("p", '<bpmn:startEvent id="s"/>', attrs='isExecutable="false"'))
    root = write(tmp_path, {"p.bpmn": xml})
    [problem] = errors(lint(root))
    assert (problem.line, problem.element) == (3, "p") and 'set isExecutable="true"' in problem.message
    with pytest.raises(EngineError, match=r'p.bpmn:3: process p is not executable .*set isExecutable="true"'):
        Engine(make_settings(tmp_path / "home", root)).start("p", {})


def test_models_deploy_with_nothing_executable_fails_and_says_why(tmp_path):
    from scopeflow.cli import main

    xml = definitions(process("p", '<bpmn:startEvent id="s"/>', attrs='isExecutable="false"'))
    root = write(tmp_path, {"p.bpmn": xml})
    env = {"SCOPEFLOW_HOME": str(tmp_path / "home"), "SCOPEFLOW_MODELS": str(root), "SCOPEFLOW_DATABASE_URL": ""}
    result = CliRunner().invoke(main, ["models", "deploy"], env=env)
    assert result.exit_code == 1
    assert "nothing to deploy: no executable process" in result.output


def test_an_activity_with_two_outgoing_flows_runs_both_paths(tmp_path):
    body = "\n".join(['<bpmn:startEvent id="s"/>', flow("f0", "s", "a"), script("a", "n = 1"),
                      flow("f1", "a", "b1"), flow("f2", "a", "b2"), script("b1", "x = 1"), script("b2", "y = 2"),
                      flow("f3", "b1", "e1"), flow("f4", "b2", "e2"), '<bpmn:endEvent id="e1"/>',
                      '<bpmn:endEvent id="e2"/>'])
    root = write(tmp_path, {"split.bpmn": definitions(process("split", body))})
    messages = lint(root)
    assert errors(messages) == []
    assert any(m.level == WARNING and m.element == "a" and "parallel split" in m.message for m in messages)
    status, ran = run(tmp_path, root, "split")
    assert status == "completed" and {"b1", "b2", "e1", "e2"} <= ran


def test_a_subprocess_without_start_or_end_event_runs_its_content(tmp_path):
    body = "\n".join(['<bpmn:startEvent id="s"/>', flow("f0", "s", "sub"),
                      '<bpmn:subProcess id="sub">' + script("inner", "inside = True") + '</bpmn:subProcess>',
                      flow("f1", "sub", "e"), '<bpmn:endEvent id="e"/>'])
    root = write(tmp_path, {"sub.bpmn": definitions(process("sub_demo", body))})
    assert errors(lint(root)) == []
    status, ran = run(tmp_path, root, "sub_demo")
    assert status == "completed" and "inner" in ran


def test_data_stores_without_implementation_or_name_are_documentation(tmp_path):
    body = "\n".join(['<bpmn:startEvent id="s"/>', flow("f0", "s", "t"),
                      '<bpmn:scriptTask id="t"><bpmn:dataOutputAssociation id="a1"><bpmn:targetRef>ref1</bpmn:targetRef>'
                      '</bpmn:dataOutputAssociation><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>',
                      '<bpmn:dataStoreReference id="ref1" dataStoreRef="store1"/>',
                      flow("f1", "t", "e"), '<bpmn:endEvent id="e"/>'])
    xml = definitions(process("ds", body), extra='<bpmn:dataStore id="store1"/>\n')
    root = write(tmp_path, {"ds.bpmn": xml})
    messages = lint(root)
    assert errors(messages) == []
    assert any(m.code == "data-store" for m in messages)
    assert run(tmp_path, root, "ds")[0] == "completed"


def test_vendor_content_in_di_extension_is_accepted(tmp_path):
    xml = definitions(process("p", '<bpmn:startEvent id="s"/>' + flow("f", "s", "e") + '<bpmn:endEvent id="e"/>')
                      + '<bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="pl" bpmnElement="p">'
                      '<bpmndi:BPMNShape id="s_di" bpmnElement="s"><dc:Bounds x="1" y="1" width="36" height="36"/>'
                      '<di:extension><vendor:colour xmlns:vendor="http://vendor.example/di" fill="red"/>'
                      '</di:extension></bpmndi:BPMNShape></bpmndi:BPMNPlane></bpmndi:BPMNDiagram>')
    root = write(tmp_path, {"p.bpmn": xml})
    assert errors(lint(root)) == []
    assert run(tmp_path, root, "p")[0] == "completed"


def test_an_iso_8859_1_file_is_read_in_its_declared_encoding(tmp_path):
    body = ('<bpmn:startEvent id="s" name="Stra\u00dfe \u00e4ndern"/>' + flow("f", "s", "e")
            + '<bpmn:endEvent id="e" name="fertig"/>')
    xml = definitions(process("latin", body), encoding="ISO-8859-1").encode("iso-8859-1")
    root = write(tmp_path, {"latin.bpmn": xml})
    assert errors(lint(root)) == []
    catalog = scan(root)
    assert catalog.processes["latin"].element("s").name == "Stra\u00dfe \u00e4ndern"
    assert run(tmp_path, root, "latin")[0] == "completed"


def test_a_call_to_a_global_task_or_unknown_process_is_located_at_the_call_activity(tmp_path):
    body = "\n".join(['<bpmn:startEvent id="s"/>', flow("f0", "s", "c1"),
                      '<bpmn:callActivity id="c1" calledElement="gt"/>', flow("f1", "c1", "c2"),
                      '<bpmn:callActivity id="c2" calledElement="nowhere"/>', flow("f2", "c2", "e"),
                      '<bpmn:endEvent id="e"/>'])
    xml = definitions(process("caller", body), extra='<bpmn:globalUserTask id="gt"/>\n')
    problems = {p.element: p for p in errors(lint(write(tmp_path, {"c.bpmn": xml})))}
    assert "global task" in problems["c1"].message and problems["c1"].line > 0
    assert "unknown process \u201cnowhere\u201d" in problems["c2"].message


# ------------------------------------------------------------------------------ people and vendor attributes

def test_camunda_candidate_groups_become_the_lane_role_and_meaningful_attributes_are_named(tmp_path):
    body = "\n".join(['<bpmn:startEvent id="s"/>', flow("f0", "s", "review"),
                      '<bpmn:userTask id="review" camunda:candidateGroups="accounting, management" '
                      'camunda:assignee="demo" camunda:formKey="embedded:app:forms/review.html" '
                      'camunda:asyncBefore="true"/>', flow("f1", "review", "e"), '<bpmn:endEvent id="e"/>'])
    root = write(tmp_path, {"people.bpmn": definitions(process("people", body))})
    messages = lint(root)
    assert errors(messages) == []
    named = " | ".join(m.message for m in messages if m.element == "review")
    for fragment in ("candidate group \u201caccounting\u201d is mapped to a lane", "assignee \u201cdemo\u201d",
                     "camunda:formKey is ignored", "camunda:asyncBefore is ignored"):
        assert fragment in named
    engine = Engine(make_settings(tmp_path / "home", root))
    instance_id = engine.start("people", {})
    from scopeflow.engine.queries import list_tasks
    with engine.sessions() as session:
        [task] = list_tasks(session, instance_id=instance_id)
    assert task["role"] == "accounting"


def test_warnings_are_grouped_by_kind_with_counts(tmp_path):
    ext = "".join(f'<bpmn:task id="t{i}"><bpmn:extensionElements><signavio:signavioMetaData '
                  f'xmlns:signavio="http://www.signavio.com" metaKey="k" metaValue="v"/></bpmn:extensionElements>'
                  f'</bpmn:task>' + flow(f"f{i}", f"t{i}", f"t{i + 1}") for i in range(20))
    body = '<bpmn:startEvent id="s"/>' + flow("fs", "s", "t0") + ext + '<bpmn:endEvent id="t20"/>'
    messages = lint(write(tmp_path, {"noisy.bpmn": definitions(process("noisy", body))}))
    assert len([m for m in messages if m.code == "extension"]) == 20
    lines = grouped(messages)
    [line] = [ln for ln in lines if "signavio" in ln]
    assert "(20\u00d7)" in line and "signavio:signavioMetaData (20)" in line
    assert len(lines) < 5
    # `scopeflow models lint` prints the grouped lines.
    from scopeflow.cli import main

    env = {"SCOPEFLOW_HOME": str(tmp_path / "home"), "SCOPEFLOW_MODELS": str(tmp_path / "models"),
           "SCOPEFLOW_DATABASE_URL": ""}
    output = CliRunner().invoke(main, ["models", "lint"], env=env).output
    assert line in output and output.count("\n") == 2   # the grouped line and the summary


def test_the_repository_models_still_lint_clean_and_every_error_is_located():
    from tests.conftest import MODELS

    messages = lint_catalog(scan(MODELS))
    assert [str(m) for m in messages if m.level == ERROR] == []


def test_an_incident_caused_by_the_model_says_so_instead_of_asking_for_data(capsys):
    from scopeflow.cli import _describe

    summary = {"id": "i-1", "status": "error", "model": "m", "version": 1, "tasks": []}
    _describe({**summary, "incident": {"bpmn_id": "gw", "error_type": "WorkflowTaskException",
                                       "message": "Error evaluating expression 'x ==': ScriptError: expression "
                                                  "refused: Line 1: SyntaxError: invalid syntax"}})
    assert "the model is wrong at gw: fix the diagram" in capsys.readouterr().out
    _describe({**summary, "incident": {"bpmn_id": "gw", "error_type": "NameError", "message": "name 'x' is not defined"}})
    assert f"fix the cause, then: {program()} instances retry i-1" in capsys.readouterr().out
