"""`scopeflow trace import`: a collector's copy in any order or as JSON Lines matches the stored
record; a foreign trace becomes an imported trace that trace, evidence show and verify can read."""

from __future__ import annotations

import json
import random
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from scopeflow.cli import main
from scopeflow.engine.service import Engine
from scopeflow.program import program
from scopeflow.spans.otlp_json import to_otlp_json
from scopeflow.spans.record import SpanRecord
from tests.conftest import make_settings

HELLO_RULES = """
[[rule]]
name = "greeting ran"
selector = 'span[scopeflow.bpmn.element.id="greet" scopeflow.span.type="bpmn.task"]'
assert = ['attr:scopeflow.task.outcome = "completed"']
"""


@pytest.fixture
def models(models_dir: Path) -> Path:
    (models_dir / "examples" / "hello.evidence.toml").write_text(HELLO_RULES, encoding="utf-8")
    return models_dir


def scopeflow(home: Path, models: Path, *args: str):
    """Run the CLI in-process as a user would, with its own home and models directory."""
    env = {"SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(models), "SCOPEFLOW_DATABASE_URL": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def hello_run(tmp_path, models) -> tuple[Path, str]:
    """A home with one finished hello run; its instance id."""
    home = tmp_path / "origin"
    instance_id = Engine(make_settings(home, models_dir=models)).start("hello", {"name": "Ada"})
    return home, instance_id


def export(home: Path, models: Path, instance_id: str, path: Path) -> dict:
    done = scopeflow(home, models, "trace", instance_id, "--format", "otlp-json", "-o", str(path))
    assert done.exit_code == 0, done.output
    return json.loads(path.read_text(encoding="utf-8"))


def as_collector_would(document: dict, seed: int = 7) -> dict:
    """The same spans, shuffled and split over several resource/scope batches."""
    resource_spans = document["resourceSpans"][0]
    spans = list(resource_spans["scopeSpans"][0]["spans"])
    random.Random(seed).shuffle(spans)
    half = len(spans) // 2
    return {"resourceSpans": [
        {"resource": resource_spans["resource"], "scopeSpans": [{"scope": {"name": "scopeflow"}, "spans": part}]}
        for part in (spans[:half], spans[half:])]}


def test_a_reordered_collector_copy_is_identical_to_the_stored_record(hello_run, models, tmp_path):
    home, instance_id = hello_run
    file = tmp_path / "trace.json"
    document = export(home, models, instance_id, file)
    file.write_text(json.dumps(as_collector_would(document)), encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 0, done.output
    assert f"instance {instance_id}: " in done.output and "identical to the stored record" in done.output


def test_json_lines_from_a_collector_file_exporter_are_read_line_by_line(hello_run, models, tmp_path):
    home, instance_id = hello_run
    file = tmp_path / "trace.json"
    batches = as_collector_would(export(home, models, instance_id, file))["resourceSpans"]
    file.write_text("\n".join(json.dumps({"resourceSpans": [batch]}) for batch in batches) + "\n", encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 0 and "identical to the stored record" in done.output, done.output


def test_a_copy_with_one_altered_span_differs_and_names_it(hello_run, models, tmp_path):
    home, instance_id = hello_run
    file = tmp_path / "trace.json"
    document = export(home, models, instance_id, file)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    span["name"] = "something else"
    file.write_text(json.dumps(document), encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 1
    assert f"DIFFERS from the stored record: 1 spans that differ (first {span['spanId']})" in done.output


def test_a_broken_json_lines_file_names_the_line(hello_run, models, tmp_path):
    home, _ = hello_run
    file = tmp_path / "broken.jsonl"
    file.write_text('{"resourceSpans": []}\n{"resourceSpans": [\n', encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 2 and "line 2 is not JSON" in done.output


def test_an_instance_imported_into_a_fresh_store_can_be_viewed_shown_and_verified(hello_run, models, tmp_path):
    home, instance_id = hello_run
    file = tmp_path / "trace.json"
    export(home, models, instance_id, file)
    fresh = tmp_path / "fresh"
    done = scopeflow(fresh, models, "trace", "import", str(file))
    assert done.exit_code == 0 and f"view with: {program()} trace {instance_id}" in done.output, done.output

    shown = scopeflow(fresh, models, "trace", instance_id)
    assert shown.exit_code == 0 and shown.output.startswith(f"advance hello {instance_id[:8]}")
    assert scopeflow(fresh, models, "evidence", "verify", instance_id).exit_code == 0
    evidence = scopeflow(fresh, models, "evidence", "show", instance_id, "--json")
    assert evidence.exit_code == 0, evidence.output
    report = json.loads(evidence.output[evidence.output.index("{"):])
    assert [r["name"] for r in report["evidence"]["rules"]] == ["greeting ran"] and report["evidence"]["ok"]


def foreign_trace() -> list[SpanRecord]:
    """Spans another system made: no scopeflow attributes at all."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    root = SpanRecord(trace_id, "00f067aa0ba902b7", None, "GET /orders", 1_700_000_000_000_000_000,
                      1_700_000_000_500_000_000, kind="SERVER", attributes={"http.request.method": "GET"})
    child = SpanRecord(trace_id, "53995c3f42cd8ad8", root.span_id, "SELECT orders", 1_700_000_000_100_000_000,
                       1_700_000_000_200_000_000, kind="CLIENT", attributes={"db.system.name": "postgresql"})
    return [root, child]


def test_a_foreign_trace_becomes_an_imported_trace_that_the_printed_command_shows(models, tmp_path):
    home = tmp_path / "home"
    file = tmp_path / "foreign.json"
    file.write_text(json.dumps(to_otlp_json(foreign_trace(), {"service.name": "orders"})), encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 0, done.output
    imported = "imported-4bf92f3577b34da6a3ce929d0e0"
    assert f"imported trace {imported}: imported 2 spans" in done.output
    printed = shlex.split(done.output.split("view with: ")[1].strip())
    assert printed == [*shlex.split(program()), "trace", imported]

    tree = scopeflow(home, models, *printed[-2:])
    assert tree.exit_code == 0 and tree.output.splitlines()[:2] == ["GET /orders 500.0ms", "  SELECT orders 100.0ms"]
    assert scopeflow(home, models, "evidence", "verify", imported).exit_code == 0
    no_rules = scopeflow(home, models, "evidence", "show", imported)
    assert no_rules.exit_code == 1 and "names no process model" in no_rules.output

    again = tmp_path / "again.json"
    assert scopeflow(home, models, "trace", imported, "--format", "otlp-json", "-o", str(again)).exit_code == 0
    back = scopeflow(home, models, "trace", "import", str(again))
    assert back.exit_code == 0 and f"imported trace {imported}: 2 spans; identical" in back.output


def test_an_unknown_id_is_still_a_one_line_error(models, tmp_path):
    done = scopeflow(tmp_path / "home", models, "trace", "imported-0000")
    assert done.exit_code == 2 and "unknown instance imported-0000" in done.output


def test_the_otlp_json_download_names_the_configured_service(hello_run, models, tmp_path, monkeypatch):
    home, instance_id = hello_run
    monkeypatch.setenv("OTEL_SERVICE_NAME", "delivery-bot")
    document = export(home, models, instance_id, tmp_path / "trace.json")
    resource = {kv["key"]: kv["value"]["stringValue"] for kv in document["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["service.name"] == "delivery-bot" and resource["service.version"]
