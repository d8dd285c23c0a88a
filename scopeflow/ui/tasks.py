"""The inbox: open human tasks for my roles, claim/unclaim, and the task page with its form.

A task's lane decides its role (HumanTask.role): only an operator sees credential tasks, only a
reviewer completes a review (admin may do all). Completing goes through ``Engine.complete_task``,
which validates again and sends ``x-secret`` values straight to the secret store.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from scopeflow.engine import reads
from scopeflow.engine.models import AuditEvent, HumanTask, Instance
from scopeflow.engine.secrets import SecretError
from scopeflow.engine.service import EngineError, Forbidden, NotFound
from scopeflow.ui import evidence_view, ownership, review_view, run_view, schema_form
from scopeflow.ui.background import advance_later
from scopeflow.ui.security import engine, local_path, requires

bp = Blueprint("tasks", __name__)

WORKERS = ("submitter", "operator", "reviewer")


def my_roles() -> list[str] | None:
    """The roles whose tasks I see; None means every role (admin)."""
    return None if current_user.has_role("admin") else list(current_user.roles)


def load_task(session, task_id: str) -> HumanTask:
    """The task, or 404; 403 unless my roles answer its lane and I may see its instance."""
    row = session.get(HumanTask, task_id)
    if row is None:
        abort(404, f"unknown task {task_id}")
    if not current_user.has_role(row.role):
        abort(403, f"this task is for the {row.role} role (or admin); your roles: "
                   f"{', '.join(sorted(current_user.roles)) or 'none'}")
    ownership.check(session.scalar(select(Instance.created_by).where(Instance.id == row.instance_id)) or "")
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


def _claim(task_id: str, assignee: str | None) -> Any:
    with engine().sessions.begin() as session:
        row = load_task(session, task_id)
        if row.status != "open":
            flash(f"task is {row.status}")
        elif assignee and row.assignee and row.assignee != assignee:
            flash(f"already claimed by {row.assignee}")
        elif not assignee and row.assignee not in (None, current_user.name) and not current_user.has_role("admin"):
            flash(f"only {row.assignee} or an admin can unclaim this task")
        else:
            row.assignee = assignee
            session.add(AuditEvent(actor=current_user.name, action="task.claim" if assignee else "task.unclaim",
                                   target=row.id, instance_id=row.instance_id))
    return redirect(local_path(request.form.get("back"), url_for("tasks.show", task_id=task_id)))


@bp.route("/tasks/<task_id>/claim", methods=["POST"])
@requires(*WORKERS)
def claim(task_id: str):
    return _claim(task_id, current_user.name)


@bp.route("/tasks/<task_id>/unclaim", methods=["POST"])
@requires(*WORKERS)
def unclaim(task_id: str):
    return _claim(task_id, None)


def decision_context(data: dict[str, Any]) -> dict[str, Any]:
    """What a person needs to decide: spec summary, open questions, plan, check results, review."""
    spec = run_view.unwrap(data.get("spec"), "spec")
    analysis = run_view.unwrap(data.get("analysis"), "analysis")
    plan = run_view.unwrap(data.get("plan"), "plan")
    verification = run_view.unwrap(data.get("verification"), "verification")
    review = run_view.unwrap(data.get("review"), "review")
    checks = verification.get("checks") if isinstance(verification.get("checks"), dict) else {}
    return {
        "spec": spec or run_view.unwrap(analysis.get("spec"), "spec"),
        "questions": [q for q in (spec.get("questions") or analysis.get("questions") or []) if isinstance(q, dict)],
        "plan_tasks": [t for t in plan.get("tasks") or [] if isinstance(t, dict)],
        "plan_notes": plan.get("notes") or [],
        "checks": {k: v for k, v in checks.items() if isinstance(v, int | float | str)},
        "review": review,
        "missing_credentials": _missing_credentials(data.get("error_payload")),
    }


def _missing_credentials(payload: Any) -> list[str]:
    """The credential names a configuration failure reported missing (its details' ``missing``)."""
    details = payload.get("details") if isinstance(payload, dict) else None
    missing = details.get("missing") if isinstance(details, dict) else None
    return [str(name) for name in missing] if isinstance(missing, list) else []


def _map_keys(context: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Row names to propose: question ids for answer maps, credential names for secret maps."""
    questions = {str(q.get("id")): str(q.get("default", "")) for q in context["questions"] if q.get("id")}
    credentials = {name: "" for name in context["missing_credentials"]} or \
        {name: "" for i in context["spec"].get("integrations") or [] if isinstance(i, dict)
         for name in i.get("credentials") or []}
    return {"answers": questions, "values": credentials}


def proposed_names(row: HumanTask, instance: Instance) -> dict[str, dict[str, str]]:
    """Row names a task's map fields propose (question ids, missing credential names)."""
    return _map_keys(decision_context(run_view.latest_data(instance, row.spiff_task_id)))


def unanswered(row: HumanTask, data: dict[str, Any], map_keys: dict[str, dict[str, str]]) -> dict[str, str]:
    """Field errors for an answer that would bring the run back to the same question (a "provide"
    without a value for a credential that is still not stored); the page and the API both ask."""
    schema = row.form_schema or {}
    return schema_form.unanswered_names(schema, schema_form.build_fields(schema, {}, map_keys), data,
                                        engine().secrets.has)


def _render(row: HumanTask, instance: Instance, values: dict[str, Any], errors: dict[str, str], status: int = 200):
    data = run_view.latest_data(instance, row.spiff_task_id)
    context = decision_context(data)
    fields = schema_form.build_fields(row.form_schema or {}, values, _map_keys(context))
    for item in fields:
        item.error = errors.get(item.name, "")
    reviewing = row.form == review_view.FINAL_REVIEW_FORM
    return render_template("task.html", task=row, instance=instance, fields=fields, context=context,
                           form_error=errors.get("(form)", ""),
                           final=review_view.final_review(data) if reviewing else None,
                           build=_build_panel(row) if reviewing else None,
                           evidence=_evidence(instance) if reviewing else None), status


def _build_panel(row: HumanTask) -> review_view.BuildPanel:
    earlier = reads.earlier_task_ids(engine().sessions, row.instance_id, row.form, row.created_at)
    return review_view.build_panel(engine().settings.home, engine().workspace(row.instance_id), row.instance_id,
                                   row.id, earlier, request.args.get("file", ""))


def _evidence(instance: Instance):
    """(report, problem) of the rules due at the deploy gate, over the spans recorded so far."""
    with engine().sessions() as session:
        rules_text = evidence_view.evidence_rules_text(session, instance)
    return evidence_view.evidence(rules_text, engine().recorded_spans(instance.id), "deploy")


@bp.route("/tasks/<task_id>", methods=["GET", "POST"])
@requires(*WORKERS)
def show(task_id: str):
    with engine().sessions() as session:
        row = load_task(session, task_id)
        instance = session.get(Instance, row.instance_id)
    if request.method == "GET":
        return _render(row, instance, {}, {})
    if row.status != "open":
        flash(f"task is already {row.status}")
        return redirect(url_for("instances.show", instance_id=row.instance_id))
    if row.assignee and row.assignee != current_user.name and not current_user.has_role("admin"):
        # Claimed while this person was filling in the form: say so on the task page (409), not a bare 403.
        return _render(row, instance, {}, {"(form)": f"{row.assignee} claimed this task while you were filling it in; "
                                                     "your answer was not submitted"}, 409)
    map_keys = proposed_names(row, instance)
    data, errors = schema_form.parse_form(row.form_schema or {}, request.form, map_keys)
    if not errors:
        errors = unanswered(row, data, map_keys)
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
