"""``scopeflow llm check``, and the same check as a preflight before ``scopeflow submit``."""

from __future__ import annotations

import sys

import click

from scopeflow.cli import EXIT_FAILED, Fail, SafeGroup, _print_json, main
from scopeflow.program import program


def _settings():
    """The LLM settings from ``SCOPEFLOW_LLM_*``; unreadable values are a one-line error (exit 2)."""
    from scopeflow.config import llm_environment
    from scopeflow.handlers.llm_settings import LlmSettings

    return LlmSettings.from_env(llm_environment())


def _describe(check, model) -> str:
    roles = ", ".join(model.roles)
    if model.ok:
        return (f"✓ LLM {model.model} at {check.base_url} answers ({roles}; structured output "
                f"{model.output_mode}; {model.latency_ms} ms; {model.tokens} tokens)")
    name = f"model {model.model}" if model.model else "no model"
    return f"✗ LLM {name} at {check.base_url} ({roles}): {model.problem}"


@main.group(cls=SafeGroup)
def llm() -> None:
    """The language model the agents use (configured by SCOPEFLOW_LLM_*)."""


@llm.command("check")
@click.option("--json", "as_json", is_flag=True)
def llm_check(as_json: bool) -> None:
    """Verify endpoint, key and every configured model with one small call each; exit 1 on failure."""
    from scopeflow.handlers.llm_check import check_llm

    check = check_llm(_settings())
    if as_json:
        _print_json(check.to_data())
    elif not check.configured:
        click.echo("LLM not configured (SCOPEFLOW_LLM_BASE_URL is unset): the agents run offline")
    else:
        for model in check.models:
            click.echo(_describe(check, model))
    if not check.ok:
        sys.exit(EXIT_FAILED)


def preflight() -> None:
    """Before a submit: with an LLM configured, fail in one line now rather than mid-run."""
    from scopeflow.handlers.llm_check import check_llm

    check = check_llm(_settings())
    failed = [model for model in check.models if not model.ok]
    if failed:
        raise Fail(f"LLM preflight failed, nothing submitted: {_describe(check, failed[0]).removeprefix('✗ ')} "
                   f"(details: {program()} llm check)", EXIT_FAILED)
