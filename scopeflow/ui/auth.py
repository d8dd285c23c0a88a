"""Sign in, sign out, the start page and the API token page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from scopeflow.ui import accounts
from scopeflow.ui.security import engine, requires

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a local path: an absolute or scheme-relative URL would be an open redirect."""
    if not target:
        return url_for("auth.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("auth.home")
    return target


@bp.route("/")
@requires()
def home():
    """Each role lands where its work is: the inbox for people with tasks, else the instances."""
    if current_user.has_role("reviewer", "operator") and not current_user.has_role("admin"):
        return redirect(url_for("tasks.inbox"))
    if current_user.roles == ("designer",):
        return redirect(url_for("designer.index"))
    return redirect(url_for("instances.index"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = ""
    if request.method == "POST":
        try:
            account = accounts.authenticate(engine().sessions, request.form.get("name", ""),
                                            request.form.get("password", ""))
        except accounts.AccountError as exc:
            error = str(exc)
        else:
            session.clear()  # a fresh session on sign-in: nothing set before it survives (fixation)
            login_user(account)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error, name=request.form.get("name", "")), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@requires()
def account():
    """Shows the user's roles; POST issues a new API token, displayed once."""
    token = None
    if request.method == "POST":
        token = accounts.issue_api_token(engine().sessions, current_user.name)
        flash("A new API token was issued; the previous one no longer works.")
    return render_template("account.html", token=token)
