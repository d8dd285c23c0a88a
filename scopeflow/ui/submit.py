"""The submit page: a scope in, a delivery instance out (submitter role)."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from scopeflow.ui import submission
from scopeflow.ui.security import engine, requires

bp = Blueprint("submit", __name__)


@bp.route("/submit", methods=["GET", "POST"])
@requires("submitter")
def form():
    options = submission.start_options(engine())
    if request.method == "GET":
        return render_template("submit.html", options=options, values={}, errors={})
    upload = request.files.get("scope_file")
    scope = upload.read() if upload and upload.filename else request.form.get("scope", "")
    raw = {name: request.form.get(name, "") for name in options}
    result = submission.validate(request.form.get("title", ""), scope, raw, options)
    if result.errors:
        values = {"title": request.form.get("title", ""), "scope": request.form.get("scope", ""), **raw}
        return render_template("submit.html", options=options, values=values, errors=result.errors), 400
    instance_id = submission.start(engine(), result, current_user.name)
    return redirect(url_for("instances.show", instance_id=instance_id))


@bp.route("/submit/preview", methods=["POST"])
@requires("submitter")
def preview():
    """JSON the submit page's script renders (as text, never as HTML)."""
    return jsonify(submission.preview(request.form.get("scope", "")))
