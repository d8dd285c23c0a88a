"""Which operators a model may call.

The demonstration operators (``fail``, ``flaky``, ``sleep``) serve the example models only: lint,
which every deploy and designer upload runs, refuses them anywhere but under ``examples/``.
Test-only operators (``mark``) are not part of the product: a Scopeflow process registers them only
when ``SCOPEFLOW_OPERATOR_MODULES`` names ``tests.operators``, the setting a deployment uses for
its own operators.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scopeflow.engine.models import Instance, ModelVersion
from scopeflow.engine.service import Engine, EngineError
from scopeflow.handlers import registry
from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import errors, lint_catalog
from scopeflow.processes.synth import linear_process
from scopeflow.ui.model_store import store_upload
from tests.conftest import MODELS, REPO, make_settings

DEMONSTRATION = ["fail", "flaky", "sleep"]


def models_with(root: Path, rel: str, xml: str) -> Path:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(xml, encoding="utf-8")
    return root


def one_step(process_id: str, operator: str) -> str:
    params = {"fail": {"kind": "'recoverable'"}, "flaky": {"failures": "0"}, "sleep": {"seconds": "0"}}
    return linear_process(process_id, [("step", operator, params.get(operator, {}))])


def test_the_demonstration_operators_are_marked_examples_only():
    assert sorted(op.name for op in registry.all_operators() if op.examples_only) == DEMONSTRATION


@pytest.mark.parametrize("operator", DEMONSTRATION)
def test_lint_refuses_a_demonstration_operator_outside_examples(tmp_path: Path, operator: str):
    catalog = scan(models_with(tmp_path, "real.bpmn", one_step("real", operator)))
    [problem] = errors(lint_catalog(catalog, ["real"]))
    assert (problem.file, problem.element) == ("real.bpmn", "step")
    assert problem.message == f"operator \u201c{operator}\u201d demonstrates the engine and may only be called by models under examples/"


@pytest.mark.parametrize("operator", DEMONSTRATION)
def test_lint_admits_a_demonstration_operator_under_examples(tmp_path: Path, operator: str):
    catalog = scan(models_with(tmp_path, "examples/demo.bpmn", one_step("demo", operator)))
    assert errors(lint_catalog(catalog, ["demo"])) == []


def test_a_model_outside_examples_that_sleeps_never_starts(tmp_path: Path):
    engine = Engine(make_settings(tmp_path / "home", models_with(tmp_path / "models", "busy.bpmn",
                                                                one_step("busy", "sleep"))))
    with pytest.raises(EngineError, match="lint error.*\u201csleep\u201d demonstrates the engine"):
        engine.start("busy", {})
    with engine.sessions() as session:
        assert session.query(ModelVersion).count() == 0 and session.query(Instance).count() == 0


def test_a_designer_upload_that_calls_fail_is_not_stored(engine: Engine):
    result = store_upload(engine.sessions, MODELS, "mine.bpmn", one_step("mine", "fail").encode())
    assert not result.ok and result.stored == []
    assert any("\u201cfail\u201d demonstrates the engine" in m.message for m in errors(result.messages))


def lint_cli(models: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "SCOPEFLOW_OPERATOR_MODULES"}
    return subprocess.run([sys.executable, "-m", "scopeflow", "models", "lint"], capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(REPO), "SCOPEFLOW_MODELS": str(models), **env},
                          cwd=models, timeout=120)


def test_a_test_only_operator_exists_only_when_the_setting_names_its_module(tmp_path: Path):
    models = models_with(tmp_path / "models", "counted.bpmn",
                         linear_process("counted", [("step", "mark", {"name": "'x'"})]))
    without = lint_cli(models)
    assert without.returncode == 1
    assert "counted.bpmn" in without.stdout and "operator \u201cmark\u201d is not registered" in without.stdout
    named = lint_cli(models, SCOPEFLOW_OPERATOR_MODULES="tests.operators")
    assert named.returncode == 0, named.stdout + named.stderr
    assert "0 error(s)" in named.stdout


def test_an_operator_module_that_cannot_be_imported_is_a_one_line_error(tmp_path: Path):
    result = lint_cli(models_with(tmp_path / "models", "x.bpmn", one_step("x", "noop")),
                      SCOPEFLOW_OPERATOR_MODULES="tests.operators, no_such_module")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: SCOPEFLOW_OPERATOR_MODULES: cannot import 'no_such_module': No module named 'no_such_module'"]
