"""The LLM client against a real HTTP server on loopback with scripted answers.

Each test is a behaviour the agents rely on: a usable JSON object or a failure of the right kind,
the budget charged for every attempt, and one GenAI span per HTTP attempt with no secret in it.
"""

import json
import math
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from scopeflow.handlers.budget import Budget
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import (
    CONFIGURATION,
    EXTERNAL_BLOCKER,
    RECOVERABLE,
    TRANSIENT,
    TaskFailure,
)
from scopeflow.handlers.llm import LlmClient, ToolSpec, retry_after_seconds
from scopeflow.handlers.llm_output import forget_modes
from scopeflow.handlers.llm_settings import LlmSettings, ModelPrice
from tests.fake_llm_server import (
    FakeLlmServer,
    completion,
    error_reply,
    json_reply,
    rate_limited,
    raw_reply,
    slow,
    tool_call_reply,
)

API_KEY = "sk-test-SECRET-key-123"
MODEL = "fake-model-1"
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "tasks": {"type": "integer", "minimum": 1}},
    "required": ["title", "tasks"],
}
GOOD = {"title": "Todo app", "tasks": 3}
ASK = [{"role": "user", "content": "Plan the todo app."}]


@pytest.fixture
def ctx(tmp_path):
    forget_modes()   # what a server accepted is remembered per base URL, and loopback ports are reused
    return RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="plan", workspace=tmp_path)


def make_client(server, ctx, budget=None, *, capture=False, timeout=2.0, attempts=3, **kw):
    settings = LlmSettings(
        base_url=server.base_url,
        api_key=API_KEY,
        model=MODEL,
        timeout_s=timeout,
        prices={MODEL: ModelPrice(input_per_mtok=1_000_000, output_per_mtok=2_000_000)},
        capture_content=capture,
    )
    return LlmClient(settings, budget or Budget(), ctx, max_attempts=attempts, backoff_base_s=0.01, **kw)


def all_attribute_text(ctx):
    return json.dumps([span.attributes for span in ctx.child_spans] + [ctx.recorded], default=str)


# -- the happy path -----------------------------------------------------------------------------


def test_a_valid_json_reply_is_returned_and_fully_described_by_one_span(ctx):
    budget = Budget()
    with FakeLlmServer([json_reply(GOOD, usage=(12, 7))]) as server, \
            make_client(server, ctx, budget) as client:
        result = client.chat_json("planner", ASK, SCHEMA, max_tokens=500)

    assert result == GOOD
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == MODEL
    assert request.body["temperature"] == 0
    assert request.body["max_tokens"] == 500
    assert request.body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": False}}
    assert "JSON" in request.body["messages"][0]["content"]
    assert request.body["messages"][-1] == ASK[0]

    [span] = ctx.child_spans
    assert span.name == f"chat {MODEL}"
    assert span.attributes == {
        "scopeflow.span.type": "gen_ai",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.max_tokens": 500,
        "gen_ai.output.type": "json",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "scopeflow.llm.output_mode": "json_schema",
        "scopeflow.llm.role": "planner",
        "scopeflow.llm.attempts": 1,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.id": "chatcmpl-fake-1",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "scopeflow.llm.usage_estimated": False,
        "scopeflow.llm.cost": 12 * 1 + 7 * 2,
        "scopeflow.llm.cost_priced": True,
    }
    assert budget.to_data() == {"max_tokens": None, "max_cost": None, "spent_tokens": 19,
                                "spent_cost": 26, "calls": 1, "failed_calls": 0}


def test_a_reply_in_a_code_fence_is_still_read_as_json(ctx):
    fenced = "```json\n" + json.dumps(GOOD) + "\n```"
    with FakeLlmServer([completion(fenced)]) as server, make_client(server, ctx) as client:
        assert client.chat_json("builder", ASK, SCHEMA) == GOOD


# -- unusable replies are re-asked --------------------------------------------------------------


def test_broken_json_is_re_asked_with_the_problem_then_accepted(ctx):
    budget = Budget()
    with FakeLlmServer([completion('{"title": "Todo", '), json_reply(GOOD)]) as server, \
            make_client(server, ctx, budget) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD

    first, second = server.requests
    assert second.body["messages"][:len(first.body["messages"])] == first.body["messages"]
    echoed, reask = second.body["messages"][-2:]
    assert echoed == {"role": "assistant", "content": '{"title": "Todo", '}
    assert reask["role"] == "user" and "not valid JSON" in reask["content"]
    assert ctx.child_spans[0].attributes["error.type"] == "invalid_json"
    assert "error.type" not in ctx.child_spans[1].attributes
    assert (budget.calls, budget.failed_calls, budget.spent_tokens) == (2, 1, 38)


