"""Shared fixtures: an engine over a fresh SQLite store in a temporary home."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tests.operators  # noqa: F401  (registers the test-only operators in this process)
from scopeflow.config import Settings
from scopeflow.handlers.release import stop_all

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bpmn-models"
IN_CI = os.environ.get("SCOPEFLOW_CI") == "1"


def make_settings(home: Path, models_dir: Path = MODELS, *, migrated_copy: bool = False, **overrides) -> Settings:
    """Settings over a private SQLite store in ``home``.

    With ``migrated_copy`` the store starts as a copy of the migrated, empty store (unless ``home``
    already has one), which saves running the migrations; without it the engine creates the home
    and the store itself, as in production (what tests of that creation need).
    """
    database = home / "scopeflow.db"
    if migrated_copy and not database.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)   # private, as the engine makes them
        shutil.copyfile(migrated_store(), database)
        database.chmod(0o600)
    settings = Settings(models_dir=models_dir, database_url=f"sqlite:///{database}", secret_key="", **overrides)
    return settings.with_home(home)


@functools.cache
def migrated_store() -> Path:
    """An empty SQLite store at the newest migration, made once per test process.

    Copying it is several times cheaper than running the migrations for every test's fresh store;
    the migrations still run from scratch here, and for every store made without ``migrated_copy``.
    """
    from sqlalchemy import create_engine

    from scopeflow.engine.db import migrate

    root = Path(tempfile.mkdtemp(prefix="scopeflow-test-store-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    engine = create_engine(f"sqlite:///{root / 'migrated.db'}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return root / "migrated.db"


# One PBKDF2 round instead of werkzeug's scrypt: a scrypt hash or login check costs up to 0.5 s of CPU
# on the shared 2-core machine, and the UI tests create six accounts per app and log in often.
# test_password_hashing.py checks the product itself still hashes with scrypt.
FAST_PASSWORD_HASH = "pbkdf2:sha256:1"


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashes() -> Iterator[None]:
    from werkzeug.security import generate_password_hash

    from scopeflow.engine import accounts

    def fast(password: str, method: str = FAST_PASSWORD_HASH, salt_length: int = 16) -> str:
        return generate_password_hash(password, method=FAST_PASSWORD_HASH, salt_length=salt_length)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "generate_password_hash", fast)
        yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home", migrated_copy=True)


@pytest.fixture
def engine(settings: Settings):
    from scopeflow.engine.service import Engine

    return Engine(settings)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A private copy of the repository's models that a test may add files to."""
    target = tmp_path / "models"
    shutil.copytree(MODELS, target)
    return target


def require_service(name: str, reachable: bool, why: str) -> None:
    """Skip when a service is down — except in CI (SCOPEFLOW_CI=1), where that is a failure."""
    if reachable:
        return
    if IN_CI:
        pytest.fail(f"{name} is not reachable in CI: {why}")
    pytest.skip(f"{name} is not reachable: {why}")


@pytest.fixture
def llm_env(monkeypatch):
    """Point the LLM agents at a fake server (``llm_env(server, PRICES=...)``); until called, no
    endpoint is configured, whatever the surrounding environment says."""
    from scopeflow.handlers.llm_output import forget_modes
    from tests.test_llm_agents import MODEL

    forget_modes()   # what a server accepted is remembered per base URL, and loopback ports are reused
    for name in ("BASE_URL", "API_KEY", "MODEL", "PRICES", "MAX_TOKENS_PER_INSTANCE", "MAX_COST_PER_INSTANCE"):
        monkeypatch.delenv(f"SCOPEFLOW_LLM_{name}", raising=False)

    def configure(server, **extra: str) -> None:
        monkeypatch.setenv("SCOPEFLOW_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("SCOPEFLOW_LLM_MODEL", MODEL)
        for name, value in extra.items():
            monkeypatch.setenv(f"SCOPEFLOW_LLM_{name}", value)

    return configure


def add_account(engine, name: str, *roles: str) -> str:
    """An active account (what the engine checks human-task completions against); returns its name."""
    from werkzeug.security import generate_password_hash

    from scopeflow.engine.models import User

    with engine.sessions.begin() as session:
        session.add(User(name=name, password_hash=generate_password_hash("unused-password", method="pbkdf2:sha256:1"),
                         roles=list(roles)))
    return name


def cli_runner(home: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``run(*ARGS)``: ``python -m scopeflow ARGS`` against ``home`` (``HOME`` is its parent)."""
    env = {"PATH": "/usr/bin:/bin", "SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(MODELS),
           "HOME": str(home.parent)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scopeflow", *args], capture_output=True, text=True,
                              env=env, timeout=300)

    return run


@pytest.fixture
def cli(tmp_path):
    """Run ``python -m scopeflow ARGS`` against a fresh home; the releases it starts are stopped.

    Stopped in this process (what ``scopeflow releases stop --all`` calls), not by one more CLI process
    per test; test_delivery_commands.py runs the printed ``releases stop`` command itself.
    """
    home = tmp_path / "home"
    yield cli_runner(home)
    stop_all(home / "releases")
