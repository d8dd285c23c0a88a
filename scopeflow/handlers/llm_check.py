"""Is the configured model service usable? One small real call per model the agents would use.

A wrong base URL, model name or key otherwise shows up mid-run, as an incident of whichever agent
first talks to the model. This check makes the same kind of call the agents make (a JSON reply
validated against a schema, through :class:`LlmClient`), so it also finds which structured-output
form the server accepts, and reports each problem as the client's own one-line failure message.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scopeflow.handlers.budget import Budget
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.llm import LLM_OUTPUT_MODE, LlmClient
from scopeflow.handlers.llm_settings import ROLES, LlmSettings

PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"const": True}},
    "required": ["ok"],
}
PROBE_MESSAGES = [{"role": "user", "content": 'This is a connection check. Reply with the JSON object {"ok": true}.'}]
PROBE_MAX_TOKENS = 64


@dataclass
class ModelCheck:
    """What one probe call showed about one model."""

    model: str
    roles: list[str]
    ok: bool
    problem: str = ""              # the client's failure message when not ok
    kind: str = ""                 # the failure kind (configuration, transient, recoverable, ...)
    output_mode: str = ""          # the structured-output form the server accepted
    latency_ms: int = 0
    tokens: int = 0


@dataclass
class LlmCheck:
    """The whole check: where the service is and each model's result (none when unconfigured)."""

    configured: bool
    base_url: str = ""
    models: list[ModelCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.models)

    def to_data(self) -> dict[str, Any]:
        return {"configured": self.configured, "base_url": self.base_url, "ok": self.ok,
                "models": [asdict(m) for m in self.models]}


def models_by_role(settings: LlmSettings) -> dict[str, list[str]]:
    """Each distinct model the agents use, with the roles that use it (a role without one is left out)."""
    models: dict[str, list[str]] = {}
    for role in ROLES:
        model = settings.role_models.get(role) or settings.model
        if model:
            models.setdefault(model, []).append(role)
    return models


def check_llm(settings: LlmSettings | None, *, max_attempts: int = 2) -> LlmCheck:
    """Probe every model of ``settings`` once; ``None`` (no endpoint) is a check with nothing to probe."""
    if settings is None or not settings.configured:
        return LlmCheck(configured=False)
    result = LlmCheck(configured=True, base_url=settings.base_url)
    if not models_by_role(settings):
        result.models.append(ModelCheck("", list(ROLES), ok=False, kind="configuration",
                                        problem="no LLM model configured: set SCOPEFLOW_LLM_MODEL"))
    with tempfile.TemporaryDirectory(prefix="scopeflow-llm-check-") as scratch:
        for model, roles in models_by_role(settings).items():
            result.models.append(_probe(settings, model, roles, Path(scratch), max_attempts))
    return result


def _probe(settings: LlmSettings, model: str, roles: list[str], scratch: Path, max_attempts: int) -> ModelCheck:
    ctx = RecordingContext(instance_id="llm-check", task_id="llm-check", bpmn_id="llm_check", workspace=scratch)
    budget = Budget()
    started = time.monotonic()
    try:
        with LlmClient(settings, budget, ctx, max_attempts=max_attempts, backoff_base_s=0.2) as client:
            client.chat_json(roles[0], PROBE_MESSAGES, PROBE_SCHEMA, max_reasks=1, max_tokens=PROBE_MAX_TOKENS)
    except TaskFailure as failure:
        return ModelCheck(model, roles, ok=False, problem=failure.message, kind=failure.kind,
                          latency_ms=_ms_since(started), tokens=budget.spent_tokens)
    modes = [span.attributes.get(LLM_OUTPUT_MODE) for span in ctx.child_spans]
    return ModelCheck(model, roles, ok=True, output_mode=str(modes[-1] or ""), latency_ms=_ms_since(started),
                      tokens=budget.spent_tokens)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
