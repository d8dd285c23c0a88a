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
    from scopeflow.engine.accounts import user_count
    from scopeflow.ui.serve import serve

    if not user_count(app.engine.sessions):
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
    from scopeflow.engine.accounts import create_user

    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    account = create_user(app.engine.sessions, name, list(roles), password)
    click.echo(f"user {account.name} created with role(s) {', '.join(account.roles)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def users_list(app: App, as_json: bool) -> None:
    from scopeflow.engine.accounts import list_users

    rows = list_users(app.engine.sessions)
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["name", "roles", "active", "last_login_at"])


@users.command("token")
@click.argument("name")
@pass_app
def users_token(app: App, name: str) -> None:
    """Issue an API token for NAME (shown once; use it as `Authorization: Bearer <token>`)."""
    from scopeflow.engine.accounts import issue_api_token

    click.echo(issue_api_token(app.engine.sessions, name))


@users.command("lock")
@click.argument("name")
@pass_app
def users_lock(app: App, name: str) -> None:
    """Lock NAME until unlocked: sign-in refused, its sessions and API token stop working."""
    from scopeflow.engine.accounts import lock

    lock(app.engine.sessions, name)
    click.echo(f"user {name} locked; unlock with: {program()} users unlock {name}")


@users.command("unlock")
@click.argument("name")
@pass_app
def users_unlock(app: App, name: str) -> None:
    from scopeflow.engine.accounts import unlock

    unlock(app.engine.sessions, name)
    click.echo(f"user {name} unlocked")
