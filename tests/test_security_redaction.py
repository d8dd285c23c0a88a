"""Credentials never come to rest outside the secret store: a whole-run scan for their values.

The credential scope runs through the full offline lifecycle with distinctive credential values,
and its app is deployed with them. Then every place Scopeflow writes is scanned for each value and
for its base64 and hex forms: every table and column of the database (as text) and the raw
database file, the captured logs and stdout/stderr, the workspace, the release directory, and the
OTLP exports of the run's spans. The deployed app is the one legitimate holder: it receives the
credentials through its process environment only, which the test checks too (so the scan is
known to find a value where one is).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from scopeflow.engine.models import Instance, Secret
from scopeflow.engine.service import Engine
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import RECOVERABLE, TaskFailure
from scopeflow.handlers.registry import operator
from scopeflow.handlers.release import list_releases, stop_all
from scopeflow.lifecycle import submit
from scopeflow.processes.synth import linear_process
from scopeflow.spans.otlp_json import to_otlp_json, to_protobuf
from tests.conftest import REPO, make_settings

pytestmark = pytest.mark.slow

SCOPE = REPO / "examples" / "scopes" / "email-reminders.md"
# Reminders go out by email: the built outbox reads these (the first three without a fallback).
CREDENTIALS = {
    "SMTP_HOST": "sfleak-HOST-7f3a9c1e-d4b8-4e2a-9b61-0c5e8d2f4a77",
    "SMTP_USER": "sfleak-USER-2b8e6d40-91c3-4f7a-a5d2-6e1f0b9c3d88",
    "SMTP_PASSWORD": "sfleak-PASSWORD-5c0d7e1a-3b9f-4d62-8e47-a1f2c3d4e5b6",
    "SMTP_FROM": "sfleak-FROM-9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
}


def encodings(value: str) -> dict[str, bytes]:
    """The forms a leaked value could take at rest: plain, base64 (standard, url-safe), hex."""
    raw = value.encode()
    return {
        "plain": raw,
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }


NEEDLES = {f"{name}/{form}": needle for name, value in CREDENTIALS.items()
           for form, needle in encodings(value).items()}


def hits(where: str, blob: bytes | str) -> list[str]:
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    return [f"{label} in {where}" for label, needle in NEEDLES.items() if needle in data]


def scan_tree(root: Path, skip: set[Path] = frozenset()) -> list[str]:
    found = []
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink() and path not in skip:
            found += hits(str(path), path.read_bytes())
    return found


def scan_database(engine: Engine) -> list[str]:
    """Every column of every row of every table, each value rendered as text."""
    found = []
    with engine.sessions() as session:
        tables = inspect(session.get_bind()).get_table_names()
        for table in tables:
            for row in session.execute(text(f'SELECT * FROM "{table}"')).mappings():  # nosec B608 - our table names
                for column, value in row.items():
                    blob = value if isinstance(value, bytes) else json.dumps(value, default=str)
                    found += hits(f"table {table}.{column}", blob)
    return found


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """An engine in a private home; every release it starts is stopped afterwards."""
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    settings = make_settings(home)
    try:
        yield Engine(settings)
    finally:
        stop_all(settings.releases_dir)


@pytest.fixture
def every_logger_at_debug(caplog):
    """caplog at DEBUG, with loggers pinned to a higher level (spiff.*, …) opened up for the test."""
    caplog.set_level(logging.DEBUG)
    pinned = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    for name in pinned:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield caplog
    for name, level in pinned.items():
        logging.getLogger(name).setLevel(level)


def test_credentials_appear_nowhere_but_the_store_and_the_apps_environment(engine, every_logger_at_debug, capfd):
    caplog = every_logger_at_debug
    result = submit(engine, SCOPE.read_text(encoding="utf-8"), yes=True, secrets=dict(CREDENTIALS),
                    progress=print)
    assert (result.status, result.outcome) == ("completed", "delivered"), result.blockers
    releases = list_releases(engine.settings.releases_dir, result.instance_id)
    running = [r for r in releases if r.status == "running"]
    assert running, "the app should be running with its credentials"

    # Control: the released app does hold the values, in its process environment (and only there).
    environ = Path(f"/proc/{running[0].pid}/environ").read_bytes()
    assert all(f"{name}={value}".encode() in environ.split(b"\0") for name, value in CREDENTIALS.items())

    spans = engine.recorded_spans(result.instance_id)
    resource = {"service.name": "scopeflow"}
    leaks = (
        scan_database(engine)
        + scan_tree(engine.settings.home, skip=set(engine.settings.releases_dir.rglob("*")))
        + scan_tree(engine.workspace(result.instance_id))
        + scan_tree(engine.settings.releases_dir)
        + hits("OTLP JSON export", json.dumps(to_otlp_json(spans, resource)))
        + hits("OTLP protobuf export", to_protobuf(spans, resource))
        + hits("log records", "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records))
    )
    out, err = capfd.readouterr()
    leaks += hits("stdout", out) + hits("stderr", err)
    assert leaks == []
    # The scan saw real material: the run's logs, its progress output, its spans and its files.
    assert len(caplog.records) > 100 and "Deploy" in out and len(spans) > 20

    # The store itself holds the values only as ciphertext, and gives them back intact.
    with engine.sessions() as session:
        stored = {row.name: row.ciphertext for row in session.scalars(select(Secret))}
    for name, value in CREDENTIALS.items():
        assert not hits(f"ciphertext of {name}", stored[name])
        assert engine.secrets.get(name, actor="test") == value


# ------------------------------------------------------------------------------ failure paths

LEAKY_SECRET = "LEAKY_TOKEN"


@operator("security_test_leaky", secrets=(LEAKY_SECRET,))
def _leaky(ctx: TaskContext, mode: str) -> dict:
    """Test operator: a careless handler that puts the credential it read into its failure."""
    value = ctx.secret(LEAKY_SECRET)
    if mode == "exception":
        raise ValueError(f"gateway refused key {value}")
    if mode == "child_span":
        with ctx.span("call gateway"):
            raise RuntimeError(f"gateway refused key {value}")
    raise TaskFailure(RECOVERABLE, f"gateway refused key {value}", {"key": value})


@pytest.mark.parametrize("mode", ["exception", "child_span", "task_failure"])
def test_a_handler_that_puts_a_credential_in_its_failure_leaks_nothing(tmp_path, mode, every_logger_at_debug, capfd):
    models = tmp_path / "models"
    models.mkdir()
    xml = linear_process("leaky", [("pay", "security_test_leaky", {"mode": repr(mode)})])
    (models / "leaky.bpmn").write_text(xml, encoding="utf-8")
    engine = Engine(make_settings(tmp_path / "home", models))
    value = CREDENTIALS["SMTP_PASSWORD"]
    engine.secrets.set(LEAKY_SECRET, value, actor="test")
    instance_id = engine.start("leaky", {})
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "error" and "[REDACTED]" in row.incident["message"]
    spans = engine.recorded_spans(instance_id)
    out, err = capfd.readouterr()
    leaks = (
        scan_database(engine)
        + scan_tree(engine.settings.home)
        + hits("OTLP JSON export", json.dumps(to_otlp_json(spans, {"service.name": "scopeflow"})))
        + hits("log records", "\n".join(f"{r.getMessage()} {r.__dict__}" for r in every_logger_at_debug.records))
        + hits("stdout", out) + hits("stderr", err)
    )
    assert sorted(set(leaks)) == [], "\n".join(sorted(set(leaks)))
