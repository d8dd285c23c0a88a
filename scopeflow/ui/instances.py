"""Instance list and instance page: diagram coloured by task state, timeline, human tasks, files,
report, and the operator actions (retry an incident with edited data, cancel)."""

from __future__ import annotations

import json
from dataclasses import asdict

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from scopeflow.engine import reads
from scopeflow.engine.answers import unwrap
from scopeflow.engine.incidents import caused_by_model
from scopeflow.engine.models import BLOCKED, CANCELLED, ERROR, FINAL_STATUSES
from scopeflow.engine.reads import InstanceRecord
from scopeflow.engine.service import EngineError, NotFound
from scopeflow.engine.statuses import INSTANCE_STATUSES
from scopeflow.handlers.failures import resumable
from scopeflow.ui import ownership, run_view, workspace_files
from scopeflow.ui.security import engine, requires

bp = Blueprint("instances", __name__)

VIEWERS = ("submitter", "operator", "reviewer", "auditor")
PAGE_SIZE = 50
STATUSES = INSTANCE_STATUSES        # the statuses a list may be filtered by


def load_instance(instance_id: str) -> InstanceRecord:
    """The instance, or 404; 403 when it is another submitter's (every instance view loads it here)."""
    try:
        row = reads.instance_record(engine().sessions, instance_id)
    except NotFound:
        abort(404, f"unknown instance {instance_id}")
    ownership.check(row.created_by)
    return row


@bp.route("/instances")
@requires(*VIEWERS)
def index():
    status = request.args.get("status") or None
    model = request.args.get("model") or None
    if status and status not in STATUSES:
        abort(400, f"unknown status {status!r}")
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows, total = reads.instances_page(engine().sessions, status=status, model=model, limit=PAGE_SIZE,
                                       offset=(page - 1) * PAGE_SIZE, owner=ownership.owner_filter())
    models = reads.deployed_models(engine().sessions)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return render_template("instances.html", rows=rows, total=total, page=page, pages=pages,
                           progress_text=run_view.progress_text,
                           status=status or "", model=model or "", statuses=STATUSES, models=models)


@bp.route("/instances/<instance_id>")
@requires(*VIEWERS)
def show(instance_id: str):
    row = load_instance(instance_id)
    sessions = engine().sessions
    xml = reads.diagram_xml(sessions, row.model_version_id)
    spans = reads.task_spans(sessions, row.id)
    steps = run_view.timeline(spans)
    tasks = reads.tasks(sessions, status=None, instance_id=row.id)
    state = run_view.state_payload(row, reads.activity(sessions, row.id), spans)
    ended_by = reads.cancelled_by(sessions, row.id) if row.status == CANCELLED else None
    data = reads.last_task_data(sessions, row.id)
    workspace = engine().workspace(row.id)
    retryable, not_resumable = _resumability(row, data)
    return render_template(
        "instance.html", row=row, xml=xml, steps=steps, tasks=tasks, state=state,
        release=unwrap(data.get("release"), "release"), report=run_view.report(workspace),
        files=workspace_files.listing(workspace), retryable=retryable, not_resumable=not_resumable,
        cancellable=row.status not in FINAL_STATUSES, ended_by=ended_by,
    )


def _resumability(row: InstanceRecord, data: dict) -> tuple[bool, str]:
    """(offer Retry?, why not) — the same rule as ``Engine.retry``: a blocked run resumes only when a
    failure of the taxonomy stopped it, never after a decision or a verdict."""
    if row.status == ERROR:
        if row.incident and caused_by_model(row.incident):
            where = row.incident.get("bpmn_id") or "?"
            return False, (f"The model is wrong at {where}: a retry would run the same model again. Fix the "
                           f"diagram (the designer lints it), then start a new instance of {row.model_name}.")
        return True, ""
    if row.status != BLOCKED:
        return False, ""
    blocker = data.get("blocker") if isinstance(data.get("blocker"), dict) else {}
    kind = str(blocker.get("kind") or "unknown")
    if resumable(kind):
        return True, ""
    return False, (f"This run stopped on a blocker of kind {kind} ({blocker.get('message', 'see BLOCKERS.md')}) "
                   "and cannot be resumed: running the same steps again would decide the same. Edit the scope "
                   "(saved as submitted in the workspace's SCOPE.md) and submit it again.")


