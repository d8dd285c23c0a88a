"""Structured output: how the LLM client asks a server for JSON, and how it reads the reply.

Servers differ in what they accept. The client tries the strongest form first and falls back,
once per server (per base URL, for the life of the process):

1. ``json_schema`` — ``response_format: {"type": "json_schema", "json_schema": {...}}``: the server
   constrains the reply to the schema (OpenAI, vLLM, llama.cpp, recent Ollama);
2. ``json_object`` — ``response_format: {"type": "json_object"}``: the server guarantees JSON, the
   schema is only in the prompt;
3. ``text`` — no ``response_format`` at all; the JSON object is extracted from whatever prose
   surrounds it. This is a fallback path and says so (``scopeflow.fallback`` on the span).

A server "rejects" a form when it answers HTTP 400 or 422 to it before any request in that form
succeeded. Once a form has been accepted (any 2xx), a later 400 is the request's own problem and
is not taken as a reason to fall back. In every form the reply is validated against the schema and
re-asked when it breaks it, so the form changes how often a re-ask is needed, never what is accepted.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

JSON_SCHEMA = "json_schema"
JSON_OBJECT = "json_object"
TEXT = "text"
MODES = (JSON_SCHEMA, JSON_OBJECT, TEXT)
REJECTED_STATUS = (400, 422)


class UnusableReply(Exception):
    """The server answered, but the content is not what was asked for (re-ask with ``problem``)."""

    def __init__(self, error_type: str, problem: str):
        super().__init__(problem)
        self.error_type = error_type
        self.problem = problem
        self.reply_text = ""        # what the model said, echoed back to it when re-asking


@dataclass(frozen=True)
class OutputMode:
    """The structured-output form used with a server, and why (empty when it is the first choice)."""

    mode: str
    reason: str = ""
    confirmed: bool = False        # a request in this form has succeeded on this server

    @property
    def is_fallback(self) -> bool:
        """Plain text with extraction is the fallback path; both JSON forms are enforced by the server."""
        return self.mode == TEXT

    def next(self, reason: str) -> OutputMode | None:
        """The next weaker form after this one was rejected, or None when there is none."""
        index = MODES.index(self.mode)
        return OutputMode(MODES[index + 1], reason) if index + 1 < len(MODES) else None


_known: dict[str, OutputMode] = {}
_known_lock = threading.Lock()


def known_mode(server: str) -> OutputMode:
    """The form to use with ``server``: what was found before, else ``json_schema`` (unconfirmed)."""
    with _known_lock:
        return _known.get(server, OutputMode(JSON_SCHEMA))


def remember_mode(server: str, mode: OutputMode) -> OutputMode:
    """Record that ``server`` accepted ``mode``; later clients start there. Returns it confirmed."""
    confirmed = OutputMode(mode.mode, mode.reason, confirmed=True)
    with _known_lock:
        _known[server] = confirmed
    return confirmed


def forget_modes() -> None:
    """Forget every server's form (tests: loopback ports are reused by different fake servers)."""
    with _known_lock:
        _known.clear()


def response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The request fields that ask for ``mode`` (none for plain text)."""
    if mode == JSON_SCHEMA:
        # strict=False: strict mode demands every property be required, which our schemas are not.
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "reply", "schema": schema, "strict": False}}}
    if mode == JSON_OBJECT:
        return {"response_format": {"type": "json_object"}}
    return {}


# --------------------------------------------------------------------------------------------
# Reading the reply
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def parse_json_object(text: str, validator: jsonschema.protocols.Validator, *, extract: bool = False) -> dict[str, Any]:
    """The JSON object in ``text`` if it satisfies the schema; else :class:`UnusableReply`.

    One surrounding Markdown code fence is tolerated, since local models often add one even in
    JSON mode. With ``extract`` (plain-text mode) the first JSON object anywhere in the prose is
    taken; otherwise anything that is not a bare JSON object is a problem to re-ask about.
    """
    fenced = _FENCE.match(text or "")
    body = fenced.group(1) if fenced else (text or "")
    if not body.strip():
        raise UnusableReply("empty_reply", "the reply was empty (no content and no tool call)")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        found = _first_object(body) if extract else None
        if found is None:
            raise UnusableReply("invalid_json", f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} "
                                                f"column {exc.colno})") from None
        data = found
    if not isinstance(data, dict):
        raise UnusableReply("invalid_json", f"the reply is JSON but not an object (got {type(data).__name__})")
    error = best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise UnusableReply("schema_violation", f"the JSON breaks the schema at {where}: {error.message}")
    return data


def _first_object(text: str) -> dict[str, Any] | None:
    """The first complete JSON object embedded in ``text`` (prose around it ignored), if any."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for ``schema``; an invalid schema is the caller's bug (ValueError, one line)."""
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON schema for an LLM reply: {exc.message}") from None
    return cls(schema)
