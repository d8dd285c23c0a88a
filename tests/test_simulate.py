"""`scopeflow simulate MODEL` (issue 16): any diagram runs in memory before operators are bound, with
the same spans as a real run, each marked ``scopeflow.simulated``; nothing is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scopeflow.engine.simulation import Answers, simulate
from scopeflow.processes.catalog import scan
from scopeflow.spans.registry_check import check_spans
from tests.bpmn_text import definitions, flow, process, script
from tests.conftest import MODELS

CAMUNDA_STYLE = definitions(process("invoice", "\n".join([
    '<bpmn:startEvent id="start"/>', flow("f0", "start", "fetch"),
    '<bpmn:serviceTask id="fetch" name="Fetch invoice" camunda:type="external" camunda:topic="invoices"/>',
    flow("f1", "fetch", "gw"), '<bpmn:exclusiveGateway id="gw" default="f_small"/>',
    flow("f_big", "gw", "review", "${amount &gt; 1000}"), flow("f_small", "gw", "pay"),
    '<bpmn:userTask id="review" name="Review invoice" camunda:candidateGroups="accounting"/>',
    flow("f2", "review", "cool_off"),
    '<bpmn:intermediateCatchEvent id="cool_off"><bpmn:timerEventDefinition><bpmn:timeDuration>P7D'
    '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>',
    flow("f3", "cool_off", "pay"), script("pay", "paid = True"), flow("f4", "pay", "end"),
    '<bpmn:endEvent id="end"/>',
]), attrs='isExecutable="false"'))


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCOPEFLOW_HOME": str(tmp_path / "home"), "SCOPEFLOW_MODELS": str(MODELS)}
    env.pop("SCOPEFLOW_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "scopeflow", "simulate", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)


def models(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_a_repository_example_simulates_to_its_end_from_the_cli(tmp_path):
    # Simulated operators return nothing: the gateway after them reads data no one gave.
    unanswered = cli(tmp_path, "hello")
    assert unanswered.returncode == 1
    assert "incident at gw_size: the expression reads total, which the task data does not hold" in unanswered.stdout
    answered = cli(tmp_path, "hello", "--answers", '{"tasks": {"add_numbers": {"totals": {"total": 12}}}}')
    assert answered.returncode == 0, answered.stdout
    assert "simulation of hello: completed" in answered.stdout
    proc = cli(tmp_path, "hello", "--run-operators")
    assert proc.returncode == 0, proc.stderr
    assert "simulation of hello: completed (reached its end)" in proc.stdout
    assert "advance hello" in proc.stdout                  # the trace, as `scopeflow evidence` shows it
    assert not (tmp_path / "home" / "scopeflow.db").exists()  # nothing was stored


def test_answers_from_a_file_decide_the_path_of_a_human_task(tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"start": {"requester": "ada"},
                                   "tasks": {"approve": {"decision": "reject", "comment": "too expensive"}}}))
    proc = cli(tmp_path, "approval", "--answers", f"@{answers}", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    ran = {span["element"] for span in result["spans"]}
    assert "end_rejected" in ran and "end_approved" not in ran
    assert result["data"]["approval"] == {"decision": "reject", "comment": "too expensive"}


def test_form_defaults_answer_human_tasks_when_no_answer_is_given(tmp_path):
    result = simulate(scan(MODELS), "approval", Answers.from_json({"start": {"requester": "ada"}}))
    assert result.status == "completed", result.reason
    assert result.data["approval"]["decision"] == "approve"   # the form's default


def test_a_camunda_diagram_runs_with_its_external_task_simulated_and_its_timer_fired(tmp_path):
    catalog = scan(models(tmp_path, {"invoice.bpmn": CAMUNDA_STYLE}))
    result = simulate(catalog, "invoice", Answers.from_json({"tasks": {"fetch": {"amount": 5000}}}))
    assert result.status == "completed", result.reason
    [unbound] = [m for m in result.lint if m.element == "fetch"]
    assert unbound.level == "error" and "Camunda external task, topic \u201cinvoices\u201d" in unbound.message
    assert result.simulated == ["fetch", "review"]
    ran = [s.attributes.get("scopeflow.bpmn.element.id") for s in result.spans]
    assert ran.index("review") < ran.index("cool_off") < ran.index("pay")
    review = next(s for s in result.spans if s.attributes.get("scopeflow.bpmn.element.id") == "review")
    assert review.attributes["scopeflow.lane"] == "accounting"
    assert result.data["paid"] is True and result.data["amount"] == 5000
    # Without the answer the default path runs (the small amount skips the review).
    small = simulate(catalog, "invoice", Answers.from_json({"tasks": {"fetch": {"amount": 10}}}))
    assert "review" not in {s.attributes.get("scopeflow.bpmn.element.id") for s in small.spans}


def test_simulated_spans_are_the_engine_spans_and_say_they_are_simulated(tmp_path):
    result = simulate(scan(models(tmp_path, {"invoice.bpmn": CAMUNDA_STYLE})), "invoice",
                      Answers.from_json({"tasks": {"fetch": {"amount": 5000}}}))
    assert check_spans(result.spans) == []
    assert all(span.attributes.get("scopeflow.simulated") is True for span in result.spans)
    assert {s.attributes.get("scopeflow.span.type") for s in result.spans} == {"advance", "bpmn.task"}


def test_a_model_with_errors_is_rejected_with_located_messages_and_exit_1(tmp_path):
    bad = CAMUNDA_STYLE.replace("${amount &gt; 1000}", "${amount.compareTo(1000) &gt; 0}")
    root = models(tmp_path, {"invoice.bpmn": bad})
    proc = cli(tmp_path, "invoice", "--models-dir", str(root))
    assert proc.returncode == 1
    assert "invoice.bpmn:" in proc.stderr and "[f_big]" in proc.stderr and "outside the supported subset" in proc.stderr
    assert "simulation of invoice: rejected" in proc.stdout


def test_a_wait_nobody_answers_stops_the_simulation_and_says_what_it_waits_for(tmp_path):
    body = ('<bpmn:startEvent id="s"/>' + flow("f0", "s", "paid")
            + '<bpmn:intermediateCatchEvent id="paid"><bpmn:messageEventDefinition messageRef="m1"/>'
            '</bpmn:intermediateCatchEvent>' + flow("f1", "paid", "e") + '<bpmn:endEvent id="e"/>')
    catalog = scan(models(tmp_path, {"pay.bpmn": definitions(process("pay", body),
                                                              extra='<bpmn:message id="m1" name="payment"/>\n')}))
    waiting = simulate(catalog, "pay")
    assert waiting.status == "waiting" and "message \u201cpayment\u201d at paid" in waiting.reason
    done = simulate(catalog, "pay", Answers.from_json({"messages": {"payment": {"amount": 3}}}))
    assert done.status == "completed", done.reason


def test_bad_answers_are_one_line_and_exit_2(tmp_path):
    proc = cli(tmp_path, "hello", "--answers", '{"tasks": {"x": 3}}')
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: the answer for task x must be an object or a list of objects"
    assert cli(tmp_path, "nope").returncode == 2


def test_a_camunda_8_diagram_with_feel_and_zeebe_bindings_simulates(tmp_path):
    xml = definitions(process("order", "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "charge"),
        '<bpmn:serviceTask id="charge"><bpmn:extensionElements><zeebe:taskDefinition type="charge-card"/>'
        '</bpmn:extensionElements></bpmn:serviceTask>', flow("f1", "charge", "gw"),
        '<bpmn:exclusiveGateway id="gw"/>',
        flow("f_ok", "gw", "ship", '= paid and remaining = 0'), flow("f_retry", "gw", "fix", '= not(paid) or remaining &gt; 0'),
        '<bpmn:userTask id="fix"><bpmn:extensionElements><zeebe:assignmentDefinition candidateGroups="=&quot;billing&quot;"/>'
        '</bpmn:extensionElements></bpmn:userTask>', flow("f2", "fix", "end"),
        script("ship", "shipped = True"), flow("f3", "ship", "end"), '<bpmn:endEvent id="end"/>'])))
    catalog = scan(models(tmp_path, {"order.bpmn": xml}))
    result = simulate(catalog, "order", Answers.from_json({"tasks": {"charge": {"paid": False, "remaining": 5}}}))
    assert result.status == "completed", result.reason
    assert any("Zeebe job type \u201ccharge-card\u201d" in m.message for m in result.lint if m.element == "charge")
    fix = next(s for s in result.spans if s.attributes.get("scopeflow.bpmn.element.id") == "fix")
    assert fix.attributes["scopeflow.lane"] == "billing"
    assert catalog.processes["order"].element("fix").lane == "billing"


def test_a_diagram_is_simulated_and_linted_by_its_path_without_reading_the_rest_of_its_folder(tmp_path):
    body = ('<bpmn:startEvent id="s"/>' + flow("f0", "s", "go") + script("go", "done = 1")
            + flow("f1", "go", "e") + '<bpmn:endEvent id="e"/>')
    folder = tmp_path / "downloads"
    (folder / "old").mkdir(parents=True)
    (folder / "mine.bpmn").write_text(definitions(process("my_flow", body)), encoding="utf-8")
    # A broken diagram in a sub-folder is not this diagram's business (it is not read).
    (folder / "old" / "mine.bpmn").write_text("<not bpmn", encoding="utf-8")
    ran = cli(tmp_path, str(folder / "mine.bpmn"))
    assert ran.returncode == 0, ran.stderr
    assert "simulation of my_flow: completed (reached its end)" in ran.stdout
    linted = subprocess.run([sys.executable, "-m", "scopeflow", "models", "lint", str(folder / "mine.bpmn")],
                            capture_output=True, text=True, env={**os.environ, "SCOPEFLOW_HOME": str(tmp_path / "h")})
    assert linted.returncode == 0 and linted.stdout.strip() == "1 model(s), 0 error(s), 0 warning(s)"


def test_a_diagram_path_that_cannot_run_says_why_in_one_line(tmp_path):
    (tmp_path / "broken.bpmn").write_text("<bpmn", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    two = ('<bpmn:startEvent id="s"/>' + flow("f0", "s", "e") + '<bpmn:endEvent id="e"/>')
    (tmp_path / "two.bpmn").write_text(definitions(process("a", two) + process("b", two.replace('"s"', '"s2"')
                                                                               .replace('"e"', '"e2"'))),
                                       encoding="utf-8")
    for path, message in [("broken.bpmn", "broken.bpmn:1: malformed XML"), ("notes.txt", "is not a .bpmn file"),
                          ("missing.bpmn", "no such BPMN file"), ("two.bpmn", "defines 2 top-level processes (a, b)")]:
        proc = cli(tmp_path, str(tmp_path / path))
        assert proc.returncode == 2, (path, proc.stdout)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (path, proc.stderr)
    lint = subprocess.run([sys.executable, "-m", "scopeflow", "models", "lint", str(tmp_path / "broken.bpmn")],
                          capture_output=True, text=True, env={**os.environ, "SCOPEFLOW_HOME": str(tmp_path / "h")})
    assert lint.returncode == 1 and "broken.bpmn:1: error: malformed XML" in lint.stdout