def test_schema_violations_until_the_re_asks_run_out_are_a_recoverable_failure(ctx):
    bad = {"title": "Todo", "tasks": 0}
    with FakeLlmServer([json_reply(bad)] * 3) as server, make_client(server, ctx) as client:
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA, max_reasks=2)

    assert caught.value.kind == RECOVERABLE
    assert "in 3 replies" in caught.value.message
    assert "tasks" in caught.value.details["last_problem"]
    assert len(server.requests) == 3 and server.unscripted == 0
    assert [s.attributes["error.type"] for s in ctx.child_spans] == ["schema_violation"] * 3
    assert "minimum" in server.requests[-1].body["messages"][-1]["content"]


def test_a_json_array_is_not_an_object_and_is_re_asked(ctx):
    with FakeLlmServer([completion("[1, 2]"), json_reply(GOOD)]) as server, make_client(server, ctx) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD
    assert "not an object" in ctx.child_spans[0].attributes["scopeflow.llm.reply_problem"]


# -- HTTP failures ------------------------------------------------------------------------------


def test_429_waits_at_least_the_retry_after_header_then_succeeds_in_one_span(ctx):
    with FakeLlmServer([rate_limited("0.2"), json_reply(GOOD)]) as server, make_client(server, ctx) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD

    first, second = server.requests
    assert second.received_at - first.received_at >= 0.2
    [span] = ctx.child_spans
    assert span.attributes["scopeflow.llm.attempts"] == 2
    assert span.attributes["scopeflow.llm.retried"] == ["429"]
    assert "error.type" not in span.attributes


def test_a_retry_after_longer_than_the_client_waits_is_transient_at_once(ctx):
    with FakeLlmServer([rate_limited("120")]) as server, \
            make_client(server, ctx, max_retry_after_s=5) as client:
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == TRANSIENT
    assert "Retry-After" in caught.value.message
    assert len(server.requests) == 1


def test_a_server_error_is_retried_and_counted_as_a_failed_call(ctx):
    budget = Budget()
    with FakeLlmServer([error_reply(500), json_reply(GOOD)]) as server, \
            make_client(server, ctx, budget) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD
    [span] = ctx.child_spans
    assert span.attributes["scopeflow.llm.retried"] == ["500"] and "error.type" not in span.attributes
    assert (budget.calls, budget.failed_calls) == (2, 1)


def test_timeouts_become_transient_after_the_bounded_attempts(ctx):
    with FakeLlmServer([slow(1.0), slow(1.0)]) as server, \
            make_client(server, ctx, timeout=0.2, attempts=2) as client:
        started = time.monotonic()
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)
        elapsed = time.monotonic() - started

    assert caught.value.kind == TRANSIENT
    assert "failed 2 attempts" in caught.value.message and "no answer within 0.2s" in caught.value.message
    [span] = ctx.child_spans
    assert span.attributes["error.type"] == "timeout"
    assert span.attributes["scopeflow.llm.retried"] == ["timeout", "timeout"]
    assert span.attributes["scopeflow.llm.attempts"] == 2
    assert elapsed < 1.0


def test_unauthorized_is_a_configuration_failure_without_retry_or_key(ctx):
    with FakeLlmServer([error_reply(401, f"Incorrect API key provided: {API_KEY}")]) as server, \
            make_client(server, ctx) as client:
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)

    assert caught.value.kind == CONFIGURATION
    assert "SCOPEFLOW_LLM_API_KEY" in caught.value.message
    assert API_KEY not in caught.value.message and API_KEY not in json.dumps(caught.value.details)
    assert len(server.requests) == 1
    assert ctx.child_spans[0].attributes["error.type"] == "401"


def test_a_bad_request_to_a_form_the_server_accepted_is_recoverable_without_falling_back(ctx):
    with FakeLlmServer([json_reply(GOOD), error_reply(400, "context length exceeded")]) as server, \
            make_client(server, ctx) as client:
        client.chat_json("planner", ASK, SCHEMA)
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == RECOVERABLE
    assert "context length exceeded" in caught.value.message
    assert len(server.requests) == 2 and server.unscripted == 0
    assert ctx.child_spans[1].attributes["error.type"] == "400"


