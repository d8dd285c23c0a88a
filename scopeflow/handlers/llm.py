"""The agents' LLM client: any OpenAI-compatible chat-completions server, JSON replies checked
against a schema, bounded retries, a per-instance budget, and one GenAI span per logical call.

Why ``httpx`` rather than the ``openai`` package: we use only the portable subset of the chat
completions API (``POST {base}/chat/completions``), which OpenAI, Ollama, vLLM and llama.cpp all
serve. httpx is small, synchronous with explicit timeouts, and ties us to no vendor's SDK, its
retry policy or its telemetry; retries, budgets and spans stay ours, so they behave the same
against every server.

Handlers never see HTTP: they call :meth:`LlmClient.chat_json` (or :meth:`LlmClient.chat_tool`)
and get a dict that satisfies their schema, or a ``TaskFailure`` of the right kind:

- timeouts, connection errors, 408/409/425/429 and 5xx are retried with backoff (honouring
  ``Retry-After``) up to ``max_attempts``, then ``transient``; the timeout bounds the whole
  exchange, from connecting to the last byte, so a server that answers a byte at a time is a
  timeout too;
- 401/403 (bad key), 404 (wrong base URL or model), redirects, other 4xx, a TLS certificate that
  is not trusted, a body over ``MAX_REPLY_BYTES`` and a 2xx body that is not a chat completion are
  ``configuration``; error details from the server (an HTML page from a proxy too) are one line; 400/413/422 (the request itself) are ``recoverable``,
  except that a 400/422 to a structured-output form the server never accepted moves to the next
  form (:mod:`scopeflow.handlers.llm_output`);
- a reply that is not JSON or breaks the schema is re-asked with the problem appended, at most
  ``max_reasks`` times, then ``recoverable``;
- a spent budget is ``external_blocker`` (see :mod:`scopeflow.handlers.budget`), and every request
  asks for at most the output tokens the budget has left (``max_tokens``).

**Spans** follow the OpenTelemetry GenAI conventions: one ``chat {model}`` span of kind CLIENT per
logical call (a re-ask is a new call; HTTP retries of one call are counted on its span in
``scopeflow.llm.attempts`` and ``scopeflow.llm.retried``), with ``server.address``/``server.port``,
``gen_ai.output.type`` and ``error.type`` (the HTTP status, ``timeout``, ``httpx.<Error>``, ``tls``,
``response_too_large``, ``invalid_response``, ``invalid_json``, ``schema_violation``). It is a child of whatever span the
agent has open (e.g. ``scopeflow.build.llm``), else of the task's span.

When ``SCOPEFLOW_LLM_BASE_URL`` is unset, :attr:`LlmSettings.configured` is False and callers use
their offline agents; nothing here runs.
"""

from __future__ import annotations

import json
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from scopeflow.handlers.budget import Budget
from scopeflow.handlers.context import ChildSpan, TaskContext
from scopeflow.handlers.failures import CONFIGURATION, RECOVERABLE, TRANSIENT, TaskFailure
from scopeflow.handlers.llm_output import (
    REJECTED_STATUS,
    TEXT,
    OutputMode,
    UnusableReply,
    known_mode,
    parse_json_object,
    remember_mode,
    response_format,
    validator_for,
)
from scopeflow.handlers.llm_settings import LlmSettings
from scopeflow.redaction import secret_redactor
from scopeflow.spans.semconv import FALLBACK, FALLBACK_REASON

T = TypeVar("T")
log = logging.getLogger(__name__)


# Attribute names: the OpenTelemetry GenAI semantic conventions (``gen_ai.*``) plus ours.
SPAN_TYPE = "scopeflow.span.type"
LLM_ROLE = "scopeflow.llm.role"
LLM_ATTEMPTS = "scopeflow.llm.attempts"
LLM_RETRIED = "scopeflow.llm.retried"
LLM_OUTPUT_MODE = "scopeflow.llm.output_mode"
LLM_OUTPUT_MODE_REASON = "scopeflow.llm.output_mode_reason"
LLM_MAX_TOKENS_FROM_BUDGET = "scopeflow.llm.max_tokens_from_budget"
LLM_COST = "scopeflow.llm.cost"
LLM_COST_PRICED = "scopeflow.llm.cost_priced"
LLM_USAGE_ESTIMATED = "scopeflow.llm.usage_estimated"
LLM_REPLY_PROBLEM = "scopeflow.llm.reply_problem"

