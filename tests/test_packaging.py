"""The package works without the repository around it.

A wheel holds the Python modules of the packages ``find:`` finds plus the files that match
``package_data`` in setup.cfg; everything else is missing from a non-editable install. These tests
check the declaration against the files on disk (building a wheel is what ``.ci/run`` does), and
that commands run from a directory without ``bpmn-models/`` use the models shipped in the package.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from setuptools.config.setupcfg import read_configuration

from scopeflow import config
from scopeflow.cli import main
from scopeflow.processes.catalog import scan
from tests.conftest import MODELS, REPO

PACKAGE = REPO / "scopeflow"


def shipped_files() -> set[Path]:
    """What a wheel of the package would hold: package modules plus package_data matches."""
    options = read_configuration(str(REPO / "setup.cfg"))["options"]
    shipped: set[Path] = set()
    for package_dir in [PACKAGE, *[p.parent for p in PACKAGE.rglob("__init__.py")]]:
        if (package_dir / "__init__.py").is_file():
            shipped.update(package_dir.glob("*.py"))
    for pattern in options["package_data"]["scopeflow"]:
        shipped.update(Path(p) for p in glob.glob(str(PACKAGE / pattern), recursive=True) if Path(p).is_file())
    return shipped


def files_under(root: Path) -> set[Path]:
    return {Path(dirpath) / name
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True)
            if "__pycache__" not in dirpath
            for name in filenames if not name.endswith(".pyc")}


def test_every_file_of_the_package_is_declared_for_the_wheel() -> None:
    missing = sorted(str(p.relative_to(PACKAGE)) for p in files_under(PACKAGE) - shipped_files())
    assert missing == [], f"not in the wheel (add them to package_data in setup.cfg): {missing}"


def test_the_migrations_and_the_default_models_are_among_the_shipped_files() -> None:
    shipped = {p.relative_to(PACKAGE).as_posix() for p in shipped_files()}
    assert {"py.typed", "engine/migrations/env.py", "engine/migrations/versions/0001_initial_schema.py",
            "bpmn_models/delivery.bpmn", "bpmn_models/forms/delivery.start.schema.json"} <= shipped


def test_the_packaged_models_are_the_repository_models() -> None:
    packaged = {p.relative_to(config.PACKAGED_MODELS) for p in files_under(config.PACKAGED_MODELS)}
    assert packaged == {p.relative_to(MODELS) for p in files_under(MODELS)}
    assert "delivery" in scan(config.PACKAGED_MODELS).models


def test_a_directory_without_bpmn_models_uses_the_packaged_models(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCOPEFLOW_MODELS", raising=False)
    assert config.load_settings().models_dir == config.PACKAGED_MODELS
    (tmp_path / "bpmn-models").mkdir()
    assert config.load_settings().models_dir.resolve() == (tmp_path / "bpmn-models").resolve()


def test_commands_work_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCOPEFLOW_MODELS", raising=False)
    monkeypatch.setenv("SCOPEFLOW_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["models", "deploy"])
    assert result.exit_code == 0, result.output
    assert "delivery: version 1 (new)" in result.output


@pytest.mark.parametrize("command", [["models", "deploy"], ["start", "hello"], ["instances", "list"]])
def test_a_models_directory_that_does_not_exist_is_refused_before_anything_is_created(
        tmp_path: Path, monkeypatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCOPEFLOW_HOME", raising=False)
    monkeypatch.setenv("SCOPEFLOW_MODELS", str(tmp_path / "no-such-models"))
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: SCOPEFLOW_MODELS is '{tmp_path / 'no-such-models'}', which is not a directory"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["instances", "show", "nope"], ["start", "no_such_model"],
                                     ["secrets", "delete", "nope"]])
def test_a_refused_command_in_a_new_directory_leaves_no_home_behind(tmp_path: Path, monkeypatch,
                                                                      command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCOPEFLOW_HOME", raising=False)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_command_keeps_a_home_that_existed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCOPEFLOW_HOME", raising=False)
    assert CliRunner().invoke(main, ["models", "deploy", "hello"]).exit_code == 0
    before = sorted(p.name for p in (tmp_path / ".scopeflow").iterdir())
    assert CliRunner().invoke(main, ["instances", "show", "nope"]).exit_code == 2
    assert sorted(p.name for p in (tmp_path / ".scopeflow").iterdir()) == before


def test_a_home_with_anything_but_the_store_and_its_keys_is_never_removed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "workspaces").mkdir(parents=True)
    (home / "scopeflow.db").write_bytes(b"")
    assert not config.remove_unused_home(home) and (home / "scopeflow.db").exists()
    (home / "workspaces").rmdir()
    assert config.remove_unused_home(home) and not home.exists()
