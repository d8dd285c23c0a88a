"""The one redactor: stored secret values never reach spans, incidents, logs or reports.

Every place that writes text a secret could end up in (the engine's spans and incidents, the LLM
client's content capture) uses :func:`secret_redactor`. Two rules make it safe:

- **longest value first**, in one pass: when one secret contains another (``TOKEN`` and
  ``TOKEN-EXTENDED-TAIL``), the longer is replaced whole instead of leaving its tail behind;
- **no minimum length**: a 3-digit PIN is a secret too. The price is that a very short secret (one
  or two characters) also blanks out every unrelated occurrence of those characters; store real
  credentials, not single characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[REDACTED]"


def secret_redactor(secret_values: Iterable[str],
                    then: Callable[[str], str] | None = None) -> Callable[[str], str]:
    """A function replacing each of ``secret_values`` (empty ones ignored) with ``[REDACTED]``;
    ``then`` (an earlier redactor, e.g. for secrets stored before) runs on the result."""
    secrets = sorted({value for value in secret_values if value}, key=len, reverse=True)
    after = then or (lambda text: text)
    if not secrets:
        return after
    pattern = re.compile("|".join(re.escape(value) for value in secrets))

    def redact(text: str) -> str:
        return after(pattern.sub(REDACTED, text)) if isinstance(text, str) else text

    return redact


def redact_data(value: Any, redact: Callable[[str], str], *, keys: bool = False) -> Any:
    """``value`` (JSON-like data) with ``redact`` applied to every string in it (tuples become lists);
    dict keys too when ``keys`` (data shown to people, where a secret could be a key)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {(redact(str(key)) if keys else key): redact_data(item, redact, keys=keys)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item, redact, keys=keys) for item in value]
    return value