def test_a_page_that_is_not_a_chat_completion_is_a_configuration_failure(ctx):
    with FakeLlmServer([raw_reply(200, "<html>welcome</html>")]) as server, make_client(server, ctx) as client:
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == CONFIGURATION
    assert "OpenAI-compatible" in caught.value.message
    assert ctx.child_spans[0].attributes["error.type"] == "invalid_response"


# -- budget -------------------------------------------------------------------------------------


def test_no_call_is_made_once_the_budget_is_exceeded(ctx):
    budget = Budget(max_tokens=400)
    with FakeLlmServer([json_reply(GOOD, usage=(200, 10))] * 3) as server, \
            make_client(server, ctx, budget) as client:
        client.chat_json("planner", ASK, SCHEMA)
        client.chat_json("planner", ASK, SCHEMA)
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)

    assert caught.value.kind == EXTERNAL_BLOCKER
    assert caught.value.message.startswith("LLM budget exceeded: 420 tokens spent, cap 400")
    assert caught.value.details["spent_tokens"] == 420 and caught.value.details["calls"] == 2
    assert len(server.requests) == 2


PROMPT_TOKENS = 63   # the JSON instruction with SCHEMA plus ASK, at four characters a token


def test_max_tokens_is_what_the_token_cap_leaves_after_the_prompt(ctx):
    budget = Budget(max_tokens=1000, spent_tokens=200)
    with FakeLlmServer([json_reply(GOOD), json_reply(GOOD)]) as server, \
            make_client(server, ctx, budget) as client:
        client.chat_json("planner", ASK, SCHEMA)
        client.chat_json("planner", ASK, SCHEMA, max_tokens=100)
    first, second = (r.body for r in server.requests)
    assert first["max_tokens"] == 1000 - 200 - PROMPT_TOKENS
    assert second["max_tokens"] == 100
    assert [s.attributes["scopeflow.llm.max_tokens_from_budget"] for s in ctx.child_spans] == [True, False]
    assert ctx.child_spans[0].attributes["gen_ai.request.max_tokens"] == first["max_tokens"]


def test_the_cost_cap_becomes_max_tokens_at_the_models_output_price(ctx):
    budget = Budget(max_cost=1000)   # prices: 1 micro-dollar per input token, 2 per output token
    with FakeLlmServer([json_reply(GOOD)]) as server, make_client(server, ctx, budget) as client:
        client.chat_json("planner", ASK, SCHEMA)
    assert server.requests[0].body["max_tokens"] == (1000 - PROMPT_TOKENS) // 2


def test_a_budget_too_small_for_a_useful_reply_is_refused_before_any_request(ctx):
    budget = Budget(max_tokens=PROMPT_TOKENS + 31)
    with FakeLlmServer([json_reply(GOOD)]) as server, make_client(server, ctx, budget) as client:
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == EXTERNAL_BLOCKER
    assert f"a prompt of about {PROMPT_TOKENS} tokens leaves 31 output tokens" in caught.value.message
    assert server.requests == [] and ctx.child_spans == []


def test_a_cost_cap_needs_a_price_for_the_model(ctx):
    with FakeLlmServer() as server:
        settings = LlmSettings(base_url=server.base_url, model="unpriced", prices={})
        with LlmClient(settings, Budget(max_cost=1000), ctx) as client:
            with pytest.raises(TaskFailure) as caught:
                client.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == CONFIGURATION
    assert "no price for model 'unpriced'" in caught.value.message
    assert server.requests == []


