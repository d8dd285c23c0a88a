"""The secret store: a private key file, audited access without values, and key rotation."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from scopeflow.engine import secrets as secrets_module
from scopeflow.engine.models import AuditEvent, Secret
from scopeflow.engine.secrets import (
    SecretError,
    SecretStore,
    interrupted_rotation_key,
    load_key,
    open_store,
    read_key_file,
    rotate_key,
)

VALUE = "sk_live_7Hq2VxSecretValue9931"


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _audit_rows(engine) -> list[AuditEvent]:
    with engine.sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def _audit_text(engine) -> str:
    return "\n".join(f"{r.actor} {r.action} {r.target} {r.instance_id} {r.details}" for r in _audit_rows(engine))


def _ciphertexts(engine) -> dict[str, bytes]:
    with engine.sessions() as session:
        return {row.name: row.ciphertext for row in session.scalars(select(Secret))}


# ------------------------------------------------------------------------------ the key

def test_the_key_file_is_created_private_on_first_use_and_reused(tmp_path):
    home = tmp_path / "home"
    key = load_key(home)
    assert _mode(home / "secret.key") == 0o600
    assert load_key(home) == key
    Fernet(key)   # a usable Fernet key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o666])
def test_a_key_file_group_or_others_can_read_is_refused(tmp_path, mode):
    home = tmp_path / "home"
    load_key(home)
    os.chmod(home / "secret.key", mode)
    with pytest.raises(SecretError, match=r"group or others can access it .*chmod 600"):
        load_key(home)


def test_an_empty_key_file_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    path = home / "secret.key"
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    with pytest.raises(SecretError, match="is empty"):
        load_key(home)


def test_the_environment_key_wins_and_no_file_is_written(tmp_path):
    env_key = Fernet.generate_key().decode()
    assert load_key(tmp_path / "home", env_key) == env_key.encode()
    assert not (tmp_path / "home" / "secret.key").exists()


def test_an_invalid_key_is_refused_in_one_line(engine):
    with pytest.raises(SecretError, match="not a valid Fernet key"):
        SecretStore(engine.sessions, b"not-a-key")


# ------------------------------------------------------------------------------ storage and audit

def test_values_are_encrypted_at_rest(engine):
    engine.secrets.set("PAYMENT_API_KEY", VALUE, actor="alice")
    [token] = _ciphertexts(engine).values()
    assert VALUE.encode() not in token
    assert engine.secrets.get("PAYMENT_API_KEY", actor="alice") == VALUE


def test_every_read_and_write_is_audited_with_who_what_where_and_never_the_value(engine):
    store = engine.secrets
    store.set("PAYMENT_API_KEY", VALUE, actor="alice", instance_id="inst-1", task="collect_credentials")
    store.get("PAYMENT_API_KEY", actor="engine", instance_id="inst-1", task="deploy")
    with pytest.raises(SecretError, match="MISSING_KEY is not set"):
        store.get("MISSING_KEY", actor="engine", instance_id="inst-1", task="deploy")
    store.delete("PAYMENT_API_KEY", actor="bob")
    events = [(r.actor, r.action, r.target, r.instance_id, r.details.get("task"), r.details.get("found"))
              for r in _audit_rows(engine)]
    assert events == [
        ("alice", "secret.write", "PAYMENT_API_KEY", "inst-1", "collect_credentials", None),
        ("engine", "secret.read", "PAYMENT_API_KEY", "inst-1", "deploy", True),
        ("engine", "secret.read", "MISSING_KEY", "inst-1", "deploy", False),
        ("bob", "secret.delete", "PAYMENT_API_KEY", None, None, None),
    ]
    assert VALUE not in _audit_text(engine)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("bad name", "x", "invalid secret name"),
    ("1STARTS_WITH_DIGIT", "x", "invalid secret name"),
    ("EMPTY", "", "non-empty text value"),
    ("NOT_TEXT", 42, "non-empty text value"),
])
def test_bad_secrets_are_refused_and_nothing_is_stored(engine, name, value, message):
    with pytest.raises(SecretError, match=message):
        engine.secrets.set(name, value, actor="alice")
    assert _ciphertexts(engine) == {}



def test_deleting_a_secret_that_is_not_set_is_refused_and_audits_nothing(engine):
    engine.secrets.set("PAYMENT_API_KEY", VALUE, actor="alice")
    with pytest.raises(SecretError, match="^secret SMTP_PASSWORD is not set$"):
        engine.secrets.delete("SMTP_PASSWORD", actor="bob")
    assert list(_ciphertexts(engine)) == ["PAYMENT_API_KEY"]
    assert [r.action for r in _audit_rows(engine)] == ["secret.write"]


# ------------------------------------------------------------------------------ rotation

def _store_two(engine) -> bytes:
    engine.secrets.set("PAYMENT_API_KEY", VALUE, actor="alice")
    engine.secrets.set("SMTP_PASSWORD", "hunter2-but-longer", actor="alice")
    return load_key(engine.settings.home)


def test_rotation_reencrypts_every_secret_and_replaces_the_key_file(engine):
    old_key = _store_two(engine)
    before = _ciphertexts(engine)
    key_file = engine.settings.home / "secret.key"
    new_key = Fernet.generate_key()
    assert rotate_key(engine.sessions, old_key, new_key, key_file=key_file, actor="admin") == 2
    assert read_key_file(key_file) == new_key and _mode(key_file) == 0o600
    assert not (engine.settings.home / "secret.key.next").exists()
    after = _ciphertexts(engine)
    assert all(after[name] != before[name] for name in before)
    fresh = SecretStore(engine.sessions, load_key(engine.settings.home))
    assert fresh.get("PAYMENT_API_KEY", actor="t") == VALUE
    assert fresh.get("SMTP_PASSWORD", actor="t") == "hunter2-but-longer"
    with pytest.raises(SecretError, match="cannot be decrypted with the current key"):
        SecretStore(engine.sessions, old_key).get("PAYMENT_API_KEY", actor="t")
    actions = [(r.actor, r.action, r.target) for r in _audit_rows(engine) if r.actor == "admin"]
    assert actions == [("admin", "secret.rotate_key", "*"), ("admin", "secret.reencrypt", "PAYMENT_API_KEY"),
                       ("admin", "secret.reencrypt", "SMTP_PASSWORD")]
    assert VALUE not in _audit_text(engine)


def test_rotation_of_an_environment_key_writes_no_file(engine):
    old_key = _store_two(engine)
    os.remove(engine.settings.home / "secret.key")
    new_key = Fernet.generate_key()
    assert rotate_key(engine.sessions, old_key, new_key) == 2
    assert not (engine.settings.home / "secret.key").exists()
    assert SecretStore(engine.sessions, new_key).get("SMTP_PASSWORD", actor="t") == "hunter2-but-longer"


def test_rotation_changes_nothing_when_one_secret_does_not_decrypt(engine):
    old_key = _store_two(engine)
    with engine.sessions.begin() as session:   # a row under a key nobody has (a store would refuse it)
        session.add(Secret(name="FOREIGN", ciphertext=Fernet(Fernet.generate_key()).encrypt(b"x"), updated_by="x"))
    before = _ciphertexts(engine)
    key_file = engine.settings.home / "secret.key"
    with pytest.raises(SecretError, match="FOREIGN decrypts with neither key: nothing was rotated"):
        rotate_key(engine.sessions, old_key, Fernet.generate_key(), key_file=key_file)
    assert _ciphertexts(engine) == before
    assert read_key_file(key_file) == old_key
    assert not (engine.settings.home / "secret.key.next").exists()


def _rotation_cut_before_the_key_file_moves(engine, monkeypatch) -> tuple[bytes, bytes]:
    """Two secrets stored, then a rotation that re-encrypted the rows and died (a power cut) before
    secret.key was replaced; (old key, new key)."""
    old_key, new_key = _store_two(engine), Fernet.generate_key()

    def crash(*_args):
        raise OSError("power cut")

    monkeypatch.setattr(secrets_module.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        rotate_key(engine.sessions, old_key, new_key, key_file=engine.settings.home / "secret.key")
    monkeypatch.undo()
    return old_key, new_key


def test_an_interrupted_rotation_keeps_reads_working_refuses_writes_and_is_finished_by_running_it_again(
        engine, monkeypatch):
    running = engine.secrets   # a process that was running all along
    old_key, new_key = _rotation_cut_before_the_key_file_moves(engine, monkeypatch)
    home, key_file = engine.settings.home, engine.settings.home / "secret.key"
    # The rows are under the new key now, secret.key still holds the old one: both keys read.
    assert interrupted_rotation_key(home) == new_key and load_key(home) == old_key
    for store in (running, open_store(engine.sessions, home)):
        assert store.get("PAYMENT_API_KEY", actor="t") == VALUE
        assert sorted(store.values()) == sorted([VALUE, "hunter2-but-longer"])
        with pytest.raises(SecretError, match=r"rotation is unfinished .*secret.key.next exists.*rotate-key"):
            store.set("NEW_ONE", "written-mid-rotation", actor="t")
    assert "NEW_ONE" not in _ciphertexts(engine)
    assert rotate_key(engine.sessions, read_key_file(key_file), interrupted_rotation_key(home),
                      key_file=key_file) == 2
    assert load_key(home) == new_key and not (home / "secret.key.next").exists()
    running.set("NEW_ONE", "written-after", actor="t")
    assert SecretStore(engine.sessions, new_key).get("NEW_ONE", actor="t") == "written-after"



def test_an_interrupted_rotation_is_not_finished_with_another_new_key(engine, monkeypatch):
    old_key, new_key = _rotation_cut_before_the_key_file_moves(engine, monkeypatch)
    home, key_file = engine.settings.home, engine.settings.home / "secret.key"
    before = _ciphertexts(engine)
    with pytest.raises(SecretError, match="secret.key.next holds a different key from an interrupted rotation"):
        rotate_key(engine.sessions, old_key, Fernet.generate_key(), key_file=key_file)
    assert _ciphertexts(engine) == before
    assert load_key(home) == old_key and interrupted_rotation_key(home) == new_key
    assert rotate_key(engine.sessions, old_key, new_key, key_file=key_file) == 2   # its own key finishes it
    assert load_key(home) == new_key


def test_a_rotation_interrupted_while_staging_its_key_leaves_nothing_behind(engine, monkeypatch):
    old_key = _store_two(engine)
    home, key_file = engine.settings.home, engine.settings.home / "secret.key"

    def crash(*_args):
        raise OSError("power cut")

    monkeypatch.setattr(secrets_module.os, "fsync", crash)   # dies writing secret.key.next
    with pytest.raises(OSError, match="power cut"):
        rotate_key(engine.sessions, old_key, Fernet.generate_key(), key_file=key_file)
    monkeypatch.undo()
    assert sorted(p.name for p in home.iterdir() if "key" in p.name) == ["secret.key"]
    assert load_key(home) == old_key
    engine.secrets.set("AFTER", "still-writable", actor="t")


def test_a_half_written_next_key_does_not_lock_the_store_and_rotate_key_replaces_it(engine, tmp_path):
    from tests.test_catalog_and_cli import scopeflow

    assert engine.settings.home == tmp_path / "home"   # where the CLI below looks
    engine.secrets.set("PAYMENT_API_KEY", VALUE, actor="ops")
    home = engine.settings.home
    pending = home / "secret.key.next"
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)   # created, never written
    os.close(fd)
    assert interrupted_rotation_key(home) is None
    fresh = open_store(engine.sessions, home)
    assert fresh.get("PAYMENT_API_KEY", actor="t") == VALUE
    fresh.set("OTHER", "another-value", actor="t")
    rotated = scopeflow(tmp_path, "secrets", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 2 secret(s)" in rotated.stdout and not pending.exists()
    assert "read the new secret.key by themselves" in rotated.stdout
    assert open_store(engine.sessions, home).get("OTHER", actor="t") == "another-value"


def test_a_running_process_follows_a_rotation_and_keeps_redacting(engine):
    old_key = _store_two(engine)
    running = engine.secrets
    key_file = engine.settings.home / "secret.key"
    new_key = Fernet.generate_key()
    rotate_key(engine.sessions, old_key, new_key, key_file=key_file)   # as `secrets rotate-key` elsewhere
    assert VALUE in running.values()
    assert engine._redactor()(f"token={VALUE}") == "token=[REDACTED]"
    running.set("WRITTEN_AFTER", "readable-by-everyone", actor="t")
    assert SecretStore(engine.sessions, new_key).get("WRITTEN_AFTER", actor="t") == "readable-by-everyone"


def test_a_process_whose_key_was_rotated_away_refuses_writes_and_says_it_cannot_redact(engine, caplog):
    old_key = _store_two(engine)
    stale = SecretStore(engine.sessions, old_key)   # SCOPEFLOW_SECRET_KEY still holds the old key
    rotate_key(engine.sessions, old_key, Fernet.generate_key())
    with pytest.raises(SecretError, match="opens none of the stored secrets .*restart with the current key"):
        stale.set("LOST", "would-be-unreadable", actor="t")
    assert "LOST" not in _ciphertexts(engine)
    with caplog.at_level("ERROR", logger="scopeflow.engine.secrets"):
        assert stale.values() == []
    assert "2 stored secret(s) do not decrypt with this process's key" in caplog.text


def test_a_write_that_races_a_rotation_is_rolled_back(engine, monkeypatch):
    _store_two(engine)
    store = engine.secrets
    pending = engine.settings.home / "secret.key.next"
    check = SecretStore._refuse_stale_key

    def rotation_starts_meanwhile(self, session, keys, name):
        secrets_module.publish_key_file(pending, Fernet.generate_key())   # what rotate_key stages first
        return check(self, session, keys, name)

    monkeypatch.setattr(SecretStore, "_refuse_stale_key", rotation_starts_meanwhile)
    with pytest.raises(SecretError, match="key changed while RACED was being stored .*nothing was stored"):
        store.set("RACED", "old-key-value", actor="t")
    assert "RACED" not in _ciphertexts(engine)


@pytest.mark.parametrize(("old", "new", "message"), [
    (b"garbage", None, "old key is not a valid Fernet key"),
    (None, b"garbage", "new key is not a valid Fernet key"),
    (None, "same", "same as the old key"),
])
def test_bad_rotation_requests_are_refused(engine, old, new, message):
    current = _store_two(engine)
    old = current if old is None else old
    new = current if new == "same" else new
    with pytest.raises(SecretError, match=message):
        rotate_key(engine.sessions, old, new, key_file=engine.settings.home / "secret.key")
    assert SecretStore(engine.sessions, current).get("PAYMENT_API_KEY", actor="t") == VALUE


# ------------------------------------------------------------------------------ human input

def _everything_stored(engine) -> str:
    """Every column of every row of every table, as text (what a stolen database would show)."""
    from sqlalchemy import inspect as sa_inspect
    from sqlalchemy import text

    with engine.sessions() as session:
        tables = sa_inspect(session.get_bind()).get_table_names()
        return "\n".join(str(row) for table in tables for row in session.execute(text(f'SELECT * FROM "{table}"')))


def test_a_stored_secret_typed_into_a_task_comment_reaches_neither_the_store_nor_the_spans(engine):
    from scopeflow.engine.accounts import create_user
    from scopeflow.engine.models import HumanTask
    from scopeflow.engine.queries import list_tasks

    create_user(engine.sessions, "rita", ["reviewer"], "correct horse battery")
    engine.secrets.set("PAYMENT_API_KEY", VALUE, actor="ops")
    iid = engine.start("approval", {"requester": "ann"}, actor="ann", title="Approve")
    with engine.sessions() as session:
        tid = list_tasks(session, instance_id=iid)[0]["id"]
    comment = f"fine, the key is {VALUE} by the way"
    assert engine.complete_task(tid, {"decision": "approve", "comment": comment}, actor="rita") == "completed"
    assert VALUE not in _everything_stored(engine)
    spans = engine.recorded_spans(iid)
    assert VALUE not in repr([(s.attributes, s.events, s.status_message) for s in spans])
    decided = [s.attributes for s in spans if "scopeflow.human.data.approval.comment" in s.attributes]
    assert decided and decided[0]["scopeflow.human.data.approval.comment"] == "fine, the key is [REDACTED] by the way"
    with engine.sessions() as session:
        assert session.get(HumanTask, tid).data["comment"] == "fine, the key is [REDACTED] by the way"



def test_completing_a_task_decrypts_the_stored_secrets_once(engine, monkeypatch):
    """The completion's own redaction and the run it advances share one redactor."""
    from scopeflow.engine import reads
    from scopeflow.engine.accounts import create_user

    create_user(engine.sessions, "rita", ["reviewer"], "correct horse battery")
    engine.secrets.set("PAYMENT_API_KEY", VALUE, actor="ops")
    iid = engine.start("approval", {"requester": "ann"}, actor="ann", title="Approve")
    tid = reads.tasks(engine.sessions, instance_id=iid)[0]["id"]
    store, reads_of_values = engine.secrets, []
    real = store.values
    monkeypatch.setattr(store, "values", lambda: reads_of_values.append(1) or real())
    comment = f"the key is {VALUE}"
    assert engine.complete_task(tid, {"decision": "approve", "comment": comment}, actor="rita") == "completed"
    assert len(reads_of_values) == 1
    assert VALUE not in repr([s.attributes for s in engine.recorded_spans(iid)])


