"""Deploy a built app as a local release, health-check it, and roll back when it is unhealthy.

The ``local`` target: the workspace app is copied into a fresh release directory (see
:mod:`scopeflow.handlers.release`) with a ``run.sh`` and a ``Dockerfile`` (written for whoever
ships it further; no container engine runs here), then started with this interpreter on a free
loopback port, detached in its own session, with a scrubbed environment plus the credentials its
code reads (:mod:`scopeflow.handlers.credential_reads`: required ones always, optional ones when
stored; a credential of an integration no built code reads is never asked for). The release counts only once ``GET /healthz`` answers 200 with
``{"status": "ok"}``.

Only the verified app ships: the deployer recomputes the app's content digest and refuses to deploy
when it differs from the one the verifier recorded. The server starts behind the same boundary as
the checks (:func:`scopeflow.handlers.sandbox.start_untrusted`): its own PID and mount namespaces,
the Scopeflow home (database, ``secret.key``) and other releases hidden, a dedicated unprivileged uid
when Scopeflow runs as root, a scrubbed environment plus the credentials its code reads.

Blue/green on one host: the previous release of the instance keeps serving until the new one is
healthy, and is stopped only then. When the new one fails, it is stopped and the previous healthy
release stays (or is started again), and the task fails as an ``external_blocker``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import stat
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from scopeflow.config import load_settings
from scopeflow.handlers import recipes
from scopeflow.handlers.app_admin import admin_environment
from scopeflow.handlers.app_content import app_digest, content_files
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.credential_reads import CredentialNeeds, decide, scan
from scopeflow.handlers.failures import CONFIGURATION, DESIGN_FLAW, EXTERNAL_BLOCKER, TaskFailure
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.handlers.release import (
    FAILED,
    LOG_FILE,
    RELEASE_FILE,
    ROLLED_BACK,
    RUNNING,
    STOPPED,
    Health,
    Release,
    check_id,
    exit_code,
    list_releases,
    process_alive,
    release_dir,
    remember_child,
    save_release,
    terminate,
    utc_now,
)
from scopeflow.handlers.sandbox import scrubbed_env, start_untrusted
from scopeflow.handlers.serde import to_data
from scopeflow.handlers.spec import Spec
from scopeflow.handlers.verifier import hidden_from_checks
from scopeflow.spans import semconv

HOST = "127.0.0.1"
ENTRY_POINT = "run.py"                 # what the flask_app template pack renders to start the app
HEALTH_PATH = "/healthz"
DEFAULT_HEALTH_TIMEOUT_S = 20.0
REUSE_CHECK_TIMEOUT_S = 3.0            # health check of an already running release before reusing it
PROBE_TIMEOUT_S = 2.0                  # one HTTP request
POLL_INTERVAL_S = 0.2
UNHEALTHY_ANSWERS_TO_FAIL = 5          # a server that answers, but not ok, this many times in a row fails
LOG_TAIL_CHARS = 4000
CREDENTIAL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")   # an environment variable name

_RELEASE_OWN_FILES = frozenset({RELEASE_FILE, LOG_FILE, RELEASE_FILE + ".tmp"})
_ENV_RESERVED = frozenset(scrubbed_env(Path("/"))) | {"HOST", "PORT"}   # what start_server sets itself
_ADMIN_ENV = frozenset({"ADMIN_USERNAME", "ADMIN_PASSWORD"})          # what admin_environment sets


def releases_dir() -> Path:
    """Where releases live: ``Settings.releases_dir`` (``SCOPEFLOW_RELEASES``)."""
    return load_settings().releases_dir


# ------------------------------------------------------------------------------ the app tree
def _app_path(ctx: TaskContext, app_dir: str) -> Path:
    workspace = Path(ctx.workspace).resolve()
    path = (workspace / app_dir).resolve()
    if not path.is_relative_to(workspace):
        raise TaskFailure(DESIGN_FLAW, f"app directory {app_dir!r} lies outside the workspace", {"app_dir": app_dir})
    if not path.is_dir():
        raise TaskFailure(DESIGN_FLAW, f"app directory {app_dir!r} does not exist in the workspace",
                          {"app_dir": app_dir})
    return path


def app_files(app_dir: Path) -> list[str]:
    """The app's files a release ships (POSIX paths relative to ``app_dir``), sorted.

    Caches, virtualenvs and ``instance/`` data are left out. Symbolic links are refused rather than
    followed, so a release can never copy a file from outside the app.
    """
    files, links = content_files(app_dir)
    if links:
        raise TaskFailure(DESIGN_FLAW, f"app holds symbolic link(s), which a release does not copy: "
                          f"{', '.join(sorted(links)[:5])}", {"links": sorted(links)})
    _check_shippable(set(files))
    return files


def _check_shippable(files: set[str]) -> None:
    if ENTRY_POINT not in files:
        raise TaskFailure(DESIGN_FLAW, f"app has no {ENTRY_POINT} to start", {"entry_point": ENTRY_POINT})
    clashes = sorted(files & _RELEASE_OWN_FILES)
    if clashes:
        raise TaskFailure(DESIGN_FLAW, f"app has file(s) the release itself needs: {', '.join(clashes)}",
                          {"files": clashes})


# ------------------------------------------------------------------------------ release files
def _write_run_script(directory: Path, port: int, credentials: list[str]) -> None:
    needs = ", ".join(credentials) if credentials else "none"
    python = shlex.quote(sys.executable)
    script = "\n".join([
        "#!/bin/sh",
        f"# Start this release by hand. Serves on HOST:PORT (default {HOST}:{port}).",
        f"# Credentials the app's code reads from the environment, given to this release: {needs}",
        'cd "$(dirname "$0")" || exit 1',
        f'export HOST="${{HOST:-{HOST}}}"',
        f'export PORT="${{PORT:-{port}}}"',
        f'if [ -z "${{PYTHON:-}}" ]; then PYTHON={python}; fi',
        f'exec "$PYTHON" {ENTRY_POINT}',
        "",
    ])
    path = directory / "run.sh"
    path.write_text(script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)


def _write_container_files(directory: Path) -> None:
    """A Dockerfile for shipping the release elsewhere: written here, never built here."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    (directory / "Dockerfile").write_text(
        "# Written by the Scopeflow deployer for shipping this release; it is not built on this host.\n"
        f"FROM python:{version}-slim\n"
        "WORKDIR /srv/app\n"
        "COPY . .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\n"
        "# Inside a container the server must listen on all of the container's interfaces.\n"
        "ENV HOST=0.0.0.0 PORT=8000\n"
        "EXPOSE 8000\n"
        f'CMD ["python", "{ENTRY_POINT}"]\n', encoding="utf-8")
    (directory / ".dockerignore").write_text(
        "\n".join(sorted(_RELEASE_OWN_FILES | {"instance/", "__pycache__/"})) + "\n", encoding="utf-8")
    requirements = directory / "requirements.txt"
    if not requirements.exists():
        requirements.write_text("# The app declared no dependencies (it shipped no requirements.txt).\n",
                                encoding="utf-8")