@bp.route("/code.css")
def code_css():
    """The syntax-highlighting styles (Pygments' own), as a same-origin stylesheet the CSP allows."""
    from flask import Response

    from scopeflow.ui.code_view import highlight_css

    return Response(highlight_css(), mimetype="text/css", headers={"Cache-Control": "max-age=3600"})


@bp.route("/instances/<instance_id>/state.json")
@requires(*VIEWERS)
def state(instance_id: str):
    row = load_instance(instance_id)
    spans = reads.task_spans(engine().sessions, row.id)
    payload = run_view.state_payload(row, reads.activity(engine().sessions, row.id), spans)
    payload["timeline"] = [asdict(s) for s in run_view.timeline(spans)]
    return jsonify(payload)


@bp.route("/instances/<instance_id>/workspace.zip")
@requires(*VIEWERS)
def download_workspace(instance_id: str):
    load_instance(instance_id)
    archive = workspace_files.zip_workspace(engine().workspace(instance_id))
    return send_file(archive, mimetype="application/zip", as_attachment=True,
                     download_name=f"scopeflow-{instance_id}.zip")


@bp.route("/instances/<instance_id>/files")
@requires(*VIEWERS)
def files(instance_id: str):
    """The workspace as a tree, with the chosen file highlighted in the page (read, not downloaded)."""
    from scopeflow.ui import code_view

    row = load_instance(instance_id)
    workspace = engine().workspace(instance_id)
    listing = [(p, s) for p, s in workspace_files.listing(workspace) if code_view.reviewable(p)]
    selected = request.args.get("file", "")
    code, problem = code_view.shown_file(workspace, selected, "this workspace") if selected else (None, "")
    return render_template("files.html", row=row, tree=code_view.file_tree(listing), count=len(listing),
                           selected=selected, code=code, problem=problem)


@bp.route("/instances/<instance_id>/files/<path:relative>")
@requires(*VIEWERS)
def download_file(instance_id: str, relative: str):
    load_instance(instance_id)
    try:
        path = workspace_files.confined(engine().workspace(instance_id), relative)
    except workspace_files.OutsideWorkspace as exc:
        abort(404, str(exc))
    # Always an attachment of plain bytes: generated HTML must never render in our origin.
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=path.name)


def _operator_action(instance_id: str, action):
    try:
        status = action()
    except NotFound as exc:
        abort(404, str(exc))
    except EngineError as exc:
        flash(f"refused: {exc}")
    else:
        flash(f"instance is now {status}")
    return redirect(url_for("instances.show", instance_id=instance_id))


@bp.route("/instances/<instance_id>/retry", methods=["POST"])
@requires("operator")
def retry(instance_id: str):
    text = request.form.get("data", "").strip()
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        flash(f"refused: data is not valid JSON ({exc.msg} at line {exc.lineno})")
        return redirect(url_for("instances.show", instance_id=instance_id))
    if not isinstance(data, dict):
        flash("refused: data must be a JSON object")
        return redirect(url_for("instances.show", instance_id=instance_id))
    return _operator_action(instance_id, lambda: engine().retry(instance_id, data, actor=current_user.name))


@bp.route("/instances/<instance_id>/cancel", methods=["POST"])
@requires("operator")
def cancel(instance_id: str):
    if request.form.get("confirm") != "yes":
        flash("not cancelled: tick the box to confirm that this run should stop for good")
        return redirect(url_for("instances.show", instance_id=instance_id))
    return _operator_action(instance_id, lambda: engine().cancel(instance_id, actor=current_user.name))
