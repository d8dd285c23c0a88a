"""The ``scopeflow`` command line: ``scopeflow <noun> <verb>``.

Exit codes: 0 ok, 1 the operation failed (e.g. evidence does not hold, an instance ended in error),
2 bad input; ``submit`` also exits 3 when the run ended blocked (a blocker plan was written) and 4
when it waits for a person. Errors are one line on stderr — never a traceback. Output cut short by
its reader (``| head -1``) ends quietly.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from scopeflow.config import Settings, load_settings
from scopeflow.engine.incidents import caused_by_model
from scopeflow.engine.statuses import INSTANCE_STATUSES
from scopeflow.program import program

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BLOCKED = 3    # submit: the run ended on the blocker path (a plan was written)
EXIT_WAITING = 4    # submit: the run waits for a person (answer the task and it goes on)
SUBMIT_EXIT = {"completed": EXIT_OK, "blocked": EXIT_BLOCKED, "waiting": EXIT_WAITING}


class Fail(click.ClickException):
    """A one-line failure with an exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class App:
    """What commands share: settings and a lazily created engine."""

    def __init__(self, settings: Settings):
        from scopeflow.handlers import registry

        registry.load_modules(settings.operator_modules)   # `models lint` checks against them too
        self.settings = settings
        self.home_existed = settings.home.exists()

    def discard_fresh_home(self) -> None:
        """After a command that refused its input: remove the home it created (the store and keys
        opened on the way), so a mistyped command leaves no ``.scopeflow/`` behind."""
        from scopeflow.config import remove_unused_home
        from scopeflow.engine.db import dispose_all

        if not self.home_existed:
            dispose_all()
            remove_unused_home(self.settings.home)

    @cached_property
    def engine(self):
        from scopeflow.engine.service import Engine

        return Engine(self.settings)


class SafeGroup(click.Group):
    """Turns every exception into a one-line error with the right exit code."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise Fail(_usage_line(exc)) from None

    def invoke(self, ctx: click.Context) -> Any:
        from scopeflow.engine.db import StoreError
        from scopeflow.engine.secrets import SecretError
        from scopeflow.engine.service import EngineError
        from scopeflow.processes.catalog import CatalogError

        try:
            result = super().invoke(ctx)
            sys.stdout.flush()   # here, not at exit: a closed pipe (`| head -1`) is handled below
            return result
        except BrokenPipeError:
            _quiet_closed_stdout()
            raise click.exceptions.Exit(EXIT_OK) from None
        except click.UsageError as exc:
            raise Fail(_usage_line(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except EngineError as exc:
            raise Fail(str(exc), exc.code) from None
        except (CatalogError, SecretError, ValueError) as exc:
            raise Fail(_one_line(exc)) from None
        except StoreError as exc:
            raise Fail(_one_line(exc), EXIT_FAILED) from None
        except KeyboardInterrupt:
            raise Fail("interrupted", EXIT_FAILED) from None
        except Exception as exc:
            raise Fail(f"{type(exc).__name__}: {_one_line(exc)}", EXIT_FAILED) from None


def _quiet_closed_stdout() -> None:
    """The reader went away (``| head``): nothing more to say, and nothing to complain about at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _usage_line(exc: click.UsageError) -> str:
    """Click's three-line usage error as one line that names the help to read."""
    words = exc.ctx.command_path.split()[1:] if exc.ctx is not None else []
    return f"{exc.format_message().strip().splitlines()[0]} (see: {' '.join([program(), *words, '--help'])})"


def _names_a_file(model: str) -> bool:
    """A MODEL argument given as a path to a diagram rather than a process id."""
    return model.endswith(".bpmn") or os.sep in model


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _json_arg(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise Fail(f"{what}: no such file {path}")
        text = path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Fail(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise Fail(f"{what} must be a JSON object")
    return value


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "")) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(str(row.get(c) if row.get(c) is not None else "").ljust(widths[c]) for c in columns))


pass_app = click.make_pass_decorator(App)


class RootGroup(SafeGroup):
    """``scopeflow`` itself: a refused command (exit 2) leaves no home it created behind."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if exc.exit_code == EXIT_BAD_INPUT and isinstance(ctx.obj, App):
                ctx.obj.discard_fresh_home()
            raise


@click.group(cls=RootGroup)
@click.version_option(package_name="scopeflow")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Scopeflow: BPMN-driven delivery of software scopes, with spans as evidence."""
    ctx.obj = App(load_settings())


