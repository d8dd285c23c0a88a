"""Bad models and bad input get one-line errors with the right exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import ERROR, WARNING, lint_catalog
from scopeflow.processes.synth import linear_process
from tests.conftest import MODELS

HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
          'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">\n')


def lint_dir(tmp_path: Path, files: dict[str, str]):
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return lint_catalog(scan(root))


def test_the_repository_models_lint_clean():
    messages = lint_catalog(scan(MODELS))
    assert [str(m) for m in messages if m.level == ERROR] == []


def test_malformed_xml_is_reported_with_file_and_line(tmp_path):
    [message] = lint_dir(tmp_path, {"broken.bpmn": HEADER + "<bpmn:process id='p'>\n<oops>\n</bpmn:definitions>"})
    assert message.level == ERROR and message.file == "broken.bpmn" and message.line > 0
    assert "malformed XML" in message.message


def test_a_process_marked_not_executable_is_a_located_error_with_the_fix(tmp_path):
    messages = lint_dir(tmp_path, {"idle.bpmn": HEADER + '<bpmn:process id="idle" isExecutable="false">'
                                   '<bpmn:startEvent id="s"/></bpmn:process></bpmn:definitions>'})
    [message] = [m for m in messages if m.level == ERROR]
    assert (message.file, message.line, message.element) == ("idle.bpmn", 3, "idle")
    assert 'set isExecutable="true"' in message.message


def test_an_unregistered_operator_is_named(tmp_path):
    messages = lint_dir(tmp_path, {"odd.bpmn": linear_process("odd", [("step", "no_such_operator", {})])})
    assert any(m.element == "step" and "\u201cno_such_operator\u201d is not registered" in m.message for m in messages)


def test_compensation_is_an_error_and_foreign_extensions_are_warnings(tmp_path):
    xml = linear_process("comp", [("step", "noop", {})]).replace(
        '<bpmn:endEvent id="end" name="End">',
        '<bpmn:endEvent id="end" name="End"><bpmn:extensionElements><camunda:properties/>'
        '</bpmn:extensionElements>'
    ).replace('</bpmn:incoming></bpmn:endEvent>', '</bpmn:incoming><bpmn:compensateEventDefinition id="c1"/></bpmn:endEvent>').replace('xmlns:spiffworkflow=', 'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:spiffworkflow=')
    messages = lint_dir(tmp_path, {"comp.bpmn": xml})
    assert any(m.level == ERROR and m.element == "end" and "compensation" in m.message for m in messages)
    assert any(m.level == WARNING and "camunda" in m.message for m in messages)


def scopeflow(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCOPEFLOW_HOME": str(tmp_path / "home"), "SCOPEFLOW_MODELS": str(MODELS)}
    env.pop("SCOPEFLOW_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "scopeflow", *args], capture_output=True, text=True,
                          env=env, input=stdin, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["start", "nope"], "unknown model nope (known: "),
    (["start", "hello", "--data", "{bad"], "--data is not valid JSON"),
    (["start", "failures", "--data", '{"failure_kind": "meteor"}'], "start data is invalid"),
    (["instances", "show", "00000000-0000-0000-0000-000000000000"], "unknown instance"),
    (["tasks", "complete", "missing-task", "--data", "{}", "--as", "rita"], "unknown task missing-task"),
    (["instances", "retry", "00000000-0000-0000-0000-000000000000"], "unknown instance"),
    (["secrets", "set", "bad name!", "--value", "x"], "invalid secret name"),
    (["instances", "list", "--status", "weird"], "Invalid value for '--status': 'weird' is not one of"),
    (["instances", "show"], "Missing argument 'INSTANCE_ID'."),
    (["no-such-command"], "No such command 'no-such-command'."),
    (["--no-such-option"], "No such option '--no-such-option'."),
    (["submit", "/dev/null", "--yes"], "not a regular file: /dev/null"),
    (["submit", "/no/such/scope.md", "--yes"], "no such scope file: /no/such/scope.md"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    proc = scopeflow(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_usage_error_names_a_help_command_that_works(tmp_path):
    proc = scopeflow(tmp_path, "instances", "list", "--status", "weird")
    assert proc.returncode == 2 and "Usage:" not in proc.stderr
    help_command = proc.stderr.split("(see: ", 1)[1].rstrip().rstrip(")")
    *_, group, command, flag = help_command.split()
    shown = scopeflow(tmp_path, group, command, flag)
    assert shown.returncode == 0 and "--status [running|waiting|completed|blocked|error|cancelled]" in shown.stdout


def test_an_example_runs_end_to_end_from_the_cli(tmp_path):
    started = scopeflow(tmp_path, "start", "approval", "--data", '{"requester": "ann"}', "--json")
    assert started.returncode == 0, started.stderr
    import json

    summary = json.loads(started.stdout)
    [task] = summary["tasks"]
    assert summary["status"] == "waiting" and task["role"] == "reviewer"
    shown = scopeflow(tmp_path, "tasks", "show", task["id"])
    assert "scopeflow users add reviewer --role reviewer" in shown.stdout   # no reviewer account yet
    assert scopeflow(tmp_path, "users", "add", "rita", "--role", "reviewer", "--password", "long-enough-pw").returncode == 0
    shown = scopeflow(tmp_path, "tasks", "show", task["id"])
    assert f"scopeflow tasks complete {task['id']} --as rita --data '{{}}'" in shown.stdout
    done = scopeflow(tmp_path, "tasks", "complete", task["id"], "--data", '{"decision": "approve"}', "--as", "rita")
    assert done.returncode == 0 and "instance is completed" in done.stdout
    again = scopeflow(tmp_path, "tasks", "complete", task["id"], "--data", '{"decision": "approve"}', "--as", "rita")
    assert again.returncode == 2 and "not open" in again.stderr
    tree = scopeflow(tmp_path, "trace", summary["id"])
    assert "Approve request" in tree.stdout and "human.actor=rita" in tree.stdout
    secret = scopeflow(tmp_path, "secrets", "set", "API_TOKEN", stdin="s3cr3t-value\n")
    assert secret.returncode == 0
    listed = scopeflow(tmp_path, "secrets", "list")
    assert "API_TOKEN" in listed.stdout and "s3cr3t-value" not in listed.stdout


def test_rotate_key_keeps_every_secret_readable(tmp_path):
    assert scopeflow(tmp_path, "secrets", "set", "API_TOKEN", "--value", "before-rotation").returncode == 0
    old_key = (tmp_path / "home" / "secret.key").read_bytes()
    rotated = scopeflow(tmp_path, "secrets", "rotate-key")
    assert rotated.returncode == 0 and "re-encrypted 1 secret(s)" in rotated.stdout
    assert (tmp_path / "home" / "secret.key").read_bytes() != old_key
    from scopeflow.engine.service import Engine
    from tests.conftest import make_settings

    engine = Engine(make_settings(tmp_path / "home"))
    assert engine.secrets.get("API_TOKEN", actor="test") == "before-rotation"
