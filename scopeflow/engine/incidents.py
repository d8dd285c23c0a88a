"""What an incident says about its cause: the run (data, a service, a credential), which a retry
with edited data can get past, or the model itself, which no data fixes."""

from __future__ import annotations

from typing import Any

MODEL, RUN = "model", "run"


def cause_of(error_type: str, message: str) -> str:
    """``model`` for an expression or script that does not compile, a refused script, or a timer
    whose duration cannot be read (a version deployed before lint checked it), else ``run``."""
    if error_type in ("SyntaxError", "ValidationException") or " refused: " in message \
            or "SyntaxError:" in message or "Invalid duration" in message:
        return MODEL
    return RUN


def caused_by_model(incident: dict[str, Any]) -> bool:
    """Whether the incident's recorded cause is the model (read from its type and message for an
    incident recorded before the cause was)."""
    cause = incident.get("cause") or cause_of(str(incident.get("error_type") or ""), str(incident.get("message") or ""))
    return cause == MODEL
