"""Where the agents' LLM is, which model each role uses, what it costs, and the budget caps.

Read from the ``SCOPEFLOW_LLM_*`` variables (:meth:`LlmSettings.from_env`); every unreadable value
is a one-line ``ValueError`` naming the variable. Without ``SCOPEFLOW_LLM_BASE_URL`` the settings
are unconfigured and the agents run offline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scopeflow.handlers.budget import Budget
from scopeflow.handlers.failures import CONFIGURATION, TaskFailure

ROLES = ("planner", "builder", "reviewer", "analyst")


@dataclass(frozen=True)
class ModelPrice:
    """What a model costs, in micro-dollars per million tokens (integers, like all money here)."""

    input_per_mtok: int
    output_per_mtok: int

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """Cost of one call in micro-dollars, rounded up so the spend is never under-counted."""
        total = input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok
        return math.ceil(total / 1_000_000)


@dataclass(frozen=True)
class LlmSettings:
    """Where the LLM is, which model each agent role uses, what it costs, and the caps."""

    base_url: str = ""
    api_key: str = field(default="", repr=False)
    model: str = ""
    role_models: Mapping[str, str] = field(default_factory=dict)
    provider: str = ""
    timeout_s: float = 60.0
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    capture_content: bool = False
    max_tokens_per_instance: int | None = None
    max_cost_per_instance: int | None = None

    @property
    def configured(self) -> bool:
        """False without a base URL: the agents then run offline, exactly as before."""
        return bool(self.base_url)

    @property
    def provider_name(self) -> str:
        """``gen_ai.provider.name``: the explicit setting, else guessed from the base URL."""
        if self.provider:
            return self.provider
        parts = urlsplit(self.base_url)
        if parts.hostname == "api.openai.com":
            return "openai"
        if parts.port == 11434:
            return "ollama"
        return "openai_compatible"

    @property
    def server_address(self) -> str:
        """``server.address``: the host of the base URL."""
        return urlsplit(self.base_url).hostname or ""

    @property
    def server_port(self) -> int:
        """``server.port``: the base URL's port, or the scheme's default."""
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def model_for(self, role: str) -> str:
        """The model for an agent role: its own setting, else the default model."""
        if role not in ROLES:
            raise ValueError(f"unknown LLM role {role!r}; expected one of {', '.join(ROLES)}")
        model = self.role_models.get(role) or self.model
        if not model:
            raise TaskFailure(
                CONFIGURATION,
                f"no LLM model for role {role!r}: set SCOPEFLOW_LLM_MODEL or SCOPEFLOW_LLM_MODEL_{role.upper()}",
                {"role": role},
            )
        return model

    def new_budget(self) -> Budget:
        """A fresh budget with this deployment's per-instance caps."""
        return Budget(max_tokens=self.max_tokens_per_instance, max_cost=self.max_cost_per_instance)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LlmSettings:
        """Read the ``SCOPEFLOW_LLM_*`` variables from ``environ`` (pass ``os.environ`` in production)."""
        base_url = environ.get("SCOPEFLOW_LLM_BASE_URL", "").strip().rstrip("/")
        if base_url and urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"SCOPEFLOW_LLM_BASE_URL must be an http(s) URL, got {base_url!r}")
        return cls(
            base_url=base_url,
            api_key=environ.get("SCOPEFLOW_LLM_API_KEY", ""),
            model=environ.get("SCOPEFLOW_LLM_MODEL", ""),
            role_models={
                role: environ[f"SCOPEFLOW_LLM_MODEL_{role.upper()}"]
                for role in ROLES
                if environ.get(f"SCOPEFLOW_LLM_MODEL_{role.upper()}")
            },
            provider=environ.get("SCOPEFLOW_LLM_PROVIDER", ""),
            timeout_s=_env_timeout(environ, "SCOPEFLOW_LLM_TIMEOUT", 60.0),
            prices=_parse_prices(environ.get("SCOPEFLOW_LLM_PRICES", "")),
            capture_content=_env_flag(environ, "SCOPEFLOW_LLM_CAPTURE_CONTENT"),
            max_tokens_per_instance=_env_count(environ, "SCOPEFLOW_LLM_MAX_TOKENS_PER_INSTANCE"),
            max_cost_per_instance=_env_count(environ, "SCOPEFLOW_LLM_MAX_COST_PER_INSTANCE"),
        )


def _env_timeout(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return seconds


def _env_count(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _env_flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be 1 or 0, got {value!r}")


def _parse_prices(text: str) -> dict[str, ModelPrice]:
    """``{"model": {"input_per_mtok": int, "output_per_mtok": int}}`` in micro-dollars."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"SCOPEFLOW_LLM_PRICES is not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError("SCOPEFLOW_LLM_PRICES must be a JSON object of model → prices")
    prices = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != {"input_per_mtok", "output_per_mtok"}:
            raise ValueError(
                f"SCOPEFLOW_LLM_PRICES[{model!r}] must have exactly input_per_mtok and output_per_mtok"
            )
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"SCOPEFLOW_LLM_PRICES[{model!r}].{key} must be a non-negative integer "
                    f"(micro-dollars per million tokens), got {value!r}"
                )
        prices[model] = ModelPrice(**entry)
    return prices
