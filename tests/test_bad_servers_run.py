"""Whole runs whose LLM endpoint misbehaves end blocked, quickly, with a blocker that says what to do.

A misbehaving server must never leave a run hanging or failing silently: the submit returns
``blocked``, the blocker names the failure kind and the setting or action that mends it, and the
stored ``chat`` span says what the server did.
"""

from __future__ import annotations

import time

import pytest

from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from tests.conftest import MODELS
from tests.fake_llm_server import FakeLlmServer, error_reply, rate_limited, slow
from tests.test_llm_agents import PROSE_SCOPE
from tests.test_llm_lifecycle import engine_over

pytestmark = pytest.mark.slow


@pytest.fixture
def engine(tmp_path, monkeypatch):
    engine, settings = engine_over(MODELS, tmp_path, monkeypatch)
    yield engine
    stop_all(settings.releases_dir)


def gen_ai_spans(engine: Engine, instance_id: str) -> list:
    with engine.sessions() as session:
        return [s for s in load_spans(session, instance_id) if s.attributes.get("scopeflow.span.type") == "gen_ai"]


def run_against(engine: Engine, llm_env, script, **env: str):
    with FakeLlmServer(script) as server:
        llm_env(server, **env)
        started = time.monotonic()
        result = submit(engine, PROSE_SCOPE, yes=True)
        return result, time.monotonic() - started, len(server.requests)


def test_a_refused_key_blocks_the_run_at_once_asking_for_the_key(engine, llm_env):
    result, elapsed, requests = run_against(engine, llm_env, [error_reply(401, "Incorrect API key provided")] * 5)
    assert (result.status, result.outcome) == ("blocked", "blocked") and elapsed < 30
    assert requests == 1                                  # a bad key is not retried
    (blocker,) = result.blockers
    assert blocker["kind"] == "configuration"
    assert blocker["message"] == ("LLM server refused the credentials (HTTP 401: Incorrect API key provided); "
                                  "check SCOPEFLOW_LLM_API_KEY")
    (span,) = gen_ai_spans(engine, result.instance_id)
    assert span.attributes["error.type"] == "401"


def test_an_hour_long_retry_after_blocks_the_run_without_sleeping(engine, llm_env):
    result, elapsed, requests = run_against(engine, llm_env, [rate_limited("3600")] * 5)
    assert (result.status, result.outcome) == ("blocked", "blocked")
    assert elapsed < 60, f"the run waited {elapsed:.1f}s on a one-hour Retry-After"
    (blocker,) = result.blockers
    assert blocker["kind"] == "transient"
    assert "asks to wait 3600s (Retry-After)" in blocker["message"]
    assert "retry the run once that time has passed" in blocker["message"]
    spans = gen_ai_spans(engine, result.instance_id)
    assert spans and all(s.attributes["error.type"] == "429" for s in spans)
    assert len(spans) == requests


def test_a_silent_server_blocks_the_run_within_the_configured_timeout(engine, llm_env):
    result, elapsed, requests = run_against(engine, llm_env, [slow(5)] * 9, TIMEOUT="0.2")
    assert (result.status, result.outcome) == ("blocked", "blocked")
    assert requests >= 1
    assert elapsed < 30, f"{elapsed:.1f}s: without the 0.2 s timeout each request would wait 5 s"
    (blocker,) = result.blockers
    assert blocker["kind"] == "transient" and "no answer within 0.2s" in blocker["message"]
    assert all(s.attributes["error.type"] == "timeout" for s in gen_ai_spans(engine, result.instance_id))
