"""Diagrams exported by other modeling tools (tests/bpmn_corpus, origins in its README): each process
is either simulated to its end or rejected with located errors, and no message is a Python repr."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from scopeflow.engine.simulation import Answers, simulate
from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import blocking, lint_catalog

CORPUS = Path(__file__).parent / "bpmn_corpus"
FILES = sorted(CORPUS.rglob("*.bpmn"))
# What a Python repr or a raw library message looks like inside a sentence.
REPR = re.compile(r"\w+(Error|Exception)\(|<\w[\w.]* object at|\bb'|%r|\{http://|\\n|\(\s*'[^']*',\s*\)")


def test_the_corpus_holds_diagrams_of_at_least_five_modeling_tools():
    tools = {path.parent.name for path in FILES}
    assert len(tools) >= 5, tools
    assert (CORPUS / "README.md").is_file()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_each_process_is_simulated_to_its_end_or_rejected_with_located_errors(tmp_path, path):
    shutil.copy(path, tmp_path / path.name)
    answers_path = path.with_suffix(".answers.json")
    catalog = scan(tmp_path)
    if path.name in catalog.broken:   # not usable BPMN at all: one located line, no library text
        why = catalog.broken[path.name]
        assert re.match(rf"{re.escape(path.name)}:[1-9]\d*: \S", why) and "\n" not in why, why
        assert not REPR.search(why) and "column" not in why, why
        return
    runnable = [pid for pid, proc in catalog.processes.items() if proc.runnable]
    if not runnable:   # a file without a process to run: lint says so, located
        problems = blocking(lint_catalog(catalog))
        assert problems and all(p.file == path.name and p.line > 0 and p.element for p in problems), problems
        return
    for pid in runnable:
        answers = Answers.from_json(json.loads(answers_path.read_text())) if answers_path.exists() else Answers()
        result = simulate(catalog, pid, answers)
        for message in result.lint:
            assert not REPR.search(message.message), str(message)
        if result.status == "rejected":
            problems = blocking(result.lint, simulate=True)
            assert problems
            for problem in problems:
                assert problem.file == path.name and problem.line > 0 and problem.element, str(problem)
        else:
            assert result.status == "completed", f"{path.name} {pid}: {result.status}: {result.reason}"
            assert not REPR.search(result.reason)
            assert result.spans and all(s.attributes.get("scopeflow.simulated") for s in result.spans)
