"""Every command DELIVERY.md prints works when run as printed (the app's own venv included)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scopeflow.engine.service import Engine
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from scopeflow.program import program
from tests.conftest import MODELS, make_settings

pytestmark = pytest.mark.slow

SCOPE = "# Reading list\n\n## Entities\n- Book: title (text, required), pages (integer)\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _run_in_background(command: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", command], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_each_how_to_run_command_of_delivery_md_works_as_printed(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    engine = Engine(make_settings(home))
    try:
        result = submit(engine, SCOPE, yes=True)
        assert result.status == "completed"
        text = Path(result.report).read_text(encoding="utf-8")
        section = text.split("## How to run it", 1)[1].split("\n## ", 1)[0]
        commands = re.findall(r"```sh\n(.*?)\n```", section, re.S)
        assert len(commands) == 3, section
        stop, by_hand, anywhere = commands
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
               "SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(MODELS),
               "SCOPEFLOW_RELEASES": str(home / "releases")}

        # 1. scopeflow releases stop ID, as printed (this installation's command, whatever PATH says)
        assert stop.startswith(f"{program()} releases stop ")
        stopped = subprocess.run(["bash", "-c", stop], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                                 text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        with pytest.raises(OSError):
            urllib.request.urlopen(result.release["url"] + "/healthz", timeout=2)

        # 2. sh <release>/run.sh: the release again, on its own port
        proc = _run_in_background(by_hand, env)
        try:
            assert _healthy(result.release["url"]) == {"status": "ok"}
        finally:
            _stop(proc)

        # 3. a fresh virtual environment from the app's requirements (PORT picked free here)
        port = _free_port()
        proc = _run_in_background(anywhere, {**env, "PORT": str(port)})
        try:
            assert _healthy(f"http://127.0.0.1:{port}", timeout_s=240) == {"status": "ok"}
        finally:
            _stop(proc)
        app_venv = Path(result.workspace) / "app" / ".venv"
        assert (app_venv / "bin" / "python").exists()
    finally:
        stop_all(engine.settings.releases_dir)


def test_a_login_app_gets_an_admin_account_whose_password_is_shown_once(tmp_path):
    """submit prints the password once; it signs in to the running app; `secrets reveal` (the
    documented command, printed in DELIVERY.md) shows it again; spans never hold it."""
    home = tmp_path / "home"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "SCOPEFLOW_HOME": str(home), "SCOPEFLOW_MODELS": str(MODELS)}
    scope = tmp_path / "scope.md"
    scope.write_text(SCOPE + "\n## Features\n- Users must log in\n", encoding="utf-8")
    try:
        ran = subprocess.run([sys.executable, "-m", "scopeflow", "submit", str(scope), "--yes"], env=env,
                             capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr
        match = re.search(r"sign in as admin with password (\S+)  \(shown once; again with: (\S+ secrets "
                          r"reveal APP_ADMIN_PASSWORD_\w+)\)", ran.stdout)
        assert match, ran.stdout
        password, reveal = match.groups()
        url = re.search(r"release: (http://\S+)", ran.stdout).group(1)

        import http.cookiejar
        import urllib.parse

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = urllib.parse.urlencode({"username": "admin", "password": password}).encode()
        with opener.open(url + "/login", data=form, timeout=10) as response:
            assert response.status == 200 and "/login" not in response.url      # signed in, redirected home
        wrong = urllib.parse.urlencode({"username": "admin", "password": password + "x"}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(url + "/login", data=wrong, timeout=10)
        assert refused.value.code == 401

        report = re.search(r"report: (\S+)", ran.stdout).group(1)
        assert reveal in Path(report).read_text(encoding="utf-8")
        shown = subprocess.run(["bash", "-c", reveal], env=env, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and shown.stdout.strip() == password
        for store in home.glob("scopeflow.db*"):       # the database and its write-ahead log
            assert password.encode() not in store.read_bytes()
    finally:
        stop_all(home / "releases")