_RETRYABLE_STATUS = {408, 409, 425, 429}
MAX_REPLY_BYTES = 8 * 1024 * 1024   # far above any chat completion; a bigger body is not one
_REQUEST_PROBLEM_STATUS = {400, 413, 422}


# --------------------------------------------------------------------------------------------
# Redaction, replies, small helpers
# --------------------------------------------------------------------------------------------


@dataclass
class ChatReply:
    """What one successful HTTP exchange returned, with its measured (or estimated) usage."""

    content: str
    tool_calls: list[dict[str, Any]]
    model: str
    response_id: str
    finish_reasons: list[str]
    input_tokens: int
    output_tokens: int
    usage_estimated: bool


@dataclass(frozen=True)
class ToolSpec:
    """A function the model is asked to call; its ``parameters`` JSON schema is what we validate."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer read in full (within the size limit): what the client interprets."""

    status: int
    reason: str
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _RetryLater(Exception):
    """An attempt failed in a way another attempt may not (timeout, 429, 5xx)."""

    def __init__(self, error_type: str, reason: str, retry_after: str | None = None):
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason
        self.retry_after = retry_after


class _Refused(Exception):
    """An attempt failed in a way no retry mends (bad key, wrong URL, a request the server rejects)."""

    def __init__(self, error_type: str, failure: TaskFailure):
        super().__init__(failure.message)
        self.error_type = error_type
        self.failure = failure


class _ToolsUnsupported(UnusableReply):
    """The first tool request showed the server does not do tool calls: switch to JSON mode."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def estimate_tokens(text: str) -> int:
    """The usual rough guess when a server reports no usage: one token per four characters."""
    return math.ceil(len(text) / 4)


def _check_messages(messages: list[dict[str, Any]]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"messages[{index}] must be a dict with string 'role' and 'content'")


def _json_instruction(schema: dict[str, Any]) -> str:
    """The system message of JSON mode; it also puts the word JSON in the prompt, as OpenAI requires."""
    return (
        "Reply with only one JSON object, no prose and no code fence. "
        "It must satisfy this JSON Schema:\n" + json.dumps(schema, sort_keys=True)
    )


def _json_reask(problem: str) -> str:
    return (
        f"Your previous reply could not be used: {problem}. Reply again with only one JSON object "
        "that satisfies the JSON Schema given at the start."
    )


def _messages_json(messages: list[dict[str, Any]]) -> str:
    """``gen_ai.input.messages`` in the GenAI conventions' role + parts shape."""
    return json.dumps(
        [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in messages]
    )


