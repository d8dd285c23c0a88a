"""`scopeflow llm check` and the submit preflight, run as a user runs them, against a scripted server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from scopeflow.cli import Fail, main
from scopeflow.commands.llm import preflight
from scopeflow.program import program
from tests.conftest import MODELS
from tests.fake_llm_server import FakeLlmServer, error_reply, json_reply

MODEL = "fake-model-1"
KEY = "sk-check-SECRET-987"
OK = {"ok": True}


def scopeflow(home: Path, *args: str, llm: dict[str, str] | None = None):
    """Run the CLI in-process, as a user would type it, with only the given SCOPEFLOW_LLM_* set."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("SCOPEFLOW_LLM_", "OTEL_"))}
    env.update({"SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(MODELS), "SCOPEFLOW_DATABASE_URL": None})
    env.update({f"SCOPEFLOW_LLM_{name}": value for name, value in (llm or {}).items()})
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def llm_vars(server: FakeLlmServer, **extra: str) -> dict[str, str]:
    return {"BASE_URL": server.base_url, "MODEL": MODEL, "API_KEY": KEY, **extra}


def test_a_working_service_is_confirmed_with_one_small_call(tmp_path):
    with FakeLlmServer([json_reply(OK, usage=(30, 5))]) as server:
        done = scopeflow(tmp_path, "llm", "check", llm=llm_vars(server))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"✓ LLM {MODEL} at {server.base_url} answers (planner, builder, reviewer, "
                                  "analyst; structured output json_schema; ")
    assert "35 tokens" in done.stdout
    [request] = server.requests
    assert request.body["max_tokens"] == 64 and request.headers["Authorization"] == f"Bearer {KEY}"


def test_each_distinct_model_is_checked_once(tmp_path):
    with FakeLlmServer([json_reply(OK), json_reply(OK)]) as server:
        done = scopeflow(tmp_path, "llm", "check", "--json", llm=llm_vars(server, MODEL_REVIEWER="judge-2"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(m["model"], m["roles"]) for m in report["models"]] == [
        (MODEL, ["planner", "builder", "analyst"]), ("judge-2", ["reviewer"])]
    assert [r.body["model"] for r in server.requests] == [MODEL, "judge-2"]


@pytest.mark.parametrize("reply, says", [
    (error_reply(401, f"Incorrect API key provided: {KEY}"), "check SCOPEFLOW_LLM_API_KEY"),
    (error_reply(404, "The model `fake-model-1` does not exist"), "check SCOPEFLOW_LLM_BASE_URL and the model name"),
])
def test_a_wrong_key_or_model_is_one_clear_line_and_exit_1(tmp_path, reply, says):
    with FakeLlmServer([reply]) as server:
        done = scopeflow(tmp_path, "llm", "check", llm=llm_vars(server))
    assert done.returncode == 1
    [line] = done.stdout.splitlines()
    assert line.startswith(f"✗ LLM model {MODEL} at {server.base_url}") and says in line
    assert KEY not in done.stdout + done.stderr


def test_an_unreachable_endpoint_fails_the_check(tmp_path):
    with FakeLlmServer() as server:
        url = server.base_url
    done = scopeflow(tmp_path, "llm", "check", llm={"BASE_URL": url, "MODEL": MODEL})
    assert done.returncode == 1 and "could not reach the server" in done.stdout


def test_without_an_endpoint_there_is_nothing_to_check(tmp_path):
    done = scopeflow(tmp_path, "llm", "check")
    assert (done.returncode, done.stdout.strip()) == (
        0, "LLM not configured (SCOPEFLOW_LLM_BASE_URL is unset): the agents run offline")


def test_unreadable_settings_are_bad_input(tmp_path):
    done = scopeflow(tmp_path, "llm", "check", llm={"BASE_URL": "localhost:8000"})
    assert done.returncode == 2 and "must be an http(s) URL" in done.stderr


def test_submit_stops_before_starting_anything_when_the_preflight_fails(tmp_path):
    scope = tmp_path / "scope.md"
    scope.write_text("# Plants\n\nI want to keep track of my plants and when I water them.\n", encoding="utf-8")
    with FakeLlmServer([error_reply(401, "bad key"), error_reply(401, "bad key")]) as server:
        done = scopeflow(tmp_path / "home", "submit", str(scope), "--yes", llm=llm_vars(server))
        printed = scopeflow(tmp_path / "home", "llm", "check", llm=llm_vars(server))   # the command it names
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "LLM preflight failed, nothing submitted" in line and "check SCOPEFLOW_LLM_API_KEY" in line
    assert f"(details: {program()} llm check)" in line
    assert printed.returncode == 1 and "check SCOPEFLOW_LLM_API_KEY" in printed.stdout
    listed = scopeflow(tmp_path / "home", "instances", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["total"] == 0


def test_the_preflight_passes_a_working_service_and_ignores_an_unconfigured_one(llm_env):
    preflight()   # nothing configured: nothing to check, nothing raised
    with FakeLlmServer([json_reply(OK)]) as server:
        llm_env(server)
        preflight()
        assert len(server.requests) == 1
    with FakeLlmServer([error_reply(404, "no such model")]) as server:
        llm_env(server)
        with pytest.raises(Fail, match="LLM preflight failed"):
            preflight()


def test_a_model_failure_after_the_preflight_is_shown_with_its_reason(tmp_path):
    scope = tmp_path / "scope.md"
    scope.write_text("I want to keep track of my plants and when I water them.\n", encoding="utf-8")
    script = [json_reply(OK), error_reply(401, "key revoked"), error_reply(401, "key revoked")]
    with FakeLlmServer(script) as server:
        done = scopeflow(tmp_path / "home", "submit", str(scope), "--yes", llm=llm_vars(server))
    failed = [line for line in done.stdout.splitlines() if line.startswith("✗ Analyse scope")]
    assert failed, done.stdout + done.stderr
    assert "LLM server refused the credentials" in failed[0] and "check SCOPEFLOW_LLM_API_KEY" in failed[0]
    assert KEY not in done.stdout


def test_an_endpoint_without_a_model_fails_the_check_without_a_call(tmp_path):
    with FakeLlmServer() as server:
        done = scopeflow(tmp_path, "llm", "check", llm={"BASE_URL": server.base_url})
        assert server.requests == []
    assert done.returncode == 1
    assert done.stdout.strip() == (f"✗ LLM no model at {server.base_url} (planner, builder, reviewer, analyst): "
                                   "no LLM model configured: set SCOPEFLOW_LLM_MODEL")
