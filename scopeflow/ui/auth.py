"""Sign in, sign out, the start page and the API token page."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from scopeflow.engine import accounts
from scopeflow.ui.auth_throttle import LoginThrottle
from scopeflow.ui.security import engine, local_path, requires

bp = Blueprint("auth", __name__)


def throttle() -> LoginThrottle:
    """This app's sign-in throttle (one per app, so tests and servers do not share counts)."""
    return current_app.extensions.setdefault("scopeflow.login_throttle", LoginThrottle())


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
    error, code = "", 200
    client = request.remote_addr or "unknown"
    wait_s = throttle().retry_after(client) if request.method == "POST" else 0
    if wait_s:
        error, code = f"too many failed sign-ins from your address; try again in {-(-wait_s // 60)} minute(s)", 429
    elif request.method == "POST":
        try:
            account = accounts.authenticate(engine().sessions, request.form.get("name", ""),
                                            request.form.get("password", ""))
        except accounts.AccountError as exc:
            throttle().failed(client)
            error, code = str(exc), 401
        else:
            session.clear()  # a fresh session on sign-in: nothing set before it survives (fixation)
            login_user(account)
            return redirect(local_path(request.args.get("next"), url_for("auth.home")))
    response = render_template("login.html", error=error, name=request.form.get("name", "")), code
    return (*response, {"Retry-After": str(wait_s)}) if wait_s else response


@bp.route("/logout", methods=["POST"])
def logout():
    """Ends this session and every other cookie of the user: a copied cookie dies with it."""
    if current_user.is_authenticated:
        accounts.end_sessions(engine().sessions, current_user.id)
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
