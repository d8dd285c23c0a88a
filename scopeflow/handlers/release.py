"""The ``Release``: one deployed copy of a built app, and the on-disk registry of releases.

Each release lives in its own directory ``<root>/<instance_id>/<release_id>/`` holding the app's
files, ``run.sh``, a ``Dockerfile``, the server's log (``release.log``) and ``release.json`` (this
dataclass). The directory tree *is* the registry: there is no database row to drift out of step
with what is on disk, and a release outlives the Scopeflow process that started it.

Processes are started in their own session, so a release's process id is also its process-group
id and :func:`stop_release` can signal the server together with anything it spawned; under
namespace isolation that process is ``unshare``, and everything the server spawned lives in its PID
namespace and dies with it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scopeflow.handlers.sandbox import reclaim
from scopeflow.handlers.serde import from_data, to_data

RUNNING = "running"
STOPPED = "stopped"
FAILED = "failed"              # its health check failed and there was nothing to roll back to
ROLLED_BACK = "rolled_back"    # its health check failed and the previous release took over
STATUSES = (RUNNING, STOPPED, FAILED, ROLLED_BACK)

RELEASE_FILE = "release.json"
LOG_FILE = "release.log"
STOP_GRACE_S = 5.0

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# Processes this Python process started: kept so they are reaped (no zombies) and polled exactly.
_CHILDREN: dict[int, subprocess.Popen] = {}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Health:
    """The last health check of a release."""

    ok: bool
    status: int | None = None      # HTTP status of the last answer; None when nothing answered
    checked_at: str = ""
    detail: str = ""               # why it is not ok ("process exited with code 1", "HTTP 500", …)
    attempts: int = 0


@dataclass
class Release:
    id: str
    instance_id: str
    path: str                      # absolute release directory
    port: int
    url: str                       # http://127.0.0.1:<port>
    pid: int | None
    started_at: str                # UTC, ISO 8601
    status: str                    # one of STATUSES
    app_sha256: str                # of the app tree it was built from (see deployer.app_digest)
    health: Health | None = None

    @property
    def directory(self) -> Path:
        return Path(self.path)

    def to_data(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Release:
        return from_data(cls, data)


def check_id(value: str, what: str) -> str:
    """``value`` if it is safe as one path segment, else a ValueError naming ``what``."""
    if not isinstance(value, str) or not _SAFE_ID.match(value) or value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not a safe identifier (letters, digits, . _ -)")
    return value


def release_dir(root: Path, instance_id: str, release_id: str) -> Path:
    return Path(root) / check_id(instance_id, "instance id") / check_id(release_id, "release id")


def save_release(release: Release) -> None:
    """Write ``release.json`` atomically (a fresh temporary file, then a rename over the old one).

    The temporary file is created exclusively under a random name: the running release may write in
    its directory, and must not be able to plant a link where we are about to write.
    """
    target = release.directory / RELEASE_FILE
    fd, tmp = tempfile.mkstemp(prefix=RELEASE_FILE + ".", suffix=".tmp", dir=release.directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(release.to_data(), indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def load_release(directory: Path) -> Release:
    path = Path(directory) / RELEASE_FILE
    try:
        return Release.from_data(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable release record: {exc}") from None


def remember_child(proc: subprocess.Popen) -> None:
    """Keep the handle of a server this process started (see :data:`_CHILDREN`)."""
    _CHILDREN[proc.pid] = proc


def _exited(pid: int) -> bool:
    """Whether ``/proc`` shows ``pid`` as a zombie: it has exited, and its parent (another process,
    the CLI that started it) has not collected it yet. Such a pid still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")   # the state follows "(command) "


def process_alive(release: Release) -> bool:
    """Whether the release's server process still runs.

    A child of ours is polled through its handle (which also reaps it). Any other pid must exist and,
    where ``/proc`` tells, have the release directory as its working directory, so a pid the kernel
    has since reused for an unrelated process does not count as the release.
    """
    pid = release.pid
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False    # exists but belongs to another user: not a process we started
    if _exited(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return True     # no /proc here (or not readable): the pid exists, which is all we can tell
    return Path(cwd) == release.directory.resolve()


def exit_code(release: Release) -> int | None:
    """The server's exit code when this process started it and it has exited, else None."""
    child = _CHILDREN.get(release.pid or 0)
    return None if child is None else child.poll()


def _all_directories(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).glob(f"*/*/{RELEASE_FILE}"))


def list_releases(root: Path, instance_id: str | None = None) -> list[Release]:
    """Every release under ``root`` (of one instance when given), oldest first.

    A release recorded as running whose process is gone is marked ``stopped`` (and saved).
    Unreadable ``release.json`` files are skipped: they are not releases this module wrote.
    """
    found = []
    for directory in _all_directories(root):
        try:
            release = load_release(directory)
        except ValueError:
            continue
        if instance_id is not None and release.instance_id != instance_id:
            continue
        if release.status == RUNNING and not process_alive(release):
            release.status = STOPPED
            reclaim(release.directory)
            save_release(release)
        found.append(release)
    return sorted(found, key=lambda r: (r.started_at, r.id))


def find_release(root: Path, release_id: str) -> Release:
    for release in list_releases(root):
        if release.id == release_id:
            return release
    raise KeyError(f"no release {release_id!r} under {root}")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(release: Release, grace_s: float) -> bool:
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_alive(release):
            return True
        time.sleep(0.05)
    return not process_alive(release)


def terminate(release: Release, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the release's process group, SIGKILL it if still alive after ``grace_s``; then take
    its directory back from the release's user (every process of the release is gone by then: they
    share its PID namespace)."""
    if release.pid and process_alive(release):
        _signal_group(release.pid, signal.SIGTERM)
        if not _wait_gone(release, grace_s):
            _signal_group(release.pid, signal.SIGKILL)
            _wait_gone(release, grace_s)
    _CHILDREN.pop(release.pid or 0, None)
    if not (release.pid and process_alive(release)):
        reclaim(release.directory)


def stop_release(root: Path, release_id: str, grace_s: float = STOP_GRACE_S) -> Release:
    """Stop one release's server; a release that is not running is returned unchanged."""
    release = find_release(root, release_id)
    if release.status == RUNNING:
        terminate(release, grace_s)
        release.status = STOPPED
        save_release(release)
    return release


def stop_all(root: Path, grace_s: float = STOP_GRACE_S) -> list[Release]:
    """Stop every running release under ``root``; returns the releases it stopped."""
    stopped = []
    for release in list_releases(root):
        if release.status == RUNNING:
            stopped.append(stop_release(root, release.id, grace_s))
    return stopped
