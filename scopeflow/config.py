"""Settings from the environment (``SCOPEFLOW_*``), in one place.

Every other module receives a :class:`Settings` instead of reading ``os.environ`` itself, so a test
can build one with the values it needs and nothing leaks between tests. The standard ``OTEL_*``
variables are the exception: OpenTelemetry's own exporters read them (``spans/tracing.py``), as every
OpenTelemetry user expects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

# The models shipped inside the package (a wheel holds a copy; in a source checkout this is a link
# to the repository's ``bpmn-models/``), used when no models directory is configured or present.
PACKAGED_MODELS = Path(__file__).resolve().parent / "bpmn_models"
LOCAL_MODELS = Path("bpmn-models")


def default_models_dir() -> Path:
    """``./bpmn-models`` when the current directory has one (a project of its own models), else the
    models shipped with the package — so every command works from any directory."""
    return LOCAL_MODELS if LOCAL_MODELS.is_dir() else PACKAGED_MODELS


def _models_dir() -> Path:
    """``SCOPEFLOW_MODELS`` when set, which must then be a directory: a typo is refused before any
    command creates state, instead of silently running the packaged models."""
    value = os.environ.get("SCOPEFLOW_MODELS")
    if not value:
        return default_models_dir()
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"SCOPEFLOW_MODELS is {value!r}, which is not a directory")
    return path


# What opening the store creates in a new home: the SQLite file (and its WAL) and the key files.
FRESH_HOME_FILES = frozenset({"scopeflow.db", "scopeflow.db-wal", "scopeflow.db-shm", "secret.key", "chain.key"})


def remove_unused_home(home: Path) -> bool:
    """Delete ``home`` if it holds nothing but what opening the store creates; True if it did.

    The CLI calls it only for a home that did not exist before a command that then refused its
    input (exit 2), so nothing in it can be in use; anything else in it (a workspace, a release)
    keeps the whole home.
    """
    if not home.is_dir() or not {path.name for path in home.iterdir()} <= FRESH_HOME_FILES:
        return False
    for path in home.iterdir():
        path.unlink()
    home.rmdir()
    return True


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _env_log_level(name: str, default: str) -> str:
    value = (os.environ.get(name) or default).upper()
    if value not in ("CRITICAL", "ERROR", "WARNING", "INFO"):
        raise ValueError(f"{name} must be one of INFO, WARNING, ERROR, CRITICAL, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """What a Scopeflow process needs to know about its surroundings."""

    home: Path = field(default_factory=lambda: Path(".scopeflow"))
    database_url: str = ""
    models_dir: Path = field(default_factory=default_models_dir)
    workspaces_dir: Path = field(default_factory=lambda: Path(".scopeflow/workspaces"))
    releases_dir: Path = field(default_factory=lambda: Path(".scopeflow/releases"))
    broker_url: str = ""
    secure_cookies: bool = False        # the web UI's cookies get the Secure flag (HTTPS deployments)
    checkpoint_threshold_s: float = 0.2
    lock_lease_s: float = 300.0
    spiff_log_level: str = "WARNING"    # SpiffWorkflow's loggers (INFO: one record per task state change)
    secret_key: str = ""
    chain_key: str = ""                 # SCOPEFLOW_CHAIN_KEY; else <home>/chain.key
    operator_modules: tuple[str, ...] = ()   # extra modules whose @operator functions register

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'scopeflow.db').resolve()}"

    def with_home(self, home: Path) -> Settings:
        """Settings whose every local path lives under ``home`` (what tests use)."""
        return replace(
            self,
            home=home,
            workspaces_dir=home / "workspaces",
            releases_dir=home / "releases",
        )


def load_settings() -> Settings:
    """Read the ``SCOPEFLOW_*`` variables; unset ones take the documented defaults."""
    home = _env_path("SCOPEFLOW_HOME", Path(".scopeflow"))
    return Settings(
        home=home,
        database_url=os.environ.get("SCOPEFLOW_DATABASE_URL", ""),
        models_dir=_models_dir(),
        workspaces_dir=_env_path("SCOPEFLOW_WORKSPACES", home / "workspaces"),
        releases_dir=_env_path("SCOPEFLOW_RELEASES", home / "releases"),
        broker_url=os.environ.get("SCOPEFLOW_BROKER_URL", ""),
        secure_cookies=os.environ.get("SCOPEFLOW_SECURE_COOKIES") == "1",
        checkpoint_threshold_s=_env_float("SCOPEFLOW_CHECKPOINT_THRESHOLD", 0.2),
        lock_lease_s=_env_float("SCOPEFLOW_LOCK_LEASE", 300.0),
        spiff_log_level=_env_log_level("SCOPEFLOW_SPIFF_LOG_LEVEL", "WARNING"),
        secret_key=os.environ.get("SCOPEFLOW_SECRET_KEY", ""),
        chain_key=os.environ.get("SCOPEFLOW_CHAIN_KEY", ""),
        operator_modules=tuple(name.strip() for name in os.environ.get("SCOPEFLOW_OPERATOR_MODULES", "").split(",")
                               if name.strip()),
    )


def llm_environment() -> dict[str, str]:
    """The ``SCOPEFLOW_LLM_*`` variables; ``handlers/llm.py`` turns them into ``LlmSettings``
    (the agents read them per task, so a change applies without restarting workers)."""
    return {key: value for key, value in os.environ.items() if key.startswith("SCOPEFLOW_LLM_")}
