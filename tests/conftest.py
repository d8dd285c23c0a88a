"""Shared fixtures: an engine over a fresh SQLite store in a temporary home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import tests.operators  # noqa: F401  (registers the test-only operators in this process)
from scopeflow.config import Settings

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bpmn-models"
IN_CI = os.environ.get("SCOPEFLOW_CI") == "1"


def make_settings(home: Path, models_dir: Path = MODELS, **overrides) -> Settings:
    settings = Settings(models_dir=models_dir, database_url=f"sqlite:///{home / 'scopeflow.db'}",
                        secret_key="", **overrides)
    return settings.with_home(home)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


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