# ------------------------------------------------------------------------------ models
@main.group(cls=SafeGroup)
def models() -> None:
    """The model catalog: lint, deploy and list BPMN models."""


@models.command("lint")
@click.option("--json", "as_json", is_flag=True)
@click.argument("model", required=False)
@pass_app
def models_lint(app: App, model: str | None, as_json: bool) -> None:
    """Lint every model (or one, by process id or .bpmn file path); exit 1 when there are errors."""
    from scopeflow.processes.catalog import scan, scan_around
    from scopeflow.processes.lint import errors, grouped, lint_catalog

    if model and _names_a_file(model):
        catalog, defined = scan_around(Path(model))
        messages = lint_catalog(catalog, defined, executable_only=False) if defined else \
            [m for m in lint_catalog(catalog) if m.file == Path(model).name]
        count = max(len(defined), 1)
    else:
        catalog = scan(app.settings.models_dir)
        messages = lint_catalog(catalog, [model] if model else None)
        count = 1 if model else len(catalog.models)
    if as_json:
        _print_json([m.__dict__ for m in messages])
    else:
        for line in grouped(messages):
            click.echo(line)
        click.echo(f"{count} model(s), {len(errors(messages))} error(s), "
                   f"{len(messages) - len(errors(messages))} warning(s)")
    if errors(messages):
        sys.exit(EXIT_FAILED)


@models.command("deploy")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def models_deploy(app: App, names: tuple[str, ...], as_json: bool) -> None:
    """Store a new version of each changed model (all by default)."""
    results = app.engine.deploy(list(names) or None)
    if not results:
        raise Fail(f"nothing to deploy: no executable process in {app.settings.models_dir} "
                   "(a process with isExecutable=\"false\" is not deployed; `scopeflow models lint` names them)",
                   EXIT_FAILED)
    if as_json:
        _print_json(results)
        return
    for r in results:
        click.echo(f"{r['model']}: version {r['version']} ({'new' if r['created'] else 'unchanged'})")


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def models_list(app: App, as_json: bool) -> None:
    """Models in the models directory with their newest deployed version."""
    from scopeflow.engine import reads
    from scopeflow.processes.catalog import scan

    catalog = scan(app.settings.models_dir)
    deployed = reads.latest_versions(app.engine.sessions, catalog.models)
    rows = []
    for name in catalog.models:
        info = catalog.process(name)
        rows.append({"model": name, "name": info.name, "file": info.file, "deployed_version": deployed[name]})
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["model", "name", "file", "deployed_version"])


# ------------------------------------------------------------------------------ instances
@main.command("start")
@click.argument("model")
@click.option("--data", help="start data as JSON (or @file.json)")
@click.option("--title", default="")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def start(app: App, model: str, data: str | None, title: str, as_json: bool) -> None:
    """Start MODEL and advance it until it waits or ends."""
    from scopeflow.engine import reads

    instance_id = app.engine.start(model, _json_arg(data, "--data"), title=title, actor="cli")
    summary = reads.instance(app.engine.sessions, instance_id, open_tasks=True)
    if as_json:
        _print_json(summary)
    else:
        _describe(summary)
    if summary["status"] == "error":
        sys.exit(EXIT_FAILED)


def _describe(summary: dict[str, Any]) -> None:
    click.echo(f"instance {summary['id']}: {summary['status']} ({summary['model']} v{summary['version']})")
    if summary.get("incident"):
        incident = summary["incident"]
        click.echo(f"  incident at {incident.get('bpmn_id')}: {incident['message']}")
        if caused_by_model(incident):
            click.echo(f"  the model is wrong at {incident.get('bpmn_id')}: fix the diagram ({program()} models lint), "
                       f"then start a new instance of {summary['model']}")
        else:
            click.echo(f"  fix the cause, then: {program()} instances retry {summary['id']}"
                       "   (--data JSON sets data on the failed task first)")
    for task in summary.get("tasks", []):
        click.echo(f"  waiting for {task['role']}: {task['name']} — {program()} tasks show {task['id']}")
    if summary.get("wake_at"):
        click.echo(f"  next timer due {summary['wake_at']} (run `{program()} worker` to fire it)")


