"""`scopeflow trace import` must not call a copy identical when it lacks a stored span or holds one
the store does not: a real instance's exported trace, cut or padded, through the real command."""

from __future__ import annotations

import copy
import json

from tests.test_otlp_import import export, hello_run, models, scopeflow  # noqa: F401 (fixtures)


def test_a_copy_missing_a_stored_span_differs_and_names_it(hello_run, models, tmp_path):  # noqa: F811
    home, instance_id = hello_run
    file = tmp_path / "trace.json"
    document = export(home, models, instance_id, file)
    removed = document["resourceSpans"][0]["scopeSpans"][0]["spans"].pop(2)
    file.write_text(json.dumps(document), encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 1, done.output
    assert f"DIFFERS from the stored record: 1 stored spans missing from the file (first {removed['spanId']})" \
        in done.output


def test_a_copy_with_an_extra_span_differs_and_names_it(hello_run, models, tmp_path):  # noqa: F811
    home, instance_id = hello_run
    file = tmp_path / "trace.json"
    document = export(home, models, instance_id, file)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    extra = copy.deepcopy(spans[1])
    extra["spanId"] = "e" * 16
    spans.append(extra)
    file.write_text(json.dumps(document), encoding="utf-8")
    done = scopeflow(home, models, "trace", "import", str(file))
    assert done.exit_code == 1, done.output
    assert f"DIFFERS from the stored record: 1 spans not in the store (first {'e' * 16})" in done.output
