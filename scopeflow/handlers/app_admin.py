"""The first account of a generated app that asks for login.

An app built with login refuses every page until someone signs in, so a deployed one needs an
account from the start. The deployer gives it one: ``admin`` with a random password kept in the
secret store (never in task data, spans or reports), passed to the app's first start through the
environment (``ADMIN_USERNAME``/``ADMIN_PASSWORD``; the app creates the account if it is missing).
``scopeflow submit`` shows the password once at the end; ``scopeflow secrets reveal NAME`` shows
it again (audited).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from scopeflow.handlers.context import TaskContext

ADMIN_USERNAME = "admin"
PASSWORD_BYTES = 15          # 20 URL-safe characters


def wants_admin(app: Path) -> bool:
    """Whether the built app has login (what was built decides, not what was asked for)."""
    return (app / "webapp" / "auth.py").is_file()


def admin_secret_name(instance_id: str) -> str:
    return "APP_ADMIN_PASSWORD_" + instance_id.replace("-", "")[:12].upper()


def admin_environment(ctx: TaskContext, app: Path) -> tuple[dict[str, str], dict[str, str] | None]:
    """(environment for the app's start, how to sign in) — both empty/None for an app without login.

    The password is made once per instance and reused by later deploys of the same instance."""
    if not wants_admin(app):
        return {}, None
    name = admin_secret_name(ctx.instance_id)
    if not ctx.secret_exists(name):
        ctx.set_secret(name, secrets.token_urlsafe(PASSWORD_BYTES))
    sign_in = {"username": ADMIN_USERNAME, "password_secret": name}
    return {"ADMIN_USERNAME": ADMIN_USERNAME, "ADMIN_PASSWORD": ctx.secret(name)}, sign_in
