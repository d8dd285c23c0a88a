"""The command line on diagrams from other modelers: `scopeflow models lint PATH` and `scopeflow simulate
PATH` either run the file or refuse it in one located line with the exit code the CLI promises
(0 ok, 1 the operation failed, 2 bad input), and never print a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import cli_runner

FOLDER = Path(__file__).parent / "bpmn_corpus" / "hand-written"


def _run(tmp_path: Path, command: list[str], name: str):
    shutil.copy(FOLDER / name, tmp_path / name)
    return cli_runner(tmp_path / "home")(*command, str(tmp_path / name))


@pytest.mark.parametrize(("command", "name", "code", "stream", "line"), [
    (["models", "lint"], "empty-file.bpmn", 1, "stdout", "empty-file.bpmn:1: error: the file is empty"),
    (["simulate"], "gzip-archive.bpmn", 2, "stderr", "gzip-archive.bpmn:1: a gzip archive, not BPMN XML"),
    (["models", "lint"], "duplicate-ids.bpmn", 1, "stdout", "duplicate-ids.bpmn:4: error [t]: id \u201ct\u201d is used twice"),
    (["simulate"], "flow-to-missing-id.bpmn", 1, "stderr", "flow-to-missing-id.bpmn:5: error [f1]: sequence flow leads to"),
    (["models", "lint"], "only-not-executable.bpmn", 1, "stdout", "only-not-executable.bpmn:2: error [P]: process is marked"),
    (["simulate"], "empty-process.bpmn", 2, "stderr", "empty-process.bpmn:3: process P has no flow elements"),
    (["simulate"], "collab-one-pool-executable.bpmn", 0, "stdout", "simulation of A: completed (reached its end)"),
    (["models", "lint"], "link-events.bpmn", 0, "stdout", "1 model(s), 0 error(s), 1 warning(s)"),
])
def test_the_cli_runs_the_file_or_refuses_it_in_one_located_line(tmp_path, command, name, code, stream, line):
    ran = _run(tmp_path, command, name)
    output = getattr(ran, stream)
    assert ran.returncode == code, (ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stdout + ran.stderr
    assert any(row.strip().startswith(line) or row.startswith("error: " + line) for row in output.splitlines()), output
    if code == 2:
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
