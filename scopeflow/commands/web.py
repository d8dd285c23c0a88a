"""``scopeflow serve`` and ``scopeflow users add|list|token|lock|unlock``: the web UI and its accounts."""

from __future__ import annotations

import click

from scopeflow.cli import App, SafeGroup, _print_json, _table, main, pass_app
from scopeflow.program import program


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@pass_app
def serve_cmd(app: App, host: str, port: int) -> None:
    """Serve the web UI and API (waitress) with an embedded worker advancing due instances."""
    from sqlalchemy import func, select

    from scopeflow.engine.models import User
    from scopeflow.ui.serve import serve

    with app.engine.sessions() as session:
        users = session.scalar(select(func.count()).select_from(User))
    if not users:
        click.echo("No users yet. Create the first admin with:\n"
                   f"  {program()} users add admin --role admin      (prompts for the password)")
    click.echo(f"Scopeflow UI on http://{host}:{port}  (Ctrl-C to stop)")
    serve(app.settings, host, port)


@main.group(cls=SafeGroup)
def users() -> None:
    """Web UI accounts (roles: submitter, operator, reviewer, designer, auditor, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="repeat for several roles")
@click.option("--password", help="omit to be prompted (keeps it out of shell history)")
@pass_app
def users_add(app: App, name: str, roles: tuple[str, ...], password: str | None) -> None:
    from scopeflow.ui.accounts import create_user

    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    account = create_user(app.engine.sessions, name, list(roles), password)
    click.echo(f"user {account.name} created with role(s) {', '.join(account.roles)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def users_list(app: App, as_json: bool) -> None:
    from sqlalchemy import select

    from scopeflow.engine.models import User

    with app.engine.sessions() as session:
        rows = [{"name": u.name, "roles": ",".join(u.roles or []), "active": u.active,
                 "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}
                for u in session.scalars(select(User).order_by(User.name))]
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["name", "roles", "active", "last_login_at"])


@users.command("token")
@click.argument("name")
@pass_app
def users_token(app: App, name: str) -> None:
    """Issue an API token for NAME (shown once; use it as `Authorization: Bearer <token>`)."""
    from scopeflow.ui.accounts import issue_api_token

    click.echo(issue_api_token(app.engine.sessions, name))


@users.command("lock")
@click.argument("name")
@pass_app
def users_lock(app: App, name: str) -> None:
    """Lock NAME until unlocked: sign-in refused, its sessions and API token stop working."""
    from scopeflow.ui.accounts import lock

    lock(app.engine.sessions, name)
    click.echo(f"user {name} locked; unlock with: {program()} users unlock {name}")


@users.command("unlock")
@click.argument("name")
@pass_app
def users_unlock(app: App, name: str) -> None:
    from scopeflow.ui.accounts import unlock

    unlock(app.engine.sessions, name)
    click.echo(f"user {name} unlocked")