@main.group(cls=SafeGroup)
def instances() -> None:
    """List, inspect, retry and cancel process instances."""


@instances.command("list")
@click.option("--status", type=click.Choice(INSTANCE_STATUSES))
@click.option("--model")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def instances_list(app: App, status: str | None, model: str | None, limit: int, as_json: bool) -> None:
    from scopeflow.engine import reads

    rows, total = reads.instances_page(app.engine.sessions, status=status, model=model, limit=limit)
    if as_json:
        _print_json({"instances": rows, "total": total})
    else:
        _table(rows, ["id", "model", "status", "progress", "mode", "created_at"])


def _load_instance(app: App, instance_id: str) -> dict[str, Any]:
    """The instance's summary (``reads.instance``); an unknown id is a one-line error."""
    from scopeflow.engine import reads
    from scopeflow.engine.service import NotFound

    try:
        return reads.instance(app.engine.sessions, instance_id)
    except NotFound as exc:
        raise Fail(str(exc)) from None


@instances.command("show")
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def instances_show(app: App, instance_id: str, as_json: bool) -> None:
    from scopeflow.engine import reads

    summary = reads.instance_detail(app.engine.sessions, instance_id)
    summary["workspace"] = str(app.engine.workspace(instance_id))
    summary["data"] = app.engine.instance_data(instance_id)
    if as_json:
        _print_json(summary)
        return
    _describe({**summary, "tasks": [t for t in summary["tasks"] if t["status"] == "open"]})
    click.echo(f"  workspace: {summary['workspace']}")
    for line in _outcome_lines(summary["outcome"] or {}, Path(summary["workspace"])):
        click.echo(line)
    for event in summary["audit"]:
        click.echo(f"  {event['at']}  {event['actor']}  {event['action']}  {event['target']}")


def _outcome_lines(outcome: dict[str, Any], workspace: Path) -> list[str]:
    """Where a finished run's report is and where its release runs."""
    lines = []
    report = outcome.get("report")
    report = report.get("report", report) if isinstance(report, dict) else None
    if isinstance(report, dict) and report.get("path"):
        lines.append(f"  report: {workspace / str(report['path'])}")
    release = outcome.get("release")
    release = release.get("release", release) if isinstance(release, dict) else None
    if isinstance(release, dict) and release.get("url"):
        lines.append(f"  release: {release['url']} (stop with: {program()} releases stop {release.get('id')})")
    return lines


@instances.command("retry")
@click.argument("instance_id")
@click.option("--data", help="data to set on the failed task before it runs again (JSON)")
@pass_app
def instances_retry(app: App, instance_id: str, data: str | None) -> None:
    from scopeflow.engine import reads

    status = app.engine.retry(instance_id, _json_arg(data, "--data"), actor="cli")
    click.echo(f"instance {instance_id}: {status}")
    for task in reads.tasks(app.engine.sessions, instance_id=instance_id):
        click.echo(f"  waiting for {task['role']}: {task['name']} — {program()} tasks show {task['id']}")
    if status == "error":
        sys.exit(EXIT_FAILED)


@instances.command("cancel")
@click.argument("instance_id")
@pass_app
def instances_cancel(app: App, instance_id: str) -> None:
    status = app.engine.cancel(instance_id, actor="cli")
    click.echo(f"instance {instance_id}: {status}")


# ------------------------------------------------------------------------------ tasks
@main.group(cls=SafeGroup)
def tasks() -> None:
    """Human tasks: list, show, complete."""


@tasks.command("list")
@click.option("--instance", "instance_id")
@click.option("--role", "roles", multiple=True)
@click.option("--all", "show_all", is_flag=True, help="include completed and cancelled tasks")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tasks_list(app: App, instance_id: str | None, roles: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    from scopeflow.engine import reads

    rows = reads.tasks(app.engine.sessions, status=None if show_all else "open", instance_id=instance_id,
                       roles=list(roles) or None)
    from scopeflow.ui.sla import due_words, sla_state

    for row in rows:
        open_with_due = row["due_at"] and row["status"] == "open"
        row["sla"] = f"{sla_state(row['due_at'])}, {due_words(row['due_at'])}" if open_with_due else ""
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["id", "instance_id", "name", "role", "status", "due_at", "sla"])


