"""``scopeflow stats``: per-model outcomes; a model name that names nothing is an error, not an empty report."""

from __future__ import annotations

import json

from tests.test_catalog_and_cli import scopeflow


def test_stats_for_an_unknown_model_is_a_one_line_error_naming_the_known_ones(tmp_path):
    result = scopeflow(tmp_path, "stats", "--model", "helo")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "unknown model helo" in result.stderr and "hello" in result.stderr
    assert "Traceback" not in result.stderr


def test_stats_for_a_known_model_without_instances_says_so(tmp_path):
    result = scopeflow(tmp_path, "stats", "--model", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(no instances of hello)"


def test_stats_counts_the_runs_of_a_model(tmp_path):
    assert scopeflow(tmp_path, "start", "hello", "--data", json.dumps({"name": "Ada"})).returncode == 0
    result = scopeflow(tmp_path, "stats", "--model", "hello", "--json")
    assert result.returncode == 0, result.stderr
    [hello] = json.loads(result.stdout)
    assert (hello["model"], hello["instances"], hello["by_status"]) == ("hello", 1, {"completed": 1})