def test_missing_usage_is_estimated_from_characters_and_says_so(ctx):
    content = json.dumps(GOOD)
    with FakeLlmServer([completion(content, usage=None)]) as server, make_client(server, ctx) as client:
        client.chat_json("planner", ASK, SCHEMA)

    sent = "".join(m["content"] for m in server.requests[0].body["messages"])
    attrs = ctx.child_spans[0].attributes
    assert attrs["scopeflow.llm.usage_estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == math.ceil(len(sent) / 4)
    assert attrs["gen_ai.usage.output_tokens"] == math.ceil(len(content) / 4)


# -- content capture and secrets ----------------------------------------------------------------


def test_content_is_captured_only_when_enabled_and_secrets_are_redacted(ctx):
    leaky = [{"role": "user", "content": f"Deploy with key {API_KEY} and password hunter2-pw."}]
    reply = json_reply({"title": f"uses {API_KEY}", "tasks": 1})
    with FakeLlmServer([reply]) as server, \
            make_client(server, ctx, capture=True, secret_values=["hunter2-pw"]) as client:
        client.chat_json("planner", leaky, SCHEMA)

    attrs = ctx.child_spans[0].attributes
    sent = json.loads(attrs["gen_ai.input.messages"])
    received = json.loads(attrs["gen_ai.output.messages"])
    assert sent[-1]["role"] == "user"
    assert "Deploy with key [REDACTED] and password [REDACTED]." == sent[-1]["parts"][0]["content"]
    assert "[REDACTED]" in received[0]["parts"][0]["content"]
    assert received[0]["finish_reason"] == "stop"
    text = all_attribute_text(ctx)
    assert API_KEY not in text and "hunter2-pw" not in text


def test_content_is_not_captured_by_default(ctx):
    with FakeLlmServer([json_reply(GOOD)]) as server, make_client(server, ctx) as client:
        client.chat_json("planner", [{"role": "user", "content": f"key {API_KEY}"}], SCHEMA)
    attrs = ctx.child_spans[0].attributes
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert API_KEY not in all_attribute_text(ctx)


# -- tool calls ---------------------------------------------------------------------------------

TOOL = ToolSpec("submit_plan", "Submit the plan.", SCHEMA)


def test_a_tool_call_returns_its_validated_arguments(ctx):
    with FakeLlmServer([tool_call_reply("submit_plan", GOOD)]) as server, make_client(server, ctx) as client:
        assert client.chat_tool("planner", ASK, TOOL) == GOOD

    body = server.requests[0].body
    assert body["tools"][0]["function"]["name"] == "submit_plan"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "submit_plan"}}
    assert "response_format" not in body
    assert ctx.child_spans[0].attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert "scopeflow.fallback" not in ctx.recorded


def test_a_server_that_ignores_tools_falls_back_to_json_mode_loudly_and_for_good(ctx):
    script = [completion("I would plan it like this..."), json_reply(GOOD), json_reply(GOOD)]
    with FakeLlmServer(script) as server, make_client(server, ctx) as client:
        assert client.chat_tool("planner", ASK, TOOL) == GOOD
        assert client.chat_tool("planner", ASK, TOOL) == GOOD

    probe, fallback, later = (r.body for r in server.requests)
    assert "tools" in probe
    assert "tools" not in fallback and fallback["response_format"]["type"] == "json_schema"
    assert "tools" not in later
    assert ctx.recorded["scopeflow.fallback"] is True
    assert "without calling submit_plan" in ctx.recorded["scopeflow.fallback.reason"]
    assert [s.attributes.get("scopeflow.fallback") for s in ctx.child_spans] == [None, True, True]


def test_a_server_that_rejects_tools_falls_back_to_json_mode(ctx):
    with FakeLlmServer([error_reply(400, "tools are not supported"), json_reply(GOOD)]) as server, \
            make_client(server, ctx) as client:
        assert client.chat_tool("planner", ASK, TOOL) == GOOD
    assert "tools are not supported" in ctx.recorded["scopeflow.fallback.reason"]


def test_invalid_tool_arguments_are_re_asked(ctx):
    script = [tool_call_reply("submit_plan", {"title": "x"}), tool_call_reply("submit_plan", GOOD)]
    with FakeLlmServer(script) as server, make_client(server, ctx) as client:
        assert client.chat_tool("planner", ASK, TOOL) == GOOD
    assert "'tasks' is a required property" in server.requests[1].body["messages"][-1]["content"]
    assert "scopeflow.fallback" not in ctx.recorded


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_before_any_request(ctx):
    with FakeLlmServer() as server, make_client(server, ctx) as client:
        with pytest.raises(ValueError, match="invalid JSON schema"):
            client.chat_json("planner", ASK, {"type": "no-such-type"})
        with pytest.raises(ValueError, match=r"messages\[0\] must be a dict"):
            client.chat_json("planner", [{"role": "user"}], SCHEMA)
        with pytest.raises(ValueError, match="unknown LLM role 'poet'"):
            client.chat_json("poet", ASK, SCHEMA)
    assert server.requests == []


def test_a_client_without_a_base_url_is_refused():
    with pytest.raises(ValueError, match="offline agents"):
        LlmClient(LlmSettings(), Budget(), None)


# -- settings -----------------------------------------------------------------------------------


def test_settings_from_an_empty_environment_are_unconfigured():
    settings = LlmSettings.from_env({})
    assert settings.configured is False
    assert settings.new_budget() == Budget()