@tasks.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tasks_show(app: App, task_id: str, as_json: bool) -> None:
    from scopeflow.engine import reads

    detail = reads.task(app.engine.sessions, task_id)
    if as_json:
        _print_json(detail)
        return
    click.echo(f"{detail['name']} ({detail['status']}, role {detail['role']}, instance {detail['instance_id']})")
    if detail["instructions"]:
        click.echo(detail["instructions"])
    for name, prop in (detail["form_schema"].get("properties") or {}).items():
        required = name in (detail["form_schema"].get("required") or [])
        default = f" default {json.dumps(prop['default'])}" if "default" in prop else ""
        options = f" one of {prop['enum']}" if "enum" in prop else ""
        click.echo(f"  {name}{' (required)' if required else ''}: {prop.get('title', '')}{options}{default}")
    for line in _how_to_complete(app, task_id, detail["role"]):
        click.echo(line)


def _how_to_complete(app: App, task_id: str, role: str) -> list[str]:
    """Commands that complete the task as printed: as an account the engine accepts for its role
    (made first if none)."""
    from scopeflow.engine import reads

    names = reads.accounts_for(app.engine.sessions, role)
    lines = []
    if not names:
        lines.append(f"no account holds the role {role} yet; create one with: {program()} users add {role} --role {role}")
    lines.append(f"complete with (omitted fields take their defaults): "
                 f"{program()} tasks complete {task_id} --as {names[0] if names else role} --data '{{}}'")
    return lines


@tasks.command("complete")
@click.argument("task_id")
@click.option("--data", help="the form data as JSON (or @file.json); omitted fields take their defaults")
@click.option("--as", "actor", required=True, help="the account that decides (it must hold the task's role)")
@pass_app
def tasks_complete(app: App, task_id: str, data: str | None, actor: str) -> None:
    """Complete the task as ACTOR; refused, as on the task page, when the answer would bring the run
    back to the same question (a credential "provide" without a value for a missing credential)."""
    from scopeflow.engine import answers, reads

    answer = _json_arg(data, "--data")
    task = reads.task_record(app.engine.sessions, task_id)
    problems = answers.unanswered_task(app.engine.sessions, task, answer, app.engine.secrets.has) \
        if task.status == "open" else {}   # a closed task: complete_task says so
    if problems:
        raise Fail("; ".join(f"{field}: {problem}" for field, problem in problems.items()))
    status = app.engine.complete_task(task_id, answer, actor=actor)
    click.echo(f"task {task_id} completed; instance is {status}")


# ------------------------------------------------------------------------------ messages
@main.group(cls=SafeGroup)
def messages() -> None:
    """Deliver messages to waiting instances."""


@messages.command("send")
@click.argument("name")
@click.option("--key", "correlation_key", help="correlation key the waiting instance must match")
@click.option("--data", help="message payload as JSON")
@pass_app
def messages_send(app: App, name: str, correlation_key: str | None, data: str | None) -> None:
    delivered = app.engine.send_message(name, _json_arg(data, "--data"), correlation_key=correlation_key)
    if not delivered:
        raise Fail(f"no instance is waiting for message {name!r}"
                   + (f" with key {correlation_key!r}" if correlation_key else ""), EXIT_FAILED)
    for instance_id in delivered:
        click.echo(f"delivered to {instance_id}")


# ------------------------------------------------------------------------------ worker
@main.command("worker")
@click.option("--once", is_flag=True, help="advance what is due now, then exit")
@click.option("--concurrency", default=4, show_default=True, help="threads (or Celery processes) advancing instances")
@click.option("--interval", default=1.0, show_default=True, help="seconds between polls when idle")
@pass_app
def worker(app: App, once: bool, concurrency: int, interval: float) -> None:
    """Advance due instances and fire due timers: Celery when SCOPEFLOW_BROKER_URL is set,
    embedded threads otherwise (--once always runs embedded)."""
    from scopeflow.engine.workers import run_worker

    tally = run_worker(app.settings, concurrency, once, poll_s=interval,
                       report=lambda instance_id, status: click.echo(f"{instance_id}: {status}"))
    if tally is not None and tally.failed:
        sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------------------ secrets
@main.group(cls=SafeGroup)
def secrets() -> None:
    """The encrypted secret store (values are never printed)."""


