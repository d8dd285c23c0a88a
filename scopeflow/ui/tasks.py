"""The inbox: open human tasks for my roles, claim/unclaim, and the task page with its form.

A task's lane decides its role (HumanTask.role): only an operator sees credential tasks, only a
reviewer completes a review (admin may do all). Completing goes through ``Engine.complete_task``,
which validates again and sends ``x-secret`` values straight to the secret store.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from scopeflow.engine import answers, human_tasks, reads
from scopeflow.engine.answers import unwrap
from scopeflow.engine.reads import InstanceRecord, TaskRecord
from scopeflow.engine.secrets import SecretError
from scopeflow.engine.service import EngineError, Forbidden, NotFound
from scopeflow.ui import evidence_view, ownership, review_view, schema_form
from scopeflow.ui.background import advance_later
from scopeflow.ui.security import engine, local_path, requires

bp = Blueprint("tasks", __name__)

WORKERS = ("submitter", "operator", "reviewer")


def my_roles() -> list[str] | None:
    """The roles whose tasks I see; None means every role (admin)."""
    return None if current_user.has_role("admin") else list(current_user.roles)


def load_task(task_id: str) -> TaskRecord:
    """The task, or 404; 403 unless my roles answer its lane and I may see its instance."""
    try:
        row = reads.task_record(engine().sessions, task_id)
    except NotFound:
        abort(404, f"unknown task {task_id}")
    if not current_user.has_role(row.role):
        abort(403, f"this task is for the {row.role} role (or admin); your roles: "
                   f"{', '.join(sorted(current_user.roles)) or 'none'}")
    ownership.check(row.instance_created_by)
    return row


@bp.route("/tasks")
@requires(*WORKERS)
def inbox():
    show = request.args.get("show", "open")
    tasks = reads.tasks(engine().sessions, status="completed" if show == "completed" else "open",
                        roles=my_roles(), limit=200, owner=ownership.owner_filter())
    if show == "mine":
        tasks = [t for t in tasks if t["assignee"] == current_user.name]
    elif show == "unassigned":
        tasks = [t for t in tasks if not t["assignee"]]
    ids = {t["instance_id"] for t in tasks}
    titles = reads.instance_titles(engine().sessions, ids)
    # Pending timers: while a human task waits, these are the boundary timers (SLA escalations such
    # as the credential SLA) that will take the decision away from people.
    escalations = reads.pending_timers(engine().sessions, ids)
    return render_template("inbox.html", tasks=tasks, titles=titles, show=show, escalations=escalations)


def _claim(task_id: str, release: bool) -> Any:
    load_task(task_id)
    try:
        human_tasks.claim(engine().sessions, task_id, current_user.name, release=release,
                          admin=current_user.has_role("admin"))
    except NotFound as exc:
        abort(404, str(exc))
    except EngineError as exc:
        flash(str(exc))
    return redirect(local_path(request.form.get("back"), url_for("tasks.show", task_id=task_id)))


@bp.route("/tasks/<task_id>/claim", methods=["POST"])
@requires(*WORKERS)
def claim(task_id: str):
    return _claim(task_id, release=False)


@bp.route("/tasks/<task_id>/unclaim", methods=["POST"])
@requires(*WORKERS)
def unclaim(task_id: str):
    return _claim(task_id, release=True)


def decision_context(data: dict[str, Any]) -> dict[str, Any]:
    """What a person needs to decide: spec summary, open questions, plan, check results, review."""
    plan = unwrap(data.get("plan"), "plan")
    verification = unwrap(data.get("verification"), "verification")
    review = unwrap(data.get("review"), "review")
    checks = verification.get("checks") if isinstance(verification.get("checks"), dict) else {}
    return {
        "spec": answers.spec_of(data),
        "questions": answers.questions_of(data),
        "plan_tasks": [t for t in plan.get("tasks") or [] if isinstance(t, dict)],
        "plan_notes": plan.get("notes") or [],
        "checks": {k: v for k, v in checks.items() if isinstance(v, int | float | str)},
        "review": review,
        "missing_credentials": answers.missing_credentials(data.get("error_payload")),
    }


def task_data(row: TaskRecord) -> dict[str, Any]:
    """The data the task was opened with ({} when the instance's state cannot be read)."""
    return reads.last_task_data(engine().sessions, row.instance_id, row.spiff_task_id)


def unanswered(row: TaskRecord, data: dict[str, Any]) -> dict[str, str]:
    """Field errors for an answer that would bring the run back to the same question (a "provide"
    without a value for a credential that is still not stored): what the API asks; the page asks
    ``answers.unanswered`` with the proposed names it has already read."""
    return answers.unanswered_task(engine().sessions, row, data, engine().secrets.has)


def _render(row: TaskRecord, instance: InstanceRecord, values: dict[str, Any], errors: dict[str, str],
            status: int = 200):
    data = task_data(row)
    context = decision_context(data)
    fields = schema_form.build_fields(row.form_schema or {}, values, answers.proposed_names(data))
    for item in fields:
        item.error = errors.get(item.name, "")
    reviewing = row.form == review_view.FINAL_REVIEW_FORM
    return render_template("task.html", task=row, instance=instance, fields=fields, context=context,
                           form_error=errors.get("(form)", ""),
                           final=review_view.final_review(data) if reviewing else None,
                           build=_build_panel(row) if reviewing else None,
                           evidence=_evidence(instance) if reviewing else None), status


def _build_panel(row: TaskRecord) -> review_view.BuildPanel:
    earlier = reads.earlier_task_ids(engine().sessions, row.instance_id, row.form, row.created_at)
    return review_view.build_panel(engine().settings.home, engine().workspace(row.instance_id), row.instance_id,
                                   row.id, earlier, request.args.get("file", ""))


def _evidence(instance: InstanceRecord):
    """(report, problem) of the rules due at the deploy gate, over the spans recorded so far."""
    rules_text = reads.evidence_rules(engine().sessions, instance.model_version_id)
    return evidence_view.evidence(rules_text, engine().recorded_spans(instance.id), "deploy")


@bp.route("/tasks/<task_id>", methods=["GET", "POST"])
@requires(*WORKERS)
def show(task_id: str):
    row = load_task(task_id)
    instance = reads.instance_record(engine().sessions, row.instance_id)
    if request.method == "GET":
        return _render(row, instance, {}, {})
    if row.status != "open":
        flash(f"task is already {row.status}")
        return redirect(url_for("instances.show", instance_id=row.instance_id))
    if row.assignee and row.assignee != current_user.name and not current_user.has_role("admin"):
        # Claimed while this person was filling in the form: say so on the task page (409), not a bare 403.
        return _render(row, instance, {}, {"(form)": f"{row.assignee} claimed this task while you were filling it in; "
                                                     "your answer was not submitted"}, 409)
    map_keys = answers.proposed_names(task_data(row))
    data, errors = schema_form.parse_form(row.form_schema or {}, request.form, map_keys)
    if not errors:
        errors = answers.unanswered(row.form_schema, data, map_keys, engine().secrets.has)
    if errors:
        return _render(row, instance, schema_form.safe_echo(row.form_schema or {}, data), errors, 400)
    try:
        status = engine().complete_task(row.id, data, actor=current_user.name, advance=False)
    except NotFound as exc:
        abort(404, str(exc))
    except Forbidden as exc:
        abort(403, str(exc))
    except (EngineError, SecretError) as exc:   # e.g. the secret store refused a value
        return _render(row, instance, schema_form.safe_echo(row.form_schema or {}, data),
                       {"(form)": f"refused, nothing was completed: {exc}"}, 400)
    if status == "running":
        advance_later(engine(), row.instance_id)
        flash(f"'{row.name}' completed; the instance continues (this page follows it live)")
    else:
        flash(f"'{row.name}' completed; the instance is now {status}")
    return redirect(url_for("instances.show", instance_id=row.instance_id))
