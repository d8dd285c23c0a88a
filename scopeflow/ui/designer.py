"""The designer's pages: models and versions, view, upload, edit in the modeler, diff, download."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from scopeflow.engine import reads
from scopeflow.engine.reads import StoredVersion, main_file
from scopeflow.engine.service import EngineError, NotFound
from scopeflow.processes.catalog import CatalogError, scan
from scopeflow.ui import model_diff, model_store
from scopeflow.ui.background import advance_later
from scopeflow.ui.security import engine, requires

bp = Blueprint("designer", __name__)


def load_version(name: str, number: int) -> StoredVersion:
    """The stored version, or 404."""
    try:
        return reads.model_version(engine().sessions, name, number)
    except NotFound:
        abort(404, f"unknown model version {name} v{number}")


@bp.route("/models")
@requires("designer")
def index():
    rows = reads.model_versions(engine().sessions, newest_first=True)
    try:
        on_disk = scan(engine().settings.models_dir).models
    except CatalogError:
        on_disk = []
    grouped: dict[str, list] = {}
    for row in rows:
        grouped.setdefault(row["name"], []).append(row)
    return render_template("models.html", grouped=grouped, undeployed=sorted(set(on_disk) - set(grouped)))


@bp.route("/models/<name>/<int:number>")
@requires("designer")
def show(name: str, number: int):
    row = load_version(name, number)
    others = reads.version_numbers(engine().sessions, name)
    path = main_file(row)
    return render_template("model.html", row=row, path=path, xml=row.files.get(path, ""), others=others,
                           newest=others[0] if others else row.version)


@bp.route("/models/<name>/<int:number>/files/<path:path>")
@requires("designer")
def download(name: str, number: int, path: str):
    row = load_version(name, number)
    if path not in row.files:
        abort(404, f"no file {path} in {name} v{number}")
    return Response(row.files[path], mimetype="application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename={path.rsplit('/', 1)[-1]}"})


@bp.route("/models/upload", methods=["GET", "POST"])
@requires("designer")
def upload():
    if request.method == "GET":
        return render_template("model_upload.html", result=None, xml="", lint_state={})
    upload = request.files.get("bpmn")
    if upload is None or not upload.filename:
        return render_template("model_upload.html", result=model_store.StoreResult(problem="choose a .bpmn file"),
                               xml="", lint_state={}), 400
    content = upload.read()
    result = model_store.store_upload(engine().sessions, engine().settings.models_dir, upload.filename, content)
    xml = content.decode("utf-8", errors="replace")
    lint_state = {"elements": {m.element: {"state": "error", "retries": 0}
                               for m in result.messages if m.element and m.level == "error"}}
    return render_template("model_upload.html", result=result, xml=xml, lint_state=lint_state), \
        (200 if result.ok else 400)


@bp.route("/models/<name>/<int:number>/edit")
@requires("designer")
def edit(name: str, number: int):
    row = load_version(name, number)
    path = main_file(row)
    return render_template("model_edit.html", row=row, path=path, xml=row.files.get(path, ""))


@bp.route("/models/<name>/<int:number>/save", methods=["POST"])
@requires("designer")
def save(name: str, number: int):
    """Lint the edited diagram; store a new version when clean. Answers JSON for the modeler script."""
    row = load_version(name, number)
    result = model_store.store_edit(engine().sessions, row, request.form.get("path", ""), request.form.get("xml", ""))
    payload = {"ok": result.ok, "problem": result.problem,
               "messages": [{"level": m.level, "element": m.element, "line": m.line, "text": str(m)}
                            for m in result.messages],
               "stored": [{"model": m, "version": v, "created": c,
                           "url": url_for("designer.show", name=m, number=v)} for m, v, c in result.stored]}
    return jsonify(payload), (200 if result.ok else 400)


@bp.route("/models/<name>/deploy", methods=["POST"])
@requires("designer")
def deploy(name: str):
    """Store the models directory's current files of ``name`` as a version (examples included)."""
    try:
        [deployed] = engine().deploy([name])
    except (CatalogError, EngineError, ValueError) as exc:
        flash(f"not deployed: {exc}")
        return redirect(url_for("designer.index"))
    flash(f"{name} v{deployed['version']} {'stored' if deployed['created'] else 'is already the stored version'}")
    return redirect(url_for("designer.show", name=name, number=deployed["version"]))


@bp.route("/models/<name>/<int:number>/start", methods=["POST"])
@requires("submitter")
def start(name: str, number: int):
    """Start an instance of the model's newest version (the one new instances run) with JSON data."""
    text = request.form.get("data", "").strip()
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        flash(f"not started: the data is not valid JSON ({exc.msg} at line {exc.lineno})")
        return redirect(url_for("designer.show", name=name, number=number))
    if not isinstance(data, dict):
        flash("not started: the data must be a JSON object")
        return redirect(url_for("designer.show", name=name, number=number))
    try:
        instance_id = engine().start(name, data, actor=current_user.name, advance=False)
    except (NotFound, EngineError) as exc:
        flash(f"not started: {exc}")
        return redirect(url_for("designer.show", name=name, number=number))
    advance_later(engine(), instance_id)
    return redirect(url_for("instances.show", instance_id=instance_id))


@bp.route("/models/<name>/diff")
@requires("designer")
def diff(name: str):
    a, b = request.args.get("a", type=int), request.args.get("b", type=int)
    if a is None or b is None:
        abort(400, "choose two versions (a and b)")
    old, new = load_version(name, a), load_version(name, b)
    path = main_file(new)
    old_path = main_file(old)
    try:
        changes = model_diff.diff_files(path, old.files.get(old_path, ""), new.files.get(path, ""))
    except model_diff.BpmnFileError as exc:
        abort(400, str(exc))
    files_changed = sorted(p for p in set(old.files) | set(new.files) if old.files.get(p) != new.files.get(p))
    state = {"elements": {c.element_id: {"state": "added" if c.change == "added" else "changed", "retries": 0}
                          for c in changes if c.change != "removed"}}
    return render_template("model_diff.html", name=name, old=old, new=new, changes=changes,
                           files_changed=files_changed, xml=new.files.get(path, ""), state=state)


@bp.route("/models/<name>/<int:number>/simulate", methods=["POST"])
@requires("designer")
def simulate_version(name: str, number: int):
    """Test-run this version in memory, as `scopeflow simulate` does; the result as plain text."""
    from scopeflow.engine.simulation import simulate
    from scopeflow.processes.catalog import catalog_from_files
    from scopeflow.processes.lint import grouped

    row = load_version(name, number)
    result = simulate(catalog_from_files(row.files), name)
    lines = grouped(result.lint) + [
        f"{span.name} <{span.attributes.get('scopeflow.bpmn.element.id', '')}> "
        f"{span.attributes.get('scopeflow.task.outcome', '')}" for span in result.spans
        if span.attributes.get("scopeflow.span.type") == "bpmn.task"]
    lines.append(f"simulation of {name} v{number}: {result.status} ({result.reason})")
    return Response("\n".join(lines) + "\n", mimetype="text/plain"), (200 if result.status == "completed" else 422)

