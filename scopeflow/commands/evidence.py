"""``scopeflow evidence show|verify``, ``scopeflow trace ID|import FILE`` and ``scopeflow stats``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scopeflow.cli import EXIT_FAILED, App, Fail, SafeGroup, _load_instance, _print_json, main, pass_app
from scopeflow.program import program

# A file is read and parsed whole (about 3x its size in memory); a 2,000-span trace is a few MB.
MAX_TRACE_FILE_BYTES = 100 * 10**6


def _spans(app: App, instance_id: str) -> list:
    """The stored spans of an instance, or of an imported trace (which has spans but no instance row)."""
    from scopeflow.engine import reads

    spans = reads.stored_spans(app.engine.sessions, instance_id)
    if not spans:
        _load_instance(app, instance_id)   # unknown id: a one-line error
    return spans


def _instance_or_none(app: App, instance_id: str):
    """The instance's record, or None for an imported trace's id (it has spans but no instance)."""
    from scopeflow.engine import reads
    from scopeflow.engine.errors import NotFound

    try:
        return reads.instance_record(app.engine.sessions, instance_id)
    except NotFound:
        return None


def _rules_text(app: App, instance_id: str) -> str:
    """The evidence rules of the instance's model version; for an imported trace, of the model
    version its spans name (stored here, else the models directory's model of that name)."""
    from scopeflow.engine import reads
    from scopeflow.engine.errors import NotFound
    from scopeflow.processes.catalog import evidence_path, scan
    from scopeflow.spans import semconv

    row = _instance_or_none(app, instance_id)
    if row is not None:
        return reads.evidence_rules(app.engine.sessions, row.model_version_id)
    spans = _spans(app, instance_id)
    named = next((s.attributes for s in spans if semconv.PROCESS_ID in s.attributes), None)
    if named is None:
        raise Fail(f"imported trace {instance_id} names no process model ({semconv.PROCESS_ID}): "
                   "it has no evidence rules", EXIT_FAILED)
    model, number = named[semconv.PROCESS_ID], named.get(semconv.PROCESS_VERSION)
    try:
        version = reads.model_version(app.engine.sessions, model, number)
    except NotFound:
        version = None
    if version is not None:
        return version.files.get(evidence_path(reads.main_file(version)), "")
    catalog = scan(app.settings.models_dir)
    if model not in catalog.processes:
        raise Fail(f"imported trace {instance_id} ran model {model!r}, which is neither stored here nor in "
                   f"{app.settings.models_dir}", EXIT_FAILED)
    click.echo(f"(model {model} v{number} is not stored here: rules from {app.settings.models_dir})", err=True)
    return catalog.files.get(evidence_path(catalog.processes[model].file), "")


def chain_report(app: App, instance_id: str):
    return app.engine.verify_chain(instance_id)


@main.group(cls=SafeGroup)
def evidence() -> None:
    """Evidence rules and the integrity of an instance's span record."""


@evidence.command("show")
@click.argument("instance_id")
@click.option("--stage", type=click.Choice(["deploy", "final"]), default="final", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def evidence_show(app: App, instance_id: str, stage: str, as_json: bool) -> None:
    """Evaluate the model's evidence rules over the stored spans; exit 1 when any rule fails."""
    from scopeflow.spans.evidence import evaluate, render_text
    from scopeflow.spans.rules import parse_rules

    text = _rules_text(app, instance_id)
    if not text.strip():
        raise Fail(f"the model of instance {instance_id} has no evidence rules", EXIT_FAILED)
    report = evaluate(parse_rules(text, "evidence rules"), _spans(app, instance_id), stage=stage)
    chain = chain_report(app, instance_id)
    if as_json:
        _print_json({"evidence": report.to_data(), "integrity": chain.__dict__})
    else:
        click.echo(render_text(report))
        click.echo(f"integrity: {'ok' if chain.ok else 'BROKEN: ' + chain.problem} "
                   f"({chain.count} spans, head {chain.head[:16]}…)")
    if not report.ok or not chain.ok:
        sys.exit(EXIT_FAILED)


@evidence.command("verify")
@click.argument("instance_id")
@click.option("--head", "expected_head", help="the chain head recorded in an exported report")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def evidence_verify(app: App, instance_id: str, expected_head: str | None, as_json: bool) -> None:
    """Recompute the span hash chain under the chain key (kept outside the database); name the first
    altered, inserted or deleted span, even when every hash in the database was recomputed."""
    from scopeflow.engine import reads
    from scopeflow.spans.integrity import verify_chain

    rows = reads.span_chain(app.engine.sessions, instance_id)
    if not rows:
        _load_instance(app, instance_id)   # unknown id: a one-line error
    report = verify_chain(rows, instance_id, key=app.engine.chain_key)
    result = dict(report.__dict__)
    if report.ok and expected_head:
        # A report quotes the head as it was when written; later spans extend the chain past it.
        position = next((row.seq for row in rows if row.link_hash == expected_head), None)
        result["head_found_at"] = position
        if position is None:
            result.update(ok=False, problem=f"head {expected_head[:16]}… is not a link of this chain")
    if as_json:
        _print_json(result)
    elif result["ok"]:
        click.echo(f"verified: {report.count} spans, chain head {report.head}")
        if expected_head:
            click.echo(f"the given head is link {result['head_found_at']} of {report.count}")
    else:
        click.echo(f"NOT verified: {result['problem']}")
    if not result["ok"]:
        sys.exit(EXIT_FAILED)


@main.command("trace")
@click.argument("target")
@click.argument("file", required=False)
@click.option("--format", "fmt", type=click.Choice(["tree", "json", "otlp-json"]), default="tree", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="same as --format json (the raw stored spans)")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write to a file instead of stdout")
@pass_app
def trace(app: App, target: str, file: str | None, fmt: str, as_json: bool, output: str | None) -> None:
    """`scopeflow trace ID`: the instance's spans (a tree, raw JSON or OTLP JSON).
    `scopeflow trace import FILE`: read OTLP JSON (one object, or JSON Lines as a collector's file
    exporter writes) back: each instance's spans are compared with the stored ones in any order, or
    stored when there are none; a foreign trace is stored as an imported trace of its own."""
    if target == "import":
        if not file:
            raise Fail("usage: scopeflow trace import FILE")
        _import(app, Path(file))
        return
    from scopeflow.cli import render_trace
    from scopeflow.handlers.serde import to_data
    from scopeflow.spans.otlp_json import to_otlp_json

    spans = _spans(app, target)
    fmt = "json" if as_json else fmt
    if fmt == "tree":
        text = render_trace(spans)
    elif fmt == "json":
        text = json.dumps([to_data(s) for s in spans], indent=2, sort_keys=True)
    else:
        from scopeflow.spans.tracing import service_resource

        resource = service_resource().attributes   # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES apply here too
        text = json.dumps(to_otlp_json(spans, {key: resource[key] for key in ("service.name", "service.version")}),
                          indent=2, sort_keys=True)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {len(spans)} spans to {output}")
    else:
        click.echo(text)


def _import(app: App, path: Path) -> None:
    """Compare each instance's spans in the file with the stored record, or store them when none is."""
    from scopeflow.engine import reads
    from scopeflow.engine.imported_traces import store_spans
    from scopeflow.spans.otlp_json import OtlpError, from_otlp_json_text
    from scopeflow.spans.trace_import import compare, group_spans, is_imported

    if not path.is_file():
        raise Fail(f"no such file: {path}")
    size = path.stat().st_size
    if size > MAX_TRACE_FILE_BYTES:
        raise Fail(f"{path} is {size / 1e6:.0f} MB; trace import reads at most {MAX_TRACE_FILE_BYTES // 10**6} MB "
                   "(the file is read whole: export and import one trace at a time)")
    try:
        groups = group_spans(from_otlp_json_text(path.read_text(encoding="utf-8")))
    except UnicodeDecodeError:
        raise Fail(f"{path} is not UTF-8 text") from None
    except OtlpError as exc:
        raise Fail(f"{path} is not OTLP JSON: {exc}") from None
    if not groups:
        click.echo(f"{path}: no spans")
        return
    differs = False
    for instance_id, records in sorted(groups.items()):
        what = "imported trace" if is_imported(instance_id) else "instance"
        stored = reads.stored_spans(app.engine.sessions, instance_id)
        if stored:
            comparison = compare(stored, records)
            click.echo(f"{what} {instance_id}: {len(records)} spans; "
                       + ("identical to the stored record" if comparison.identical
                          else f"DIFFERS from the stored record: {comparison.summary()}"))
            differs = differs or not comparison.identical
            continue
        head = store_spans(app.engine.sessions, instance_id, records, app.engine.chain_key)
        click.echo(f"{what} {instance_id}: imported {len(records)} spans (chain head {head[:16]}…); "
                   f"view with: {program()} trace {instance_id}")
    if differs:
        sys.exit(EXIT_FAILED)


@main.command("stats")
@click.option("--model")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def stats(app: App, model: str | None, as_json: bool) -> None:
    """Per model: outcomes, time to delivery, retries, regenerations, human wait per gate."""
    from scopeflow.engine import reads
    from scopeflow.spans.metrics import compute

    result = compute(*reads.run_history(app.engine.sessions, model))
    if model and not result:
        _known_model(app, model)   # a typo is an error, not an empty report
    if as_json:
        _print_json([s.__dict__ for s in result])
        return
    if not result:
        click.echo(f"(no instances of {model})" if model else "(no instances)")
    for s in result:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.by_status.items()))
        click.echo(f"{s.model}: {s.instances} instance(s) — {outcomes}")
        if s.delivery_seconds_p50 is not None:
            click.echo(f"  time to delivery: p50 {s.delivery_seconds_p50}s, max {s.delivery_seconds_max}s")
        click.echo(f"  retries/instance {s.retries_per_instance}, regenerations/instance {s.regenerations_per_instance}")
        for gate, wait in s.human_wait_seconds.items():
            click.echo(f"  human wait at {gate}: p50 {wait['p50']}s, max {wait['max']}s ({wait['count']}×)")


def _known_model(app: App, model: str) -> None:
    """Fail with one line unless ``model`` is in the models directory or was ever deployed."""
    from scopeflow.engine import reads

    deployed = reads.deployed_models(app.engine.sessions)
    on_disk = app.engine.catalog().models
    if model not in deployed and model not in on_disk:
        known = ", ".join(sorted(set(deployed) | set(on_disk))) or "none"
        raise Fail(f"unknown model {model} (known: {known})")
