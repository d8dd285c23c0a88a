"""The error taxonomy: how a handler says *why* it could not do its job.

A handler raises :class:`TaskFailure`; the engine retries ``transient`` failures under the
operator's retry policy and then throws a BPMN error event whose ``errorCode`` is the kind, so the
diagram (not Python) decides what happens next.
"""

from __future__ import annotations

from typing import Any

TRANSIENT = "transient"
RECOVERABLE = "recoverable"
CONFIGURATION = "configuration"
DESIGN_FLAW = "design_flaw"
EXTERNAL_BLOCKER = "external_blocker"

KINDS = (TRANSIENT, RECOVERABLE, CONFIGURATION, DESIGN_FLAW, EXTERNAL_BLOCKER)


def resumable(blocker_kind: str) -> bool:
    """Whether ``scopeflow instances retry`` can resume a run that this kind of blocker stopped.

    A failure of the taxonomy left a task to run again once its cause is fixed. The other blocker
    kinds are decisions and verdicts (a person rejected or did not confirm, the scope is not
    buildable, the evidence does not hold): running the same steps again would decide the same, so
    those runs end for good and the scope is submitted again.
    """
    return blocker_kind in KINDS


class TaskFailure(Exception):
    """A handler failure of a known kind, routed by BPMN error boundary events."""

    def __init__(self, kind: str, message: str, details: dict[str, Any] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {', '.join(KINDS)}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = dict(details or {})

    def to_payload(self) -> dict[str, Any]:
        """What lands in the task data (``error_payload``) of the path that catches it."""
        return {"kind": self.kind, "message": self.message, "details": self.details}
