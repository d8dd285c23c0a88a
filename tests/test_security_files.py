"""What Scopeflow creates on disk is its owner's only: the home 0700, the database 0600."""

from __future__ import annotations

import os
import stat

from scopeflow.engine.service import Engine
from tests.conftest import make_settings


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_home_and_database_are_private(tmp_path):
    home = tmp_path / "deep" / "home"
    engine = Engine(make_settings(home))
    engine.start("hello", {"name": "Ada"}, actor="cli")   # writes the database (and its WAL)
    engine.secrets.has("_")                               # creates secret.key
    assert _mode(home) == 0o700 and _mode(tmp_path / "deep") == 0o700
    database = home / "scopeflow.db"
    assert _mode(database) == 0o600 and database.stat().st_size > 0
    for name in ("scopeflow.db-wal", "scopeflow.db-shm", "secret.key"):
        if (home / name).exists():
            assert _mode(home / name) == 0o600, name
    assert (home / "scopeflow.db-wal").exists()


def test_an_existing_home_keeps_its_mode(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o750)
    os.chmod(home, 0o750)
    Engine(make_settings(home))
    assert _mode(home) == 0o750 and _mode(home / "scopeflow.db") == 0o600


def test_the_web_ui_key_is_private_in_a_private_home(tmp_path):
    from scopeflow.ui.security import secret_key

    secret_key(tmp_path / "ui-home", "")
    assert _mode(tmp_path / "ui-home") == 0o700 and _mode(tmp_path / "ui-home" / "ui-secret-key") == 0o600