# ------------------------------------------------------------------------------ PostgreSQL

def _blocked_on_a_lock(url: str, timeout_s: float = 10.0) -> bool:
    """True once some connection of this database waits for a lock (polled from outside)."""
    import time

    from sqlalchemy import create_engine, text

    probe = create_engine(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            with probe.connect() as connection:
                if connection.execute(text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                                           "ON a.pid = l.pid WHERE NOT l.granted "
                                           "AND a.datname = current_database()")).scalar():
                    return True
            time.sleep(0.02)
        return False
    finally:
        probe.dispose()


@pytest.mark.parametrize("rotation_starts", ["before the writer's check", "after the writer's check"])
def test_on_postgresql_a_write_racing_a_rotation_is_reencrypted_or_refused_never_lost(
        tmp_path, monkeypatch, rotation_starts):
    import threading
    from dataclasses import replace

    from scopeflow.engine.service import Engine
    from tests.conftest import make_settings
    from tests.test_workers import fresh_postgres_database

    with fresh_postgres_database() as url:
        engine = Engine(replace(make_settings(tmp_path / "home"), database_url=url))
        old_key = _store_two(engine)
        new_key, key_file = Fernet.generate_key(), engine.settings.home / "secret.key"
        rotation = threading.Thread(target=rotate_key, args=(engine.sessions, old_key, new_key),
                                    kwargs={"key_file": key_file})
        check = SecretStore._refuse_stale_key

        def rotation_meanwhile(self, session, keys, name):
            if rotation_starts == "before the writer's check":
                rotation.start()
                assert _blocked_on_a_lock(url), "the rotation did not wait for the writer's row lock"
                return check(self, session, keys, name)
            check(self, session, keys, name)
            rotation.start()
            assert _blocked_on_a_lock(url), "the rotation did not wait for the writer's row lock"
            return None

        monkeypatch.setattr(SecretStore, "_refuse_stale_key", rotation_meanwhile)
        try:
            engine.secrets.set("RACED", "written-during-rotation", actor="t")
            stored = True
        except SecretError as exc:
            assert "key changed while RACED was being stored" in str(exc)
            stored = False
        rotation.join(timeout=30)
        assert not rotation.is_alive() and read_key_file(key_file) == new_key
        assert stored == (rotation_starts == "after the writer's check")
        rotated = SecretStore(engine.sessions, new_key)
        assert rotated.get("PAYMENT_API_KEY", actor="t") == VALUE
        if stored:   # the rotation waited for the write and re-encrypted it with the rest
            assert rotated.get("RACED", actor="t") == "written-during-rotation"
        else:
            assert "RACED" not in _ciphertexts(engine)