def test_settings_from_the_environment():
    settings = LlmSettings.from_env({
        "SCOPEFLOW_LLM_BASE_URL": "http://localhost:11434/v1/",
        "SCOPEFLOW_LLM_API_KEY": API_KEY,
        "SCOPEFLOW_LLM_MODEL": "llama3.1",
        "SCOPEFLOW_LLM_MODEL_REVIEWER": "qwen2.5",
        "SCOPEFLOW_LLM_TIMEOUT": "12.5",
        "SCOPEFLOW_LLM_PRICES": '{"llama3.1": {"input_per_mtok": 150000, "output_per_mtok": 600000}}',
        "SCOPEFLOW_LLM_CAPTURE_CONTENT": "1",
        "SCOPEFLOW_LLM_MAX_TOKENS_PER_INSTANCE": "200000",
        "SCOPEFLOW_LLM_MAX_COST_PER_INSTANCE": "5000000",
    })
    assert settings.configured and settings.base_url == "http://localhost:11434/v1"
    assert settings.provider_name == "ollama"
    assert settings.model_for("planner") == "llama3.1"
    assert settings.model_for("reviewer") == "qwen2.5"
    assert settings.timeout_s == 12.5 and settings.capture_content is True
    assert settings.prices["llama3.1"].cost(1_000_000, 1_000_000) == 750_000
    assert settings.new_budget() == Budget(max_tokens=200_000, max_cost=5_000_000)
    assert API_KEY not in repr(settings)


@pytest.mark.parametrize("url, provider", [
    ("https://api.openai.com/v1", "openai"),
    ("http://127.0.0.1:11434/v1", "ollama"),
    ("http://vllm.internal:8000/v1", "openai_compatible"),
])
def test_the_provider_name_is_derived_from_the_base_url(url, provider):
    assert LlmSettings.from_env({"SCOPEFLOW_LLM_BASE_URL": url}).provider_name == provider
    explicit = {"SCOPEFLOW_LLM_BASE_URL": url, "SCOPEFLOW_LLM_PROVIDER": "azure.ai.openai"}
    assert LlmSettings.from_env(explicit).provider_name == "azure.ai.openai"


@pytest.mark.parametrize("name, value, message", [
    ("SCOPEFLOW_LLM_BASE_URL", "localhost:8000", "must be an http"),
    ("SCOPEFLOW_LLM_TIMEOUT", "soon", "number of seconds"),
    ("SCOPEFLOW_LLM_TIMEOUT", "0", "must be positive"),
    ("SCOPEFLOW_LLM_PRICES", "{bad", "not valid JSON"),
    ("SCOPEFLOW_LLM_PRICES", '{"m": {"input_per_mtok": 1.5, "output_per_mtok": 1}}', "non-negative integer"),
    ("SCOPEFLOW_LLM_PRICES", '{"m": {"input": 1}}', "exactly input_per_mtok"),
    ("SCOPEFLOW_LLM_CAPTURE_CONTENT", "maybe", "1 or 0"),
    ("SCOPEFLOW_LLM_MAX_COST_PER_INSTANCE", "-3", "non-negative integer"),
])
def test_malformed_settings_are_a_one_line_error(name, value, message):
    with pytest.raises(ValueError, match=message):
        LlmSettings.from_env({name: value})


