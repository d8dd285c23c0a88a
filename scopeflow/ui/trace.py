"""The auditor view: every stored span of an instance as a waterfall with details, the diagram
linked to its spans, the evidence report, the integrity check, and OTLP JSON / evidence JSON exports.

The page reads the span table once (``reads.span_chain``) for spans and integrity alike, so it shows the
evidence of record: spans an advance running right now has not checkpointed yet appear on reload.
The exports use ``Engine.recorded_spans`` (stored + buffered), like the CLI."""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, render_template, request

from scopeflow.engine import reads
from scopeflow.engine.reads import ChainRow
from scopeflow.ui import evidence_view, run_view
from scopeflow.ui.instances import load_instance
from scopeflow.ui.security import engine, requires

bp = Blueprint("trace", __name__)

HEAD = re.compile(r"[0-9a-f]{64}")
HEAD_IN_REPORT = re.compile(r"head[^0-9a-f\n]{0,40}([0-9a-f]{64})", re.IGNORECASE)

AUDITORS = ("auditor", "operator", "reviewer")   # a reviewer may read the trace of what they approve


@bp.route("/instances/<instance_id>/trace")
@requires(*AUDITORS)
def show(instance_id: str):
    row = load_instance(instance_id)
    sessions = engine().sessions
    rules_text = reads.evidence_rules(sessions, row.model_version_id)
    stored = reads.span_chain(sessions, row.id)   # one read of the span table for spans and integrity
    spans, chain = evidence_view.stored_trace(stored, row.id, engine().chain_key)
    xml = reads.diagram_xml(sessions, row.model_version_id)
    state = run_view.state_payload(row, reads.activity(sessions, row.id), reads.task_spans_of(spans))
    head_check, head_problem = _head_check(stored, row.id, request.args.get("head", ""))
    report, why = evidence_view.evidence(rules_text, spans, evidence_view.evidence_stage(row.status))
    return render_template("trace.html", row=row, rows=spans, traces=evidence_view.traces(spans),
                           report=report, evidence_problem=why, chain=chain, xml=xml, state=state,
                           details=evidence_view.span_details(spans), head_check=head_check,
                           head_problem=head_problem, delivery_head=_delivery_head(row.id))


def _head_check(chain: list[ChainRow], instance_id: str, head: str):
    """(HeadCheck, '') for a well-formed head, (None, why) for a malformed one, (None, '') for none."""
    head = head.strip().lower()
    if not head:
        return None, ""
    if not HEAD.fullmatch(head):
        return None, "a chain head is 64 hexadecimal characters (sha256), as DELIVERY.md prints it"
    return evidence_view.check_head(chain, instance_id, head, engine().chain_key), ""


def _delivery_head(instance_id: str) -> str:
    """The chain head the instance's report quotes, to check with one click ('' when none)."""
    found = run_view.report(engine().workspace(instance_id))
    match = HEAD_IN_REPORT.search(found[1]) if found else None
    return match.group(1) if match else ""


def _json_download(data: object, name: str) -> Response:
    return Response(json.dumps(data, indent=2, default=str), mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.route("/instances/<instance_id>/trace/otlp.json")
@requires(*AUDITORS)
def otlp(instance_id: str):
    load_instance(instance_id)
    document = evidence_view.otlp_document(engine().recorded_spans(instance_id))
    return _json_download(document, f"trace-{instance_id}.otlp.json")


@bp.route("/instances/<instance_id>/evidence.json")
@requires(*AUDITORS)
def evidence_json(instance_id: str):
    payload = evidence_view.evidence_payload(engine(), load_instance(instance_id))
    return _json_download(payload, f"evidence-{instance_id}.json")