@secrets.command("set")
@click.argument("name")
@click.option("--value", help="the value (omit to read it from stdin, keeping it out of shell history)")
@pass_app
def secrets_set(app: App, name: str, value: str | None) -> None:
    if value is None:
        value = click.get_text_stream("stdin").read().rstrip("\n")
    app.engine.secrets.set(name, value, actor="cli")
    click.echo(f"secret {name} stored")


@secrets.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def secrets_list(app: App, as_json: bool) -> None:
    rows = app.engine.secrets.names()
    if as_json:
        _print_json(rows)
    else:
        _table(rows, ["name", "updated_at", "updated_by"])


@secrets.command("reveal")
@click.argument("name")
@pass_app
def secrets_reveal(app: App, name: str) -> None:
    """Print one secret's value (e.g. a generated app's admin password); the read is audited."""
    click.echo(app.engine.secrets.get(name, actor="cli (secrets reveal)"))


@secrets.command("rotate-key")
@pass_app
def secrets_rotate_key(app: App) -> None:
    """Re-encrypt every secret under a new key (resumes an interrupted rotation)."""
    from cryptography.fernet import Fernet

    from scopeflow.engine.db import session_factory
    from scopeflow.engine.secrets import KEY_FILE, interrupted_rotation_key, read_key_file, rotate_key

    home = app.settings.home
    key_file = home / KEY_FILE
    if app.settings.secret_key:
        old, target = app.settings.secret_key.encode(), None
    elif key_file.exists():
        old, target = read_key_file(key_file), key_file
    else:
        raise Fail(f"no secret key yet ({key_file} does not exist and SCOPEFLOW_SECRET_KEY is unset)")
    new = interrupted_rotation_key(home) or Fernet.generate_key()
    count = rotate_key(session_factory(app.settings.effective_database_url), old, new, key_file=target,
                       actor="cli")
    if target is None:
        click.echo(f"re-encrypted {count} secret(s); set SCOPEFLOW_SECRET_KEY={new.decode()} for every "
                   "Scopeflow process and restart them")
    else:
        click.echo(f"re-encrypted {count} secret(s); running Scopeflow processes read the new {KEY_FILE} by themselves")


@secrets.command("delete")
@click.argument("name")
@pass_app
def secrets_delete(app: App, name: str) -> None:
    app.engine.secrets.delete(name, actor="cli")
    click.echo(f"secret {name} deleted")


# ------------------------------------------------------------------------------ trace rendering
def render_trace(spans: list) -> str:
    children: dict[str | None, list] = {}
    ids = {s.span_id for s in spans}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(span, depth: int) -> None:
        ms = (span.end_ns - span.start_ns) / 1e6
        status = "" if span.status == "UNSET" else f" [{span.status}]"
        element = span.attributes.get("scopeflow.bpmn.element.id")
        measured = {k.removeprefix("scopeflow."): v for k, v in span.attributes.items()
                    if k.startswith(("scopeflow.tests.", "scopeflow.lint.", "scopeflow.security.", "scopeflow.human.actor",
                                     "scopeflow.task.outcome", "scopeflow.failure."))}
        extra = "  " + " ".join(f"{k}={v}" for k, v in sorted(measured.items())) if measured else ""
        where = f" <{element}>" if element and element != span.name else ""
        lines.append(f"{'  ' * depth}{span.name}{where} {ms:.1f}ms{status}{extra}")
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda s: s.start_ns):
        walk(root, 0)
    return "\n".join(lines) if lines else "(no spans recorded)"


def _scope_text(data: bytes, path: str | None) -> str:
    """The scope's bytes as text, or one line saying why not (with the command that converts a
    file saved in a Windows or Latin code page)."""
    import shlex

    from scopeflow.lifecycle import MAX_SCOPE_BYTES, NotUtf8, ScopeRejected, decode_scope

    if len(data) > MAX_SCOPE_BYTES:
        raise Fail("scope is larger than 1 MB")
    try:
        return decode_scope(data)
    except NotUtf8 as exc:
        if path is None:
            raise Fail(f"{exc}: send UTF-8 on stdin") from None
        fixed = shlex.quote(path + ".utf8.md")
        raise Fail(f"{path}: {exc}; if it was saved as Windows-1252 or Latin-1, convert it with: "
                   f"iconv -f WINDOWS-1252 -t UTF-8 {shlex.quote(path)} > {fixed}") from None
    except ScopeRejected as exc:
        raise Fail(f"{path or 'stdin'}: {exc}") from None