def _prepare(root: Path, instance_id: str, app: Path, files: list[str], digest: str,
             credentials: list[str]) -> Release:
    release_id = str(uuid.uuid4())
    directory = release_dir(root, instance_id, release_id)
    directory.mkdir(parents=True)
    for relative in files:
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(app / relative, target)
    port = free_port()
    if "run.sh" not in files:
        _write_run_script(directory, port, credentials)
    if "Dockerfile" not in files:
        _write_container_files(directory)
    release = Release(id=release_id, instance_id=instance_id, path=str(directory), port=port,
                      url=f"http://{HOST}:{port}", pid=None, started_at=utc_now(), status=STOPPED,
                      app_sha256=digest)
    save_release(release)
    return release


# ------------------------------------------------------------------------------ processes
def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def credential_env(ctx: TaskContext, names: list[str]) -> dict[str, str]:
    """Each credential's value under its own name, for the app's environment."""
    env = {}
    for name in names:
        if name in _ENV_RESERVED or name.upper().startswith("SCOPEFLOW_"):
            raise TaskFailure(CONFIGURATION, f"credential {name!r} would replace a variable the release sets itself",
                              {"credential": name})
        env[name] = ctx.secret(name)
    return env


def start_server(release: Release, credentials: dict[str, str], hide: tuple[Path, ...]) -> None:
    """Start the release behind the untrusted-code boundary (:func:`sandbox.start_untrusted`: own
    PID and mount namespaces, ``hide`` and every home directory out of sight, a dedicated uid under
    root, a scrubbed environment plus ``credentials``), logging to ``release.log``; updates ``release``.
    """
    log_fd = os.open(release.directory / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(log_fd, "ab") as log:
        started = start_untrusted([sys.executable, ENTRY_POINT], cwd=release.directory, log_file=log,
                                  env_extra={"HOST": HOST, "PORT": str(release.port), **credentials},
                                  hide=hide, keep_ours=sorted(_RELEASE_OWN_FILES))
        log.write(f"--- {utc_now()} starting on {release.url} (isolation {started.isolation}: "
                  f"{started.isolation_reason})\n".encode())
    remember_child(started.proc)
    release.pid = started.proc.pid
    release.started_at = utc_now()
    release.status = RUNNING
    save_release(release)


def log_tail(release: Release, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = (release.directory / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-chars:]


# ------------------------------------------------------------------------------ health
def probe(url: str) -> tuple[int | None, str]:
    """One ``GET <url>/healthz``: (HTTP status or None, "" when healthy else why not)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never a proxy
    try:
        with opener.open(url + HEALTH_PATH, timeout=PROBE_TIMEOUT_S) as response:  # nosec B310 - our http URL
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, f"no answer: {getattr(exc, 'reason', exc)}"
    try:
        healthy = json.loads(body).get("status") == "ok"
    except (ValueError, AttributeError):
        healthy = False
    if status != 200 or not healthy:
        return status, f'HTTP {status} without {{"status": "ok"}}'
    return status, ""


def wait_healthy(release: Release, timeout_s: float) -> Health:
    """Poll the health route until it is ok, the process exits, it keeps answering not-ok, or time is up."""
    deadline = time.monotonic() + timeout_s
    attempts = bad_answers = 0
    status, detail = None, "not checked"
    while True:
        if not process_alive(release):
            return Health(False, status, utc_now(), "process exited" + _exit_note(release), attempts)
        status, detail = probe(release.url)
        attempts += 1
        if not detail:
            return Health(True, status, utc_now(), "", attempts)
        bad_answers = bad_answers + 1 if status is not None else 0
        if bad_answers >= UNHEALTHY_ANSWERS_TO_FAIL or time.monotonic() >= deadline:
            return Health(False, status, utc_now(), f"{detail} (after {attempts} attempts)", attempts)
        time.sleep(POLL_INTERVAL_S)


def _exit_note(release: Release) -> str:
    code = exit_code(release)
    return "" if code is None else f" with code {code}"


def _checked(ctx: TaskContext, release: Release, timeout_s: float, name: str = "health check") -> Health:
    """``wait_healthy`` inside a child span that records what it measured."""
    with ctx.span(name, **{"scopeflow.deploy.port": release.port,
                           "scopeflow.deploy.release_id": release.id}) as span:
        health = wait_healthy(release, timeout_s)
        measured: dict[str, Any] = {"scopeflow.deploy.health_ok": health.ok}
        if health.status is not None:
            measured["scopeflow.deploy.health_status"] = health.status
        span.set(**measured)
    release.health = health
    save_release(release)
    return health


# ------------------------------------------------------------------------------ credentials
def _valid_name(name: Any, owner: str) -> str:
    if not isinstance(name, str) or not CREDENTIAL_NAME.match(name):
        raise TaskFailure(DESIGN_FLAW, f"integration {owner!r} names an invalid credential "
                          f"{str(name)[:60]!r} (expected letters, digits and _)", {"integration": owner})
    return name


def declared_credentials(spec: dict[str, Any] | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(credential name → who declares it, integration label → its credential names), in the order
    the spec names them: the spec's integrations, then the credentials built recipes read."""
    if spec is None:
        return {}, {}
    try:
        parsed = Spec.from_data(spec)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TaskFailure(DESIGN_FLAW, f"spec is malformed: {exc}", {}) from None
    declared: dict[str, list[str]] = {}
    integrations: dict[str, list[str]] = {}
    for integration in parsed.integrations:
        label = integration.label or integration.name
        names = [_valid_name(name, integration.name) for name in integration.credentials]
        integrations.setdefault(label, []).extend(names)
        for name in names:
            declared.setdefault(name, []).append(label)
    for name, owners in recipes.credentials(parsed).items():
        declared.setdefault(name, []).extend(o for o in owners if o not in declared.get(name, []))
    return declared, integrations


def credential_needs(workspace: Path | str, spec: dict[str, Any] | None, app_dir: str = "app") -> CredentialNeeds:
    """What a deploy of the built app needs: the credentials its code reads (see
    :mod:`credential_reads`), and the integrations none of whose credentials are read.
    No app built yet means no code reads anything."""
    root = Path(workspace).resolve()
    app = (root / app_dir).resolve()
    if not app.is_relative_to(root):
        raise TaskFailure(DESIGN_FLAW, f"app directory {app_dir!r} lies outside the workspace", {"app_dir": app_dir})
    declared, integrations = declared_credentials(spec)
    return decide(scan(app), declared, integrations, _ENV_RESERVED | _ADMIN_ENV)


def _record_needs(ctx: TaskContext, needs: CredentialNeeds, missing: list[str]) -> None:
    """Names only, never values: what the deploy waits for, what it passes, what is not built."""
    ctx.record({semconv.CREDENTIALS_REQUIRED: len(needs.required), semconv.CREDENTIALS_MISSING: len(missing),
                semconv.CREDENTIALS_REQUIRED_NAMES: needs.required,
                semconv.CREDENTIALS_OPTIONAL_NAMES: needs.optional,
                semconv.CREDENTIALS_MISSING_NAMES: missing,
                semconv.CREDENTIALS_NOT_BUILT: [n for item in needs.not_built for n in item.names]})


@operator("check_credentials", retry=NO_RETRY)
def check_credentials(ctx: TaskContext, spec: dict[str, Any], app_dir: str = "app") -> dict[str, Any]:
    """Check that every credential the built code cannot work without is stored (values are not
    read); credentials of integrations no built code reads are listed as not built, never asked for."""
    needs = credential_needs(ctx.workspace, spec, app_dir)
    missing = [name for name in needs.required if not ctx.secret_exists(name)]
    _record_needs(ctx, needs, missing)
    if missing:
        integrations = sorted({label for name in missing for label in needs.labels[name]})
        raise TaskFailure(CONFIGURATION, f"missing credential(s): {', '.join(missing)}",
                          {"missing": missing, "integrations": integrations})
    stored = [name for name in needs.optional if ctx.secret_exists(name)]
    return {"ok": True, "names": needs.required + stored, "required": needs.required,
            "optional": needs.optional, "not_built": [to_data(item) for item in needs.not_built]}


# ------------------------------------------------------------------------------ deploy
def _reusable(ctx: TaskContext, root: Path, digest: str) -> Release | None:
    """A running release of this instance built from the same files, if it is still healthy.

    A matching release that fails its check is stopped and marked failed, so it is never offered again.
    Credentials are not compared: a reused release keeps the values it was started with.
    """
    for release in reversed(list_releases(root, ctx.instance_id)):
        if release.status != RUNNING or release.app_sha256 != digest:
            continue
        if _checked(ctx, release, REUSE_CHECK_TIMEOUT_S, "health check (running release)").ok:
            return release
        terminate(release)
        release.status = FAILED
        save_release(release)
    return None


def _retire(root: Path, instance_id: str, keep: Release) -> None:
    """Stop the instance's other running releases once ``keep`` is healthy."""
    for release in list_releases(root, instance_id):
        if release.id != keep.id and release.status == RUNNING:
            terminate(release)
            release.status = STOPPED
            save_release(release)


def _roll_back(ctx: TaskContext, root: Path, failed: Release, credentials: dict[str, str],
               timeout_s: float, hide: tuple[Path, ...]) -> Release | None:
    """Make the instance's latest previously healthy release serve again; None when there is none."""
    earlier = [r for r in list_releases(root, ctx.instance_id)
               if r.id != failed.id and r.health is not None and r.health.ok and r.status in (RUNNING, STOPPED)]
    if not earlier:
        return None
    previous = earlier[-1]
    if previous.status == RUNNING:
        if _checked(ctx, previous, REUSE_CHECK_TIMEOUT_S, "rollback health check").ok:
            return previous
        terminate(previous)
    if not _port_free(previous.port):
        previous.port = free_port()
        previous.url = f"http://{HOST}:{previous.port}"
    start_server(previous, credentials, hide)
    if _checked(ctx, previous, timeout_s, "rollback health check").ok:
        return previous
    terminate(previous)
    previous.status = FAILED
    save_release(previous)
    return None


def _fail(ctx: TaskContext, root: Path, release: Release, credentials: dict[str, str], timeout_s: float,
          hide: tuple[Path, ...]) -> None:
    """Stop the unhealthy ``release``, roll back, and raise the external_blocker that says what happened."""
    terminate(release)
    health = release.health or Health(False, detail="not checked")
    active = _roll_back(ctx, root, release, credentials, timeout_s, hide)
    release.status = ROLLED_BACK if active else FAILED
    save_release(release)
    ctx.record({"scopeflow.deploy.release_id": release.id, "scopeflow.deploy.health_ok": False,
                "scopeflow.deploy.rolled_back": active is not None})
    raise TaskFailure(EXTERNAL_BLOCKER, f"health check failed: {health.detail}", {
        "release_id": release.id, "url": release.url, "health": to_data(health),
        "log_tail": log_tail(release), "rolled_back": active is not None,
        "active_release": active.to_data() if active else None,
    })


def _succeeded(ctx: TaskContext, release: Release, reused: bool) -> dict[str, Any]:
    ctx.record({"scopeflow.deploy.release_id": release.id, "scopeflow.deploy.url": release.url,
                "scopeflow.deploy.health_ok": True, "scopeflow.deploy.reused": reused})
    return {"release": release.to_data()}


def _check_verified(app_dir: str, digest: str, verified_sha256: str | None) -> None:
    """Ship only the app the verifier checked: its content digest must equal the recorded one."""
    if not verified_sha256:
        raise TaskFailure(EXTERNAL_BLOCKER, "deploy refused: no verified content hash was given "
                          "(verified_sha256), and only a verified app is deployed", {"app_dir": app_dir})
    if digest != verified_sha256:
        raise TaskFailure(EXTERNAL_BLOCKER, f"deploy refused: app {app_dir!r} differs from the verified one "
                          f"(verified {verified_sha256[:12]}, now {digest[:12]}); it changed after its checks",
                          {"app_dir": app_dir, "verified_sha256": verified_sha256, "app_sha256": digest})


def hidden_from_release(ctx: TaskContext, root: Path) -> tuple[Path, ...]:
    """What a release must not see: the Scopeflow home (as for the checks) and every other release."""
    return (hidden_from_checks(ctx.workspace), root)


@operator("deploy_release", expensive=True, retry=NO_RETRY, secrets=("*",))
def deploy_release(ctx: TaskContext, app_dir: str = "app", spec: dict[str, Any] | None = None,
                   health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
                   verified_sha256: str | None = None) -> dict[str, Any]:
    """Deploy the verified app as a local release on a loopback port; health-checked, rolled back on failure.

    ``verified_sha256`` is the content digest the verifier recorded (``verification['app_sha256']``):
    an app whose content differs is refused as an external blocker, before anything starts.
    """
    root = releases_dir().resolve()
    check_id(ctx.instance_id, "instance id")
    app = _app_path(ctx, app_dir)
    files = app_files(app)
    digest = app_digest(app, files)
    _check_verified(app_dir, digest, verified_sha256)
    needs = credential_needs(ctx.workspace, spec, app_dir)
    passed = needs.required + [name for name in needs.optional if ctx.secret_exists(name)]
    ctx.record({semconv.CREDENTIALS_PASSED: passed})
    admin_env, sign_in = admin_environment(ctx, app)
    credentials = {**credential_env(ctx, passed), **admin_env}
    existing = _reusable(ctx, root, digest)
    if existing is not None:
        return {**_succeeded(ctx, existing, reused=True), "sign_in": sign_in}
    left = ctx.time_left()
    timeout_s = health_timeout_s if left is None else max(1.0, min(health_timeout_s, left))
    release = _prepare(root, ctx.instance_id, app, files, digest, passed)
    hide = hidden_from_release(ctx, root)
    start_server(release, credentials, hide)
    if not _checked(ctx, release, timeout_s).ok:
        _fail(ctx, root, release, credentials, timeout_s, hide)
    _retire(root, ctx.instance_id, release)
    return {**_succeeded(ctx, release, reused=False), "sign_in": sign_in}
