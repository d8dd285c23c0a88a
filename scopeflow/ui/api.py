"""The JSON API under ``/api/v1``: what the pages do, for scripts.

Authentication is the session cookie or ``Authorization: Bearer <token>``; role and ownership
checks are the pages' own. A request authenticated by cookie must carry the CSRF token
(``X-CSRFToken`` header) on POST; a bearer token cannot be sent by a browser on its own, so it
needs none — and a request that sends one is authenticated by it alone, never by its cookie.
Errors are ``{"error": "..."}`` with 400/401/403/404.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, abort, jsonify, request
from flask_login import current_user

from scopeflow.engine import reads
from scopeflow.engine.service import EngineError, Forbidden, NotFound
from scopeflow.ui import evidence_view, ownership, run_view, submission
from scopeflow.ui.background import advance_later
from scopeflow.ui.instances import STATUSES, VIEWERS, load_instance
from scopeflow.ui.openapi import document
from scopeflow.ui.security import engine, error_response, requires
from scopeflow.ui.tasks import WORKERS, load_task, my_roles, unanswered
from scopeflow.ui.trace import AUDITORS

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def csrf_for_cookie_sessions() -> None:
    """A request with a bearer header is authenticated by that token alone (the cookie is ignored,
    see ``ui._login_manager``), so only it may skip the CSRF check."""
    from scopeflow.ui import bearer_token, csrf

    if request.method in ("GET", "HEAD", "OPTIONS") or bearer_token() is not None:
        return
    csrf.protect()


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "the request body must be a JSON object")
    return body


@bp.route("/openapi.json")
def openapi():
    return jsonify(document())


@bp.route("/instances", methods=["GET"])
@requires(*VIEWERS)
def instances():
    status = request.args.get("status") or None
    if status and status not in STATUSES:
        abort(400, f"unknown status {status!r}")
    limit = min(max(request.args.get("limit", 50, type=int) or 50, 1), 500)
    offset = max(request.args.get("offset", 0, type=int) or 0, 0)
    rows, total = reads.instances_page(engine().sessions, status=status, model=request.args.get("model") or None,
                                       limit=limit, offset=offset, owner=ownership.owner_filter())
    return jsonify({"instances": rows, "total": total, "limit": limit, "offset": offset})


@bp.route("/instances", methods=["POST"])
@requires("submitter")
def submit():
    body = _json_body()
    options = submission.start_options(engine())
    scope, title, chosen = body.get("scope"), body.get("title", ""), body.get("options", {})
    if not isinstance(scope, str):
        abort(400, "scope must be a string")
    if not isinstance(title, str):
        abort(400, "title must be a string")
    if not isinstance(chosen, dict):
        abort(400, "options must be an object (option name → value)")
    result = submission.validate(title, scope, chosen, options)
    if result.errors:
        field, message = next(iter(result.errors.items()))
        return jsonify({"error": f"{field}: {message}", "fields": result.errors}), 400
    instance_id = submission.start(engine(), result, current_user.name)
    return instance(instance_id, 201)


@bp.route("/instances/<instance_id>")
@requires(*VIEWERS)
def instance(instance_id: str, code: int = 200):
    row = load_instance(instance_id)
    sessions = engine().sessions
    payload = reads.instance(sessions, row.id)
    states = run_view.element_states(reads.activity(sessions, row.id), row.incident, reads.task_spans(sessions, row.id))
    payload["elements"] = {k: asdict(v) for k, v in states.items()}
    payload["tasks"] = reads.tasks(sessions, status=None, instance_id=row.id)
    return jsonify(payload), code


@bp.route("/instances/<instance_id>/spans")
@requires(*AUDITORS)
def spans(instance_id: str):
    load_instance(instance_id)
    records = engine().recorded_spans(instance_id)
    return jsonify({"instance_id": instance_id, "spans": [asdict(s) for s in records]})


@bp.route("/instances/<instance_id>/evidence")
@requires(*AUDITORS)
def evidence(instance_id: str):
    return jsonify(evidence_view.evidence_payload(engine(), load_instance(instance_id)))


@bp.route("/tasks")
@requires(*WORKERS)
def tasks():
    status = request.args.get("status", "open")
    if status not in ("open", "completed", "cancelled"):
        abort(400, f"unknown task status {status!r}")
    rows = reads.tasks(engine().sessions, status=status, roles=my_roles(),
                       instance_id=request.args.get("instance") or None, limit=200, owner=ownership.owner_filter())
    return jsonify({"tasks": rows})




@bp.route("/tasks/<task_id>")
@requires(*WORKERS)
def task(task_id: str):
    load_task(task_id)
    return jsonify(reads.task(engine().sessions, task_id))


@bp.route("/tasks/<task_id>/complete", methods=["POST"])
@requires(*WORKERS)
def complete(task_id: str):
    body = _json_body()
    row = load_task(task_id)
    assignee, instance_id = row.assignee, row.instance_id
    if assignee and assignee != current_user.name and not current_user.has_role("admin"):
        abort(403, f"claimed by {assignee}")
    data = body.get("data", {})
    problems = unanswered(row, data) if isinstance(data, dict) else {}
    if problems:
        return jsonify({"error": "; ".join(f"{k}: {v}" for k, v in problems.items()), "fields": problems}), 400
    try:
        status = engine().complete_task(task_id, data, actor=current_user.name, advance=False)
        if status == "running":  # the rest runs in the background; poll the instance
            advance_later(engine(), instance_id)
    except NotFound as exc:
        abort(404, str(exc))
    except Forbidden as exc:
        return error_response(403, str(exc))
    except EngineError as exc:
        return error_response(400, str(exc))
    return jsonify({"task_id": task_id, "instance_id": instance_id, "instance_status": status})


@bp.route("/models")
@requires("designer")
def models():
    return jsonify({"models": [{"name": r["name"], "version": r["version"], "hash": r["content_hash"],
                                "created_at": r["created_at"].isoformat()} for r in reads.model_versions(engine().sessions)]})
