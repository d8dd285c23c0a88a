"""The auditor view: every stored span of an instance as a waterfall with details, the diagram
linked to its spans, the evidence report, the integrity check, and OTLP JSON / evidence JSON exports.

The page reads the span table once (``load_chain``) for spans and integrity alike, so it shows the
evidence of record: spans an advance running right now has not checkpointed yet appear on reload.
The exports use ``Engine.recorded_spans`` (stored + buffered), like the CLI."""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template

from scopeflow.ui import evidence_view, run_view
from scopeflow.ui.instances import load_instance
from scopeflow.ui.security import engine, requires

bp = Blueprint("trace", __name__)

AUDITORS = ("auditor", "operator", "reviewer")   # a reviewer may read the trace of what they approve


@bp.route("/instances/<instance_id>/trace")
@requires(*AUDITORS)
def show(instance_id: str):
    with engine().sessions() as session:
        row = load_instance(session, instance_id)
        rules_text = evidence_view.evidence_rules_text(session, row)
        spans, chain = evidence_view.stored_trace(session, row.id, engine().chain_key)
        xml = run_view.diagram_xml(session, row)
        state = run_view.state_payload(session, row, run_view.task_spans_of(spans))
    report, why = evidence_view.evidence(rules_text, spans, evidence_view.evidence_stage(row))
    rows = evidence_view.waterfall(spans)
    return render_template("trace.html", row=row, rows=rows, traces=sorted({s.trace_id for s in spans}),
                           report=report, evidence_problem=why, chain=chain, xml=xml, state=state,
                           details=evidence_view.span_details(spans))


def _json_download(data: object, name: str) -> Response:
    return Response(json.dumps(data, indent=2, default=str), mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.route("/instances/<instance_id>/trace/otlp.json")
@requires(*AUDITORS)
def otlp(instance_id: str):
    with engine().sessions() as session:
        load_instance(session, instance_id)
    document = evidence_view.otlp_document(engine().recorded_spans(instance_id))
    return _json_download(document, f"trace-{instance_id}.otlp.json")


@bp.route("/instances/<instance_id>/evidence.json")
@requires(*AUDITORS)
def evidence_json(instance_id: str):
    payload = evidence_view.evidence_payload(engine().sessions, engine().recorded_spans, instance_id, load_instance,
                                             engine().chain_key)
    return _json_download(payload, f"evidence-{instance_id}.json")