# ------------------------------------------------------------------------------ submit
@main.command("submit")
@click.argument("scope_file")
@click.option("--yes", is_flag=True, help="answer approvals and clarifications with their defaults")
@click.option("--secret", "secret_pairs", multiple=True, metavar="NAME=VALUE", help="supply a credential")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def submit_cmd(app: App, scope_file: str, yes: bool, secret_pairs: tuple[str, ...], as_json: bool) -> None:
    """Run SCOPE_FILE (markdown, or - for stdin) through the delivery lifecycle."""
    from dataclasses import asdict

    from scopeflow.commands.llm import preflight
    from scopeflow.lifecycle import MAX_SCOPE_BYTES, submit

    if scope_file == "-":
        text = _scope_text(click.get_binary_stream("stdin").read(MAX_SCOPE_BYTES + 1), None)
    else:
        path = Path(scope_file)
        if not path.exists():
            raise Fail(f"no such scope file: {scope_file}")
        if not path.is_file():
            raise Fail(f"not a regular file: {scope_file} (give a markdown file, or - to read stdin)")
        if path.stat().st_size > MAX_SCOPE_BYTES:  # refused before reading it whole
            raise Fail("scope is larger than 1 MB")
        text = _scope_text(path.read_bytes(), scope_file)
    secrets = {}
    for pair in secret_pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise Fail(f"--secret takes NAME=VALUE, got {name or pair!r}")
        secrets[name] = value
    progress = (lambda line: None) if as_json else click.echo
    preflight()   # with an LLM configured: a wrong endpoint, model or key fails here in one line
    result = submit(app.engine, text, yes=yes, secrets=secrets, progress=progress)
    if as_json:
        _print_json(asdict(result))
    else:
        click.echo(f"instance {result.instance_id}: {result.status} ({result.outcome})")
        if result.report:
            click.echo(f"  report: {result.report}")
        if result.requirements:
            counts = result.requirements
            click.echo(f"  requirements: {counts.get('total', 0)} ({counts.get('delivered', 0)} delivered, "
                       f"{counts.get('not_built', 0)} not built, {counts.get('assumed', 0)} assumed, "
                       f"{counts.get('not_understood', 0)} not understood)")
        if result.release:
            click.echo(f"  release: {result.release.get('url')} (stop with: {program()} releases stop {result.release.get('id')})")
        _echo_credentials(result.credentials)
        if result.sign_in:
            password = app.engine.secrets.get(result.sign_in["password_secret"], actor="cli (submit)")
            click.echo(f"  sign in as {result.sign_in['username']} with password {password}  (shown once; "
                       f"again with: {program()} secrets reveal {result.sign_in['password_secret']})")
        if result.reason:
            click.echo(f"  reason: {result.reason}")
        for task in result.waiting_for:
            click.echo(f"  waiting for {task['role']}: {task['name']} — {program()} tasks show {task['id']}")
    export_problem = app.engine.telemetry.export_problem()   # the run is stored; say if the collector missed it
    if export_problem:
        click.echo(f"warning: {export_problem.replace('INSTANCE_ID', result.instance_id)}", err=True)
    sys.stdout.flush()
    sys.exit(SUBMIT_EXIT.get(result.status, EXIT_FAILED))


def _echo_credentials(credentials: dict) -> None:
    """Optional credentials the built code reads, and those no built code reads (never requested)."""
    stored = set(credentials.get("optional_stored") or [])
    unset = [name for name in credentials.get("optional") or [] if name not in stored]
    if unset:
        click.echo(f"  optional credentials the built code reads, not stored: {', '.join(unset)} "
                   f"(set with: {program()} secrets set NAME)")
    for item in credentials.get("not_built") or []:
        click.echo(f"  needed once {item.get('integration')} is built: {', '.join(item.get('names') or [])} "
                   "(not requested: no built code reads them)")


def _register_command_modules() -> None:
    """Command groups kept in their own modules attach themselves to ``main`` on import."""
    import scopeflow.commands.evidence  # noqa: F401
    import scopeflow.commands.llm  # noqa: F401
    import scopeflow.commands.releases  # noqa: F401
    import scopeflow.commands.simulate  # noqa: F401
    import scopeflow.commands.web  # noqa: F401


_register_command_modules()