def _output_json(reply: ChatReply) -> str:
    """``gen_ai.output.messages``: the assistant's text and tool calls, with the finish reason."""
    parts: list[dict[str, Any]] = []
    if reply.content:
        parts.append({"type": "text", "content": reply.content})
    for call in reply.tool_calls:
        function = call.get("function") or {}
        parts.append({"type": "tool_call", "id": call.get("id", ""), "name": function.get("name", ""),
                      "arguments": function.get("arguments", "")})
    finish = reply.finish_reasons[0] if reply.finish_reasons else ""
    return json.dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}])


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class LlmClient:
    """Chat with the configured server on behalf of one task, charging ``budget``, recording into ``ctx``.

    ``redact`` is applied to every string span attribute (content, error details, the fallback
    reason) and to whatever the server sent back before it lands in a failure message; by default
    it replaces the API key and every value in ``secret_values`` with ``[REDACTED]``. ``max_attempts``,
    ``backoff_base_s``/``backoff_max_s`` (exponential backoff without ``Retry-After``) and
    ``max_retry_after_s`` (a longer ``Retry-After`` gives up at once as ``transient``, saying how
    long the server asked for, so the run stops instead of sleeping) bound the HTTP retries;
    ``sleep`` is how the client waits between them.
    Each exchange is bounded as a whole by ``settings.timeout_s`` and its body by ``max_reply_bytes``.
    """

    def __init__(
        self,
        settings: LlmSettings,
        budget: Budget,
        ctx: TaskContext,
        *,
        redact: Callable[[str], str] | None = None,
        secret_values: Iterable[str] = (),
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not settings.configured:
            raise ValueError("LlmClient needs SCOPEFLOW_LLM_BASE_URL; without it use the offline agents")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.settings = settings
        self.budget = budget
        self.ctx = ctx
        self.redact = redact or secret_redactor([settings.api_key, *secret_values])
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.max_reply_bytes = max_reply_bytes
        self._sleep = sleep
        self._url = settings.base_url + "/chat/completions"
        self._http = httpx.Client(timeout=settings.timeout_s, follow_redirects=False)
        self._tools_supported: bool | None = None   # None until the first tool request shows it
        self._fallback_reason = ""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls -------------------------------------------------------------------------

    def chat_json(
        self,
        role: str,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        *,
        max_reasks: int = 2,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """A JSON object from the ``role``'s model that satisfies ``schema``.

        Structured output in the strongest form the server accepts (see :mod:`llm_output`), with
        the schema also in a leading system message; a reply that is not JSON or breaks the schema
        is re-asked with the problem appended, at most ``max_reasks`` times, then
        ``TaskFailure("recoverable")``. ``max_tokens`` caps the reply; the budget may cap it lower.
        """
        validator = validator_for(schema)
        _check_messages(messages)
        model = self._model(role)
        return self._json_mode(role, model, messages, schema, validator, max_reasks, max_tokens, {})

    def chat_tool(
        self,
        role: str,
        messages: list[dict[str, Any]],
        tool: ToolSpec,
        *,
        max_reasks: int = 2,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The arguments of a call to ``tool``, validated against ``tool.parameters``.

        The first tool request of this client is the probe: if the server rejects ``tools``
        (HTTP 400/422) or answers without calling the function, the client switches to JSON mode
        for this and every later call, loudly: ``scopeflow.fallback=true`` and the reason go on
        the task span and on every span of the fallback calls.
        """
        validator = validator_for(tool.parameters)
        _check_messages(messages)
        model = self._model(role)
        if self._tools_supported is not False:
            try:
                return self._tool_mode(role, model, messages, tool, validator, max_reasks, max_tokens)
            except _ToolsUnsupported as unsupported:
                self._fallback_reason = unsupported.problem
            except TaskFailure as failure:
                if self._tools_supported is not None or failure.details.get("status") not in REJECTED_STATUS:
                    raise
                self._fallback_reason = f"the server rejected the tools request: {failure.message}"
            self._tools_supported = False
        reason = self.redact(f"tool calls unavailable, JSON mode used instead: {self._fallback_reason}")
        self.ctx.record({FALLBACK: True, FALLBACK_REASON: reason})
        return self._json_mode(role, model, messages, tool.parameters, validator, max_reasks, max_tokens,
                               {FALLBACK: True, FALLBACK_REASON: reason})

    # -- structured output and the re-ask loop ------------------------------------------------

    def _json_mode(self, role: str, model: str, messages: list[dict[str, Any]], schema: dict[str, Any],
                   validator: Any, max_reasks: int, max_tokens: int | None,
                   span_attrs: dict[str, Any]) -> dict[str, Any]:
        """Ask in the server's known form; a form the server rejects is dropped for the next one."""
        conversation = [{"role": "system", "content": _json_instruction(schema)}, *messages]
        output = known_mode(self.settings.base_url)
        while True:
            attrs = self._mode_attributes(output, span_attrs)

            def interpret(reply: ChatReply, extract: bool = output.mode == TEXT) -> dict[str, Any]:
                return parse_json_object(reply.content, validator, extract=extract)

            try:
                return self._ask_until_usable(role, model, conversation, response_format(output.mode, schema),
                                              interpret, _json_reask, max_reasks, max_tokens, attrs, output)
            except TaskFailure as failure:
                weaker = self._weaker_mode(output, failure)
                if weaker is None:
                    raise
                output = weaker

    def _weaker_mode(self, output: OutputMode, failure: TaskFailure) -> OutputMode | None:
        """The next form when the server rejected this one (400/422 before it ever accepted it)."""
        status = failure.details.get("status")
        accepted = known_mode(self.settings.base_url)
        if status not in REJECTED_STATUS or (accepted.confirmed and accepted.mode == output.mode):
            return None
        reason = self.redact(f"the server rejected {output.mode} (HTTP {status}: {failure.details.get('detail', '')})")
        weaker = output.next(reason)
        if weaker is not None:
            log.warning("LLM server %s: %s; trying %s", self.settings.base_url, reason, weaker.mode)
        return weaker

    def _mode_attributes(self, output: OutputMode, span_attrs: dict[str, Any]) -> dict[str, Any]:
        """Span attributes that say which form was used and why; plain text is marked a fallback."""
        attrs: dict[str, Any] = {"gen_ai.output.type": "text" if output.mode == TEXT else "json",
                                 LLM_OUTPUT_MODE: output.mode}
        if output.reason:
            attrs[LLM_OUTPUT_MODE_REASON] = output.reason
        attrs.update(span_attrs)
        if output.is_fallback:
            reason = f"no JSON response format accepted, JSON extracted from plain text: {output.reason}"
            if span_attrs.get(FALLBACK_REASON):
                reason = f"{span_attrs[FALLBACK_REASON]}; {reason}"
            attrs.update({FALLBACK: True, FALLBACK_REASON: self.redact(reason)})
            self.ctx.record({FALLBACK: True, FALLBACK_REASON: self.redact(reason)})
        return attrs

    def _tool_mode(self, role: str, model: str, messages: list[dict[str, Any]], tool: ToolSpec,
                   validator: Any, max_reasks: int, max_tokens: int | None) -> dict[str, Any]:
        extra = {
            "tools": [{"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}],
            "tool_choice": {"type": "function", "function": {"name": tool.name}},
        }

        def reask(problem: str) -> str:
            return f"Your previous call could not be used: {problem}. Call {tool.name} again with valid arguments."

        return self._ask_until_usable(
            role, model, list(messages), extra, lambda reply: self._tool_arguments(reply, tool, validator),
            reask, max_reasks, max_tokens, {"gen_ai.output.type": "json", LLM_OUTPUT_MODE: "tools"}, None,
        )

    def _tool_arguments(self, reply: ChatReply, tool: ToolSpec, validator: Any) -> dict[str, Any]:
        calls = [c for c in reply.tool_calls
                 if isinstance(c, dict) and (c.get("function") or {}).get("name") == tool.name]
        if not calls:
            if self._tools_supported is None:
                raise _ToolsUnsupported("tools_unsupported", f"the server answered without calling {tool.name}")
            raise UnusableReply("no_tool_call", f"the reply did not call the function {tool.name}")
        self._tools_supported = True
        return parse_json_object(calls[0]["function"].get("arguments") or "", validator)

    def _ask_until_usable(self, role: str, model: str, conversation: list[dict[str, Any]],
                          extra: dict[str, Any], interpret: Callable[[ChatReply], T],
                          reask: Callable[[str], str], max_reasks: int, max_tokens: int | None,
                          span_attrs: dict[str, Any], output: OutputMode | None) -> T:
        if max_reasks < 0:
            raise ValueError(f"max_reasks must be 0 or more, got {max_reasks}")
        problem = ""
        for _ in range(max_reasks + 1):
            try:
                return self._call(role, model, conversation, extra, interpret, max_tokens, span_attrs, output)
            except _ToolsUnsupported:
                raise
            except UnusableReply as bad:
                problem = bad.problem
                conversation = [*conversation, {"role": "assistant", "content": bad.reply_text},
                                {"role": "user", "content": reask(problem)}]
        replies = max_reasks + 1
        raise TaskFailure(
            RECOVERABLE,
            self.redact(f"LLM gave no usable reply for {role} ({model}) in {replies} replies: {problem}"),
            {"role": role, "model": model, "replies": replies, "last_problem": self.redact(problem)},
        )

    # -- one logical call: one span, HTTP attempts inside it -----------------------------------

    def _call(self, role: str, model: str, messages: list[dict[str, Any]], extra: dict[str, Any],
              interpret: Callable[[ChatReply], T], max_tokens: int | None, span_attrs: dict[str, Any],
              output: OutputMode | None) -> T:
        """One inference request as one ``chat {model}`` CLIENT span; retries are attempts inside it."""
        body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0, **extra}
        self.budget.check()
        allowed = self._output_allowance(body, model)
        limits = [n for n in (max_tokens, allowed) if n is not None]
        if limits:
            body["max_tokens"] = min(limits)
        with self.ctx.span(f"chat {model}", **{SPAN_TYPE: "gen_ai"}) as span:
            self._set(span, {**self._request_attributes(role, body), **span_attrs})
            if allowed is not None:
                self._set(span, {LLM_MAX_TOKENS_FROM_BUDGET: max_tokens is None or allowed < max_tokens})
            if self.settings.capture_content:
                self._set(span, {"gen_ai.input.messages": _messages_json(body["messages"])})
            reply = self._send(span, body)
            if output is not None and not output.confirmed:
                remember_mode(self.settings.base_url, output)
            self._record_reply(span, reply)
            try:
                value = interpret(reply)
            except UnusableReply as bad:
                bad.reply_text = reply.content or json.dumps([c.get("function") for c in reply.tool_calls])
                self._set(span, {"error.type": bad.error_type, LLM_REPLY_PROBLEM: bad.problem})
                self._charge(span, reply, model, failed=True)
                raise
            self._charge(span, reply, model, failed=False)
            return value

    def _output_allowance(self, body: dict[str, Any], model: str) -> int | None:
        """Output tokens the budget leaves for this request (None without caps); see Budget.output_allowance."""
        price = self.settings.prices.get(model)
        prompt = estimate_tokens("".join(m["content"] for m in body["messages"]))
        return self.budget.output_allowance(prompt, price.input_per_mtok if price else None,
                                            price.output_per_mtok if price else None)

    def _send(self, span: ChildSpan, body: dict[str, Any]) -> ChatReply:
        """POST until a usable HTTP answer; every attempt is charged, failed ones as failed calls."""
        retried: list[str] = []
        for attempt in range(1, self.max_attempts + 1):
            self.budget.check()
            self._set(span, {LLM_ATTEMPTS: attempt})
            try:
                return self._read_reply(self._post(body), body)
            except _Refused as refused:
                self._failed(span, refused.error_type)
                raise refused.failure from None
            except _RetryLater as problem:
                self.budget.charge(0, 0, 0, failed=True)
                retried.append(problem.error_type)
                self._set(span, {LLM_RETRIED: retried})
                if attempt == self.max_attempts:
                    self._set(span, {"error.type": problem.error_type})
                    raise TaskFailure(
                        TRANSIENT,
                        self.redact(f"LLM server {self._url} failed {self.max_attempts} attempts; "
                                    f"last: {problem.reason}"),
                        {"url": self._url, "attempts": self.max_attempts, "last_problem": self.redact(problem.reason)},
                    ) from None
                try:
                    self._sleep(self._retry_delay(problem, attempt))
                except TaskFailure:
                    self._set(span, {"error.type": problem.error_type})
                    raise
        raise AssertionError("unreachable: the loop returns or raises")

    def _retry_delay(self, problem: _RetryLater, attempt: int) -> float:
        """Seconds to wait before the next attempt: ``Retry-After`` if given, else exponential backoff."""
        asked = retry_after_seconds(problem.retry_after)
        if asked is not None and asked > self.max_retry_after_s:
            raise TaskFailure(
                TRANSIENT,
                f"LLM server asks to wait {asked:.0f}s (Retry-After), more than the client waits "
                f"({self.max_retry_after_s:.0f}s); not waiting: retry the run once that time has passed",
                {"retry_after_s": asked, "url": self._url},
            )
        delay = asked if asked is not None else min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        left = self.ctx.time_left()
        if left is not None and delay > left:
            raise TaskFailure(TRANSIENT, f"no time left in this task to wait {delay:.1f}s for the LLM server",
                              {"delay_s": delay, "time_left_s": left})
        return delay

    # -- HTTP and the response ----------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> _Answer:
        """One HTTP exchange, bounded as a whole: at most ``timeout_s`` (or the task's time left) from
        connecting to the last byte, and at most ``max_reply_bytes`` of body.

        httpx's timeouts bound each network operation, not the exchange: a server that sends a byte
        every second never trips a 60 s read timeout. So the exchange runs in a daemon thread that
        the caller waits for with a deadline; past it the caller moves on and the thread stops at
        its next chunk (or at its own per-operation timeout).
        """
        headers = {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}
        limit = self._attempt_seconds()
        finished = threading.Event()
        abandoned = threading.Event()
        outcome: dict[str, Any] = {}

        def exchange() -> None:
            try:
                outcome["answer"] = self._exchange(body, headers, abandoned)
            except Exception as exc:  # handed to the caller, who raises it
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=exchange, name="scopeflow-llm-request", daemon=True).start()
        if not finished.wait(limit):
            abandoned.set()
            raise _RetryLater("timeout", f"no answer within {round(limit, 1)}s (connect to last byte)")
        if "error" in outcome:
            raise outcome["error"]
        answer: _Answer = outcome["answer"]
        if 200 <= answer.status < 300:
            return answer
        problem = self._status_problem(answer)
        if isinstance(problem, TaskFailure):
            raise _Refused(str(answer.status), problem)
        raise problem

    def _attempt_seconds(self) -> float:
        """How long one exchange may take: the configured timeout, or less if the task has less left."""
        left = self.ctx.time_left()
        if left is not None and 0 < left < self.settings.timeout_s:
            return left
        return self.settings.timeout_s

    def _exchange(self, body: dict[str, Any], headers: dict[str, str], abandoned: threading.Event) -> _Answer:
        """POST and read the answer in chunks, refusing one larger than ``max_reply_bytes``."""
        try:
            with self._http.stream("POST", self._url, json=body, headers=headers) as response:
                self._refuse_if_declared_too_large(response)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    if abandoned.is_set():
                        raise _RetryLater("timeout", "abandoned after the deadline")
                    size += len(chunk)
                    if size > self.max_reply_bytes:
                        raise self._too_large(response.status_code, f"more than {self.max_reply_bytes} bytes")
                    chunks.append(chunk)
                return _Answer(response.status_code, response.reason_phrase, response.headers, b"".join(chunks))
        except httpx.TimeoutException as exc:
            raise _RetryLater("timeout", f"no answer within {self.settings.timeout_s}s ({type(exc).__name__})") \
                from None
        except httpx.TransportError as exc:
            untrusted = _tls_problem(exc)
            if untrusted:
                raise _Refused("tls", TaskFailure(
                    CONFIGURATION,
                    f"LLM server {self._url} failed the TLS check ({untrusted}); give its CA certificate in "
                    "SSL_CERT_FILE, or fix SCOPEFLOW_LLM_BASE_URL (https:// to a server that speaks plain http?)",
                    {"url": self._url, "tls_error": untrusted},
                )) from None
            raise _RetryLater(f"httpx.{type(exc).__name__}",
                              f"could not reach the server ({type(exc).__name__}: {_one_line(str(exc))})") from None

    def _refuse_if_declared_too_large(self, response: httpx.Response) -> None:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_reply_bytes:
            raise self._too_large(response.status_code, f"Content-Length {declared}")

    def _too_large(self, status: int, size: str) -> _Refused:
        return _Refused("response_too_large", TaskFailure(
            CONFIGURATION,
            f"LLM server at {self._url} answered HTTP {status} with {size}, over the {self.max_reply_bytes}-byte "
            "limit of a chat completion; is SCOPEFLOW_LLM_BASE_URL an OpenAI-compatible /v1 endpoint?",
            {"status": status, "url": self._url, "limit_bytes": self.max_reply_bytes},
        ))

    def _status_problem(self, response: _Answer) -> _RetryLater | TaskFailure:
        """The failure an HTTP error status means (see the module docstring for the mapping)."""
        status = response.status
        detail = self.redact(_error_detail(response))
        if status in _RETRYABLE_STATUS or status >= 500:
            return _RetryLater(str(status), f"HTTP {status}: {detail}", response.headers.get("Retry-After"))
        details = {"status": status, "url": self._url, "detail": detail}
        if status in (401, 403):
            return TaskFailure(CONFIGURATION, f"LLM server refused the credentials (HTTP {status}: {detail}); "
                                              "check SCOPEFLOW_LLM_API_KEY", details)
        if status == 404:
            return TaskFailure(CONFIGURATION, f"LLM server has no chat completions here (HTTP 404: {detail}); "
                                              "check SCOPEFLOW_LLM_BASE_URL and the model name", details)
        if status in _REQUEST_PROBLEM_STATUS:
            return TaskFailure(RECOVERABLE, f"LLM server rejected the request (HTTP {status}: {detail})", details)
        if 300 <= status < 400:
            where = self.redact(response.headers.get("Location", "?"))
            return TaskFailure(CONFIGURATION, f"LLM server redirects (HTTP {status}) to {where}; "
                                              "set SCOPEFLOW_LLM_BASE_URL to the final address", details)
        return TaskFailure(CONFIGURATION, f"LLM server answered HTTP {status}: {detail}", details)

    def _read_reply(self, response: _Answer, body: dict[str, Any]) -> ChatReply:
        try:
            payload = response.json()
            choices = payload["choices"]
            message = choices[0]["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Refused("invalid_response", TaskFailure(
                CONFIGURATION,
                f"LLM server at {self._url} answered HTTP {response.status} without a chat completion "
                f"({_body_summary(response)}); is SCOPEFLOW_LLM_BASE_URL an OpenAI-compatible /v1 endpoint?",
                {"status": response.status, "body_start": self.redact(response.text[:200])},
            )) from None
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        tool_calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        input_tokens, output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = not (_is_count(input_tokens) and _is_count(output_tokens))
        if estimated:
            input_tokens = estimate_tokens("".join(m["content"] for m in body["messages"]))
            output_tokens = estimate_tokens(content + (json.dumps(tool_calls) if tool_calls else ""))
        return ChatReply(
            content=content,
            tool_calls=tool_calls,
            model=str(payload.get("model") or body["model"]),
            response_id=str(payload.get("id") or ""),
            finish_reasons=[str(c["finish_reason"]) for c in choices
                            if isinstance(c, dict) and c.get("finish_reason")],
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            usage_estimated=estimated,
        )

    # -- spans and the budget -----------------------------------------------------------------

    def _request_attributes(self, role: str, body: dict[str, Any]) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.settings.provider_name,
            "gen_ai.request.model": body["model"],
            "gen_ai.request.temperature": float(body["temperature"]),
            "server.address": self.settings.server_address,
            "server.port": self.settings.server_port,
            LLM_ROLE: role,
        }
        if "max_tokens" in body:
            attrs["gen_ai.request.max_tokens"] = body["max_tokens"]
        return attrs

    def _record_reply(self, span: ChildSpan, reply: ChatReply) -> None:
        """Response attributes; usage is always marked as measured or estimated (characters / 4)."""
        attrs: dict[str, Any] = {
            "gen_ai.response.model": reply.model,
            "gen_ai.response.finish_reasons": reply.finish_reasons,
            "gen_ai.usage.input_tokens": reply.input_tokens,
            "gen_ai.usage.output_tokens": reply.output_tokens,
            LLM_USAGE_ESTIMATED: reply.usage_estimated,
        }
        if reply.response_id:
            attrs["gen_ai.response.id"] = reply.response_id
        if self.settings.capture_content:
            attrs["gen_ai.output.messages"] = _output_json(reply)
        self._set(span, attrs)

    def _charge(self, span: ChildSpan, reply: ChatReply, model: str, *, failed: bool) -> None:
        price = self.settings.prices.get(reply.model) or self.settings.prices.get(model)
        cost = price.cost(reply.input_tokens, reply.output_tokens) if price else 0
        self._set(span, {LLM_COST: cost, LLM_COST_PRICED: price is not None})
        self.budget.charge(reply.input_tokens, reply.output_tokens, cost, failed=failed)

    def _failed(self, span: ChildSpan, error_type: str) -> None:
        """An attempt with no answer to use: counted as a failed call (no tokens were reported)."""
        self._set(span, {"error.type": error_type})
        self.budget.charge(0, 0, 0, failed=True)

    def _set(self, span: ChildSpan, attrs: dict[str, Any]) -> None:
        """Set attributes with every string (and string in a list) passed through the redactor."""
        clean: dict[str, Any] = {}
        for key, value in attrs.items():
            if isinstance(value, str):
                value = self.redact(value)
            elif isinstance(value, list):
                value = [self.redact(v) if isinstance(v, str) else v for v in value]
            clean[key] = value
        span.set(**clean)

    def _model(self, role: str) -> str:
        """The role's model; with a cost cap, a model without a price cannot be used (cost unknowable)."""
        model = self.settings.model_for(role)
        if self.budget.max_cost is not None and model not in self.settings.prices:
            raise TaskFailure(
                CONFIGURATION,
                f"LLM cost cap is set but SCOPEFLOW_LLM_PRICES has no price for model {model!r}",
                {"model": model, "priced_models": sorted(self.settings.prices)},
            )
        return model


def _error_detail(response: _Answer) -> str:
    """The server's error message (OpenAI shape ``{"error": {"message": ...}}``) or the body's start,
    on one line (an HTML error page from a proxy is reduced to its text)."""
    try:
        payload = response.json()
        message = payload["error"]["message"] if isinstance(payload.get("error"), dict) else payload["error"]
        return _one_line(str(message))
    except (ValueError, KeyError, TypeError, AttributeError):
        return _one_line(_strip_html(response.text[:2000])) or response.reason


def _body_summary(response: _Answer) -> str:
    """What came instead of a chat completion, in a few words: its type, size and first text."""
    kind = response.headers.get("Content-Type", "no Content-Type").split(";")[0].strip()
    start = _one_line(_strip_html(response.text[:400]), limit=80)
    return f"{kind}, {len(response.content)} bytes" + (f": {start}" if start else ", empty")


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def _strip_html(text: str) -> str:
    return _TAG.sub(" ", text) if "<" in text else text


def _one_line(text: str, limit: int = 300) -> str:
    """``text`` with every run of whitespace (newlines too) made one space, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _tls_problem(exc: httpx.TransportError) -> str:
    """The TLS failure behind a transport error (an untrusted certificate, a handshake with a server
    that does not speak TLS), or "" when it was something else (refused, reset)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _one_line(cause.verify_message or str(cause), 120)
        if isinstance(cause, ssl.SSLError):
            return _one_line(cause.reason or str(cause), 120)
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return _one_line(text, 120)
    return ""
