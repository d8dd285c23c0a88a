"""The span chain is keyed outside the database: rewriting every hash after an edit does not verify."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from sqlalchemy import select, update

from scopeflow.engine.chain_key import CHAIN_KEY_FILE
from scopeflow.engine.models import SpanRow
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_chain
from scopeflow.spans.integrity import build_rows, content_hash, genesis, link_hash
from tests.conftest import MODELS, make_settings


def _forge_everything(engine: Engine, instance_id: str) -> str:
    """What an attacker with write access to the database does: edit a span, then recompute every
    content and link hash after it with the published (unkeyed) algorithm. Returns the span id."""
    with engine.sessions.begin() as session:
        rows = load_chain(session, instance_id)
        victim = rows[len(rows) // 2]
        victim.span.attributes["scopeflow.task.outcome"] = "forged"
        prev = genesis(instance_id)
        for row in rows:
            content = content_hash(row.span)
            link = link_hash(prev, content)          # no key: the attacker does not have it
            session.execute(update(SpanRow).where(SpanRow.instance_id == instance_id, SpanRow.seq == row.seq)
                            .values(attributes=row.span.attributes, content_hash=content, prev_hash=prev,
                                    link_hash=link))
            prev = link
    return victim.span.span_id


def test_recomputing_every_hash_after_an_edit_still_fails_verification(engine):
    instance_id = engine.start("hello", {})
    assert engine.verify_chain(instance_id).ok
    forged = _forge_everything(engine, instance_id)
    report = engine.verify_chain(instance_id)
    assert not report.ok
    assert report.seq == 1          # the first link is already wrong: every link is keyed
    assert "recomputed without the chain key" in report.problem
    # Unkeyed, the forgery would have passed: the key is what makes the difference.
    from scopeflow.spans.integrity import verify_chain

    with engine.sessions() as session:
        assert verify_chain(load_chain(session, instance_id), instance_id).ok
    assert forged


def test_the_cli_names_the_first_bad_link_after_a_full_rewrite(tmp_path):
    home = tmp_path / "home"
    env = {"PATH": "/usr/bin:/bin", "SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(MODELS),
           "HOME": str(tmp_path)}
    engine = Engine(make_settings(home))
    instance_id = engine.start("hello", {})
    cli = [sys.executable, "-m", "scopeflow", "evidence", "verify", instance_id]
    good = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert good.returncode == 0 and good.stdout.startswith("verified:"), good.stderr
    _forge_everything(engine, instance_id)
    bad = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert bad.stdout.startswith("NOT verified: seq 1:") and "chain key" in bad.stdout


def test_the_chain_key_is_a_private_file_outside_the_database(engine):
    engine.start("hello", {})
    path = engine.settings.home / CHAIN_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    with engine.sessions() as session:
        blobs = [row for row in session.scalars(select(SpanRow.attributes))]
    assert key.decode() not in repr(blobs)
    db = (engine.settings.home / "scopeflow.db").read_bytes()
    assert key not in db


def test_keyed_rows_verify_with_their_key_only():
    from scopeflow.spans.integrity import verify_chain
    from tests.test_integrity import make_span

    rows = build_rows([make_span(seq) for seq in range(1, 4)], key=b"k1")
    assert verify_chain(rows, key=b"k1").ok
    assert not verify_chain(rows, key=b"k2").ok
    assert not verify_chain(rows).ok


def test_the_env_variable_supplies_the_key(tmp_path, monkeypatch):
    from dataclasses import replace

    from scopeflow.config import load_settings

    monkeypatch.setenv("SCOPEFLOW_CHAIN_KEY", "from-the-environment")
    monkeypatch.setenv("SCOPEFLOW_HOME", str(tmp_path / "home"))
    engine = Engine(replace(load_settings(), models_dir=MODELS))
    assert engine.chain_key == b"from-the-environment"
    assert not os.path.exists(tmp_path / "home" / CHAIN_KEY_FILE)
