"""``scopeflow releases list|stop ID|stop --all``: the local deployer's running apps."""

from __future__ import annotations

import click

from scopeflow.cli import App, Fail, SafeGroup, _print_json, _table, main, pass_app


@main.group(cls=SafeGroup)
def releases() -> None:
    """Releases started by the local deployer."""


def _rows(items) -> list[dict]:
    return [{"id": r.id, "instance_id": r.instance_id, "status": r.status, "url": r.url, "pid": r.pid,
             "started_at": r.started_at} for r in items]


@releases.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def releases_list(app: App, as_json: bool) -> None:
    from scopeflow.handlers.release import list_releases

    rows = _rows(list_releases(app.settings.releases_dir))
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["id", "instance_id", "status", "url", "pid", "started_at"])


@releases.command("stop")
@click.argument("release_id", required=False)
@click.option("--all", "stop_every", is_flag=True, help="stop every running release")
@pass_app
def releases_stop(app: App, release_id: str | None, stop_every: bool) -> None:
    from scopeflow.handlers.release import stop_all, stop_release

    if stop_every == bool(release_id):
        raise Fail("give a release id or --all (not both)")
    if stop_every:
        stopped = stop_all(app.settings.releases_dir)
        click.echo(f"stopped {len(stopped)} release(s)")
        return
    try:
        release = stop_release(app.settings.releases_dir, release_id)
    except KeyError as exc:
        raise Fail(str(exc).strip("'\"")) from None
    click.echo(f"release {release.id}: {release.status}")
