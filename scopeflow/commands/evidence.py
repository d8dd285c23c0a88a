"""``scopeflow evidence show|verify``, ``scopeflow trace ID|import FILE`` and ``scopeflow stats``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scopeflow.cli import EXIT_FAILED, App, Fail, SafeGroup, _load_instance, _print_json, main, pass_app


def _spans(app: App, instance_id: str) -> list:
    from scopeflow.engine.spanstore import load_spans

    _load_instance(app, instance_id)
    with app.engine.sessions() as session:
        return load_spans(session, instance_id)


def _rules_text(app: App, instance_id: str) -> str:
    from scopeflow.engine.models import ModelVersion
    from scopeflow.processes.catalog import catalog_from_files, evidence_path

    row = _load_instance(app, instance_id)
    with app.engine.sessions() as session:
        version = session.get(ModelVersion, row.model_version_id)
        catalog = catalog_from_files(version.files)
        return version.files.get(evidence_path(catalog.processes[row.model_name].file), "")


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
    from scopeflow.engine.spanstore import load_chain
    from scopeflow.spans.integrity import verify_chain

    _load_instance(app, instance_id)
    with app.engine.sessions() as session:
        rows = load_chain(session, instance_id)
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
    `scopeflow trace import FILE`: read an OTLP JSON trace back (stored when its instance has no
    spans here; otherwise compared with the stored spans)."""
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
        from scopeflow import __version__

        text = json.dumps(to_otlp_json(spans, {"service.name": "scopeflow", "service.version": __version__}),
                          indent=2, sort_keys=True)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {len(spans)} spans to {output}")
    else:
        click.echo(text)


def _import(app: App, path: Path) -> None:
    from scopeflow.engine.spanstore import append_records, load_spans
    from scopeflow.handlers.serde import to_data
    from scopeflow.spans.otlp_json import OtlpError, from_otlp_json

    if not path.is_file():
        raise Fail(f"no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        spans = from_otlp_json(data)
    except json.JSONDecodeError as exc:
        raise Fail(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    except OtlpError as exc:
        raise Fail(f"{path} is not OTLP JSON: {exc}") from None
    by_instance: dict[str, list] = {}
    for span in spans:
        by_instance.setdefault(span.instance_id, []).append(span)
    for instance_id, records in sorted(by_instance.items()):
        with app.engine.sessions() as session:
            stored = load_spans(session, instance_id)
        if stored:
            same = [to_data(s) for s in stored] == [to_data(s) for s in records]
            click.echo(f"{instance_id}: {len(records)} spans; "
                       + ("identical to the stored record" if same else "DIFFERS from the stored record"))
            if not same:
                sys.exit(EXIT_FAILED)
            continue
        with app.engine.sessions.begin() as session:
            head = append_records(session, instance_id, records, app.engine.chain_key)
        click.echo(f"{instance_id}: imported {len(records)} spans (chain head {head})")


@main.command("stats")
@click.option("--model")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def stats(app: App, model: str | None, as_json: bool) -> None:
    """Per model: outcomes, time to delivery, retries, regenerations, human wait per gate."""
    from sqlalchemy import select

    from scopeflow.engine.models import Instance
    from scopeflow.engine.spanstore import load_spans
    from scopeflow.spans.metrics import compute

    with app.engine.sessions() as session:
        query = select(Instance.id, Instance.model_name, Instance.status, Instance.created_at, Instance.ended_at)
        if model:
            query = query.where(Instance.model_name == model)
        rows = [{"id": r[0], "model": r[1], "status": r[2], "created_at": r[3], "ended_at": r[4]}
                for r in session.execute(query)]
        spans = {row["id"]: load_spans(session, row["id"]) for row in rows}
    result = compute(rows, spans)
    if as_json:
        _print_json([s.__dict__ for s in result])
        return
    if not result:
        click.echo("(no instances)")
    for s in result:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.by_status.items()))
        click.echo(f"{s.model}: {s.instances} instance(s) — {outcomes}")
        if s.delivery_seconds_p50 is not None:
            click.echo(f"  time to delivery: p50 {s.delivery_seconds_p50}s, max {s.delivery_seconds_max}s")
        click.echo(f"  retries/instance {s.retries_per_instance}, regenerations/instance {s.regenerations_per_instance}")
        for gate, wait in s.human_wait_seconds.items():
            click.echo(f"  human wait at {gate}: p50 {wait['p50']}s, max {wait['max']}s ({wait['count']}×)")
