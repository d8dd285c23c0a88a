"""Hand-written diagrams in the dialects of other modelers (tests/bpmn_corpus/hand-written): each file
meets the expectation written beside it in expectations.json.

Outcomes: ``completed`` (lint has no error, the simulation reaches its end), ``simulated`` (lint's only
errors are ones simulate runs past, such as unbound service tasks, and the simulation reaches its end),
``rejected`` (lint names the element and the reason, and simulate refuses to run; ``errors``, when
given, is how many blocking errors the file has) and ``unreadable``
(the file is refused in one located sentence before anything parses it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scopeflow.engine.simulation import Answers, simulate
from scopeflow.processes.catalog import main_process, scan_around
from scopeflow.processes.lint import blocking, errors, lint_catalog

FOLDER = Path(__file__).parent / "bpmn_corpus" / "hand-written"
EXPECTED: dict[str, dict] = json.loads((FOLDER / "expectations.json").read_text(encoding="utf-8"))


def test_every_hand_written_file_has_an_expectation_and_every_expectation_a_file():
    assert sorted(p.name for p in FOLDER.glob("*.bpmn")) == sorted(EXPECTED)


def _load(tmp_path: Path, name: str):
    shutil.copy(FOLDER / name, tmp_path / name)
    answers = FOLDER / name.replace(".bpmn", ".answers.json")
    if answers.exists():
        shutil.copy(answers, tmp_path / answers.name)
    return scan_around(tmp_path / name)


def _answers(name: str) -> Answers:
    path = FOLDER / name.replace(".bpmn", ".answers.json")
    return Answers.from_json(json.loads(path.read_text())) if path.exists() else Answers()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_runs_or_is_refused_as_expected(tmp_path, name):
    expected = EXPECTED[name]
    catalog, defined = _load(tmp_path, name)
    if expected["outcome"] == "unreadable":
        assert not defined
        why = catalog.broken[name]
        assert why.startswith(f"{name}:") and expected["says"] in why and "\n" not in why, why
        return
    model = expected.get("model") or main_process(catalog, defined, name)
    messages = lint_catalog(catalog, defined, executable_only=False)
    result = simulate(catalog, model, _answers(name))
    if expected["outcome"] == "rejected":
        assert result.status == "rejected", (result.status, result.reason)
        located = [m for m in blocking(messages) if m.element == expected["element"] and m.line > 0]
        assert any(expected["says"] in m.message for m in located), [str(m) for m in errors(messages)]
        if "errors" in expected:   # one problem, one message: SpiffWorkflow does not repeat or misname it
            assert len(blocking(messages)) == expected["errors"], [str(m) for m in blocking(messages)]
        return
    if expected["outcome"] == "simulated":
        assert any(m.element == expected["element"] and expected["says"] in m.message for m in errors(messages)), \
            [str(m) for m in messages]
    else:
        assert errors(messages) == [], [str(m) for m in errors(messages)]
    assert result.status == "completed", (result.status, result.reason)
    _check_run(catalog, model, result, expected, messages)


def _check_run(catalog, model, result, expected, messages):
    ran = [s.attributes.get("scopeflow.bpmn.element.id") for s in result.spans]
    for element in expected.get("ran", []):
        assert element in ran, (element, ran)
    for element in expected.get("skipped", []):
        assert element not in ran, (element, ran)
    for key, value in expected.get("data", {}).items():
        assert result.data.get(key) == value, result.data
    for element, lane in expected.get("lanes", {}).items():
        assert catalog.processes[model].elements[element].lane == lane
    if "name" in expected:
        element, name = expected["name"]
        assert catalog.processes[model].elements[element].name == name
    if "warns" in expected:
        element, fragment = expected["warns"]
        assert any(m.element == element and m.level == "warning" and fragment in m.message for m in messages), \
            [str(m) for m in messages]