def test_a_configured_server_without_a_model_is_a_configuration_failure():
    settings = LlmSettings.from_env({"SCOPEFLOW_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    with pytest.raises(TaskFailure) as caught:
        settings.model_for("builder")
    assert caught.value.kind == CONFIGURATION
    assert "SCOPEFLOW_LLM_MODEL_BUILDER" in caught.value.message


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds("whenever") is None
    assert retry_after_seconds(None) is None


def test_without_retry_after_the_waits_grow_exponentially(ctx):
    waits = []
    with FakeLlmServer([error_reply(503), error_reply(502), json_reply(GOOD)]) as server, \
            make_client(server, ctx, sleep=waits.append) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD
    assert waits == [0.01, 0.02]


def test_nonsense_usage_figures_are_replaced_by_an_estimate(ctx):
    payload = json.loads(json_reply(GOOD).body)
    payload["usage"] = {"prompt_tokens": -5, "completion_tokens": True}
    with FakeLlmServer([raw_reply(200, json.dumps(payload), "application/json")]) as server, \
            make_client(server, ctx) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD
    assert ctx.child_spans[0].attributes["scopeflow.llm.usage_estimated"] is True


# -- structured output: json_schema, then json_object, then plain text, found once per server -----


def test_a_server_that_rejects_json_schema_is_asked_for_json_object_from_then_on(ctx):
    script = [error_reply(400, "response_format json_schema is not supported"), json_reply(GOOD), json_reply(GOOD)]
    with FakeLlmServer(script) as server:
        with make_client(server, ctx) as client:
            assert client.chat_json("planner", ASK, SCHEMA) == GOOD
        with make_client(server, ctx) as later:   # another task, same server: no second probe
            assert later.chat_json("planner", ASK, SCHEMA) == GOOD
    formats = [r.body["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    rejected, accepted, again = (s.attributes for s in ctx.child_spans)
    assert rejected["error.type"] == "400" and rejected["scopeflow.llm.output_mode"] == "json_schema"
    assert accepted["scopeflow.llm.output_mode"] == again["scopeflow.llm.output_mode"] == "json_object"
    assert "json_schema is not supported" in accepted["scopeflow.llm.output_mode_reason"]
    assert accepted["gen_ai.output.type"] == "json"
    assert "scopeflow.fallback" not in accepted and "scopeflow.fallback" not in ctx.recorded


def test_a_server_that_rejects_both_json_forms_gets_plain_text_with_the_json_extracted_loudly(ctx):
    prose = "Sure! Here is the plan: " + json.dumps(GOOD) + " Let me know if you need more."
    script = [error_reply(400, "unknown field response_format"), error_reply(422, "unknown field response_format"),
              completion(prose), completion(prose)]
    with FakeLlmServer(script) as server:
        with make_client(server, ctx) as client:
            assert client.chat_json("planner", ASK, SCHEMA) == GOOD
        with make_client(server, ctx) as later:
            assert later.chat_json("planner", ASK, SCHEMA) == GOOD
    assert [r.body.get("response_format", {}).get("type") for r in server.requests] == \
        ["json_schema", "json_object", None, None]
    text_span = ctx.child_spans[2].attributes
    assert text_span["scopeflow.llm.output_mode"] == "text" and text_span["gen_ai.output.type"] == "text"
    assert text_span["scopeflow.fallback"] is True
    assert "JSON extracted from plain text" in text_span["scopeflow.fallback.reason"]
    assert ctx.recorded["scopeflow.fallback"] is True


def test_a_request_every_form_rejects_is_recoverable_and_nothing_is_remembered(ctx):
    script = [error_reply(400, "prompt too long")] * 3 + [json_reply(GOOD)]
    with FakeLlmServer(script) as server:
        with make_client(server, ctx) as client:
            with pytest.raises(TaskFailure) as caught:
                client.chat_json("planner", ASK, SCHEMA)
        with make_client(server, ctx) as later:
            later.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == RECOVERABLE and "prompt too long" in caught.value.message
    assert server.requests[-1].body["response_format"]["type"] == "json_schema"


def test_in_json_modes_prose_around_the_json_is_re_asked_not_extracted(ctx):
    prose = "Here you go: " + json.dumps(GOOD)
    with FakeLlmServer([completion(prose), json_reply(GOOD)]) as server, make_client(server, ctx) as client:
        assert client.chat_json("planner", ASK, SCHEMA) == GOOD
    assert ctx.child_spans[0].attributes["error.type"] == "invalid_json"


# -- GenAI span details -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_is_transient_with_a_readable_error_type(ctx):
    unused_tcp_port = closed_port()
    settings = LlmSettings(base_url=f"http://127.0.0.1:{unused_tcp_port}/v1", model=MODEL, timeout_s=1)
    with LlmClient(settings, Budget(), ctx, max_attempts=2, backoff_base_s=0.01) as client:
        with pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA)
    assert caught.value.kind == TRANSIENT
    [span] = ctx.child_spans
    assert span.attributes["error.type"] == "httpx.ConnectError"
    assert span.attributes["scopeflow.llm.retried"] == ["httpx.ConnectError"] * 2
    assert (span.attributes["server.address"], span.attributes["server.port"]) == ("127.0.0.1", unused_tcp_port)


@pytest.mark.parametrize("url, address, port", [
    ("https://api.openai.com/v1", "api.openai.com", 443),
    ("http://ollama.lan/v1", "ollama.lan", 80),
    ("http://[::1]:11434/v1", "::1", 11434),
])
def test_server_address_and_port_come_from_the_base_url(url, address, port):
    settings = LlmSettings.from_env({"SCOPEFLOW_LLM_BASE_URL": url})
    assert (settings.server_address, settings.server_port) == (address, port)
