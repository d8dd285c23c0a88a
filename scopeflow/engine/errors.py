"""The refusals the engine answers with; the CLI and the API map ``code`` and the class to exit codes
and HTTP statuses. Kept apart from ``service.py`` so every engine module can raise them."""

from __future__ import annotations

UNSAVEABLE_STATE = "UnsaveableState"   # incident type: task data could not be written as plain JSON


class EngineError(Exception):
    """A request the engine refuses; ``code`` says how the CLI/API should answer (2 = bad input)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class NotFound(EngineError):
    pass


class Forbidden(EngineError):
    """The account exists but lacks the role a task needs (a 403 in the API)."""


class Busy(EngineError):
    """Another worker holds the instance's lease."""

    def __init__(self, message: str):
        super().__init__(message, code=1)
