"""Shared pieces of the web UI tests: an app over a fresh store, users per role, signing in with
the CSRF token the login page hands out. (No tests here; the helpers are imported by test_ui_*.)"""

from __future__ import annotations

import re
from pathlib import Path

from scopeflow.engine.models import ROLES
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def csrf(client, url: str = "/login") -> str:
    return csrf_from(client.get(url).get_data(as_text=True))


def login(client, name: str, password: str = PASSWORD):
    return client.post("/login", data={"name": name, "password": password, "csrf_token": csrf(client)})


def make_ui(tmp_path: Path, models_dir: Path | None = None, **settings):
    """(app, engine) over a fresh SQLite store, with one user per role named after it."""
    from scopeflow.engine.accounts import create_user
    from scopeflow.engine.service import Engine
    from scopeflow.ui import create_app

    kwargs = {"models_dir": models_dir, **settings} if models_dir else dict(settings)
    engine = Engine(make_settings(tmp_path / "home", migrated_copy=True, **kwargs))
    for role in ROLES:
        create_user(engine.sessions, role, [role], PASSWORD)
    app = create_app(engine=engine)
    app.config["TESTING"] = True
    return app, engine


def signed_in(app, name: str):
    client = app.test_client()
    response = login(client, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def wait_for_status(engine, instance_id: str, status: str, timeout_s: float = 60) -> None:
    """Completing a task in the UI advances the instance in the background: wait for it."""
    import time

    from scopeflow.engine.models import Instance

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.sessions() as session:
            if session.get(Instance, instance_id).status == status:
                return
        time.sleep(0.05)
    raise AssertionError(f"instance {instance_id} did not reach {status} within {timeout_s} s")
