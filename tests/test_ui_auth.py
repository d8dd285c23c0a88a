"""Accounts, sign-in, lockout, session fixation, CSRF, cookies and security headers."""

from __future__ import annotations

import subprocess

import pytest

from scopeflow.engine import accounts
from scopeflow.engine.models import User
from scopeflow.program import program
from scopeflow.ui.auth_throttle import MAX_FAILURES, LoginThrottle
from tests.test_ui_support import PASSWORD, csrf, login, make_ui, signed_in


@pytest.fixture
def ui(tmp_path):
    return make_ui(tmp_path)


def test_create_user_refuses_duplicates_unknown_roles_and_short_passwords(ui):
    _app, engine = ui
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.create_user(engine.sessions, "admin", ["admin"], PASSWORD)
    with pytest.raises(accounts.AccountError, match="unknown role"):
        accounts.create_user(engine.sessions, "zed", ["wizard"], PASSWORD)
    with pytest.raises(accounts.AccountError, match="at least 8"):
        accounts.create_user(engine.sessions, "zed", ["auditor"], "short")
    with pytest.raises(accounts.AccountError, match="without spaces"):
        accounts.create_user(engine.sessions, "a b", ["auditor"], PASSWORD)


def test_passwords_are_stored_hashed(ui):
    _app, engine = ui
    with engine.sessions() as session:
        row = session.query(User).filter_by(name="admin").one()
    assert PASSWORD not in row.password_hash and row.password_hash.startswith(("scrypt:", "pbkdf2:"))


def test_login_redirects_and_wrong_password_is_refused(ui):
    app, _engine = ui
    client = app.test_client()
    assert client.get("/instances").status_code == 302
    bad = login(client, "auditor", "wrong password")
    assert bad.status_code == 401 and "wrong user name or password" in bad.get_data(as_text=True)
    good = login(client, "auditor")
    assert good.status_code == 302
    assert client.get("/instances").status_code == 200


def _client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_guessing_throttles_the_guessing_client_and_never_locks_the_account(ui):
    app, engine = ui
    guesser = _client_at(app, "203.0.113.9")
    for _ in range(MAX_FAILURES):
        assert login(guesser, "reviewer", "nope-nope").status_code == 401
    refused = login(guesser, "reviewer")   # even the right password: this client is throttled
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many failed sign-ins" in refused.get_data(as_text=True)
    assert login(guesser, "auditor").status_code == 429   # the budget is the client's, not a name's
    owner = _client_at(app, "198.51.100.7")
    assert login(owner, "reviewer").status_code == 302   # the account itself is not locked
    with engine.sessions() as session:
        assert session.query(User).filter_by(name="reviewer").one().locked_until is None


def test_a_success_does_not_reset_the_guessing_budget(ui):
    app, _engine = ui
    guesser = _client_at(app, "203.0.113.10")
    for _ in range(MAX_FAILURES - 1):
        login(guesser, "reviewer", "nope-nope")
    assert login(guesser, "auditor").status_code == 302   # the guesser's own account
    assert login(guesser, "reviewer", "nope-nope").status_code == 401
    assert login(guesser, "reviewer").status_code == 429


def test_the_throttle_forgets_failures_once_they_leave_the_window():
    now = [1000.0]
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=lambda: now[0])
    throttle.failed("a")
    now[0] += 30
    throttle.failed("a")
    assert throttle.retry_after("a") == 31 and throttle.retry_after("b") == 0
    now[0] += 31
    assert throttle.retry_after("a") == 0


def test_a_locked_account_loses_its_sessions_and_its_api_token(ui):
    app, engine = ui
    token = accounts.issue_api_token(engine.sessions, "operator")
    browser = signed_in(app, "operator")
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/instances", headers=bearer).status_code == 200
    accounts.lock(engine.sessions, "operator")
    assert app.test_client().get("/api/v1/instances", headers=bearer).status_code == 401
    assert browser.get("/instances").status_code == 302
    assert login(app.test_client(), "operator").status_code == 401
    accounts.unlock(engine.sessions, "operator")
    assert app.test_client().get("/api/v1/instances", headers=bearer).status_code == 200
    assert browser.get("/instances").status_code == 302   # unlocking does not revive old sessions
    assert login(app.test_client(), "operator").status_code == 302


def test_users_lock_and_the_printed_unlock_command_work(tmp_path):
    from scopeflow.engine.service import Engine
    from tests.conftest import make_settings
    from tests.test_catalog_and_cli import scopeflow

    accounts.create_user(Engine(make_settings(tmp_path / "home")).sessions, "ann", ["auditor"], PASSWORD)
    locked = scopeflow(tmp_path, "users", "lock", "ann")
    assert locked.returncode == 0, locked.stderr
    printed = locked.stdout.split("unlock with: ", 1)[1].strip()
    assert printed == f"{program()} users unlock ann"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCOPEFLOW_HOME": str(tmp_path / "home")}
    assert subprocess.run(["bash", "-c", printed], env=env, capture_output=True, timeout=120).returncode == 0
    engine = Engine(make_settings(tmp_path / "home"))
    assert accounts.authenticate(engine.sessions, "ann", PASSWORD).name == "ann"
    unknown = scopeflow(tmp_path, "users", "lock", "nobody")
    assert unknown.returncode == 2 and "unknown user 'nobody'" in unknown.stderr


def test_an_unknown_name_costs_a_password_hash_like_a_known_one(ui, monkeypatch):
    _app, engine = ui
    checked = []
    real = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    for name in ("reviewer", "no-such-user"):
        with pytest.raises(accounts.AccountError, match="wrong user name or password"):
            accounts.authenticate(engine.sessions, name, "wrong password")
    with engine.sessions() as session:
        stored = session.query(User).filter_by(name="reviewer").one().password_hash
    assert len(checked) == 2
    method = stored.split("$", 1)[0]   # e.g. scrypt:32768:8:1 — the same work factor for both
    assert checked[0] == stored and checked[1].split("$", 1)[0] == method and checked[1] != stored


def test_login_starts_a_fresh_session(ui):
    app, _engine = ui
    client = app.test_client()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    login(client, "auditor")
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("_user_id")


def test_open_redirect_after_login_is_refused(ui):
    app, _engine = ui
    client = app.test_client()
    token = csrf(client)
    response = client.post("/login?next=https://evil.example/x",
                           data={"name": "auditor", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_post_without_or_with_a_wrong_csrf_token_is_400(ui):
    app, _engine = ui
    client = app.test_client()
    assert client.post("/login", data={"name": "auditor", "password": PASSWORD}).status_code == 400
    response = client.post("/login", data={"name": "auditor", "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def test_security_headers_and_cookie_flags(ui):
    app, _engine = ui
    client = app.test_client()
    response = login(client, "auditor")
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/instances")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "unsafe-" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"]


def test_secure_cookie_flag_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_SECURE_COOKIES", "1")
    from scopeflow.config import load_settings

    assert load_settings().secure_cookies is True
    app, _engine = make_ui(tmp_path, secure_cookies=True)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    plain, _ = make_ui(tmp_path / "plain")
    assert plain.config["SESSION_COOKIE_SECURE"] is False


def test_logout_needs_csrf_and_ends_the_session(ui):
    app, _engine = ui
    client = signed_in(app, "auditor")
    assert client.post("/logout").status_code == 400
    client.post("/logout", data={"csrf_token": csrf(client, "/instances")})
    assert client.get("/instances").status_code == 302


def test_a_copy_of_the_session_cookie_dies_with_logout(ui):
    app, _engine = ui
    client = signed_in(app, "auditor")
    stolen = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/instances").status_code == 200
    client.post("/logout", data={"csrf_token": csrf(client, "/instances")})
    assert thief.get("/instances").status_code == 302
    assert thief.get("/api/v1/instances").status_code == 401
    assert signed_in(app, "auditor").get("/instances").status_code == 200   # signing in again works


def test_api_token_authenticates_and_is_stored_hashed(ui):
    app, engine = ui
    token = accounts.issue_api_token(engine.sessions, "auditor")
    client = app.test_client()
    assert client.get("/api/v1/instances").status_code == 401
    assert client.get("/api/v1/instances", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/instances", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with engine.sessions() as session:
        assert token not in (session.query(User).filter_by(name="auditor").one().api_token_hash or "")


def test_account_page_issues_a_token_once(ui):
    app, _engine = ui
    client = signed_in(app, "submitter")
    page = client.post("/account", data={"csrf_token": csrf(client, "/account")}).get_data(as_text=True)
    assert "sf_" in page and "is not shown again" in page


def _approval_task(engine) -> str:
    from scopeflow.engine.queries import list_tasks

    iid = engine.start("approval", {"requester": "ann"}, actor="submitter", title="Approve it")
    with engine.sessions() as session:
        return list_tasks(session, instance_id=iid)[0]["id"]


def _task_status(engine, task_id: str) -> str:
    from scopeflow.engine.models import HumanTask

    with engine.sessions() as session:
        return session.get(HumanTask, task_id).status


def test_an_invalid_bearer_header_does_not_let_a_cookie_session_skip_csrf(ui):
    app, engine = ui
    tid = _approval_task(engine)
    browser = signed_in(app, "reviewer")   # the victim's cookie, sent along by a forged request
    body = {"data": {"decision": "approve"}}
    for header in ("Bearer nope", "Bearer ", "Bearer"):
        forged = browser.post(f"/api/v1/tasks/{tid}/complete", json=body, headers={"Authorization": header})
        assert forged.status_code in (400, 401), (header, forged.status_code)
    assert browser.post(f"/api/v1/tasks/{tid}/complete", json=body).status_code == 400   # no CSRF header
    assert _task_status(engine, tid) == "open"
    token = accounts.issue_api_token(engine.sessions, "reviewer")
    done = app.test_client().post(f"/api/v1/tasks/{tid}/complete", json=body,
                                  headers={"Authorization": f"Bearer {token}"})
    assert done.status_code == 200 and _task_status(engine, tid) == "completed"


@pytest.fixture(scope="module")
def claimable(tmp_path_factory):
    app, engine = make_ui(tmp_path_factory.mktemp("claim"))
    return signed_in(app, "reviewer"), _approval_task(engine)


@pytest.mark.parametrize("back", ["https://evil.example/x", "//evil.example/x", "/\\evil.example/x",
                                  "\\\\evil.example", "javascript:alert(1)", "evil.example", "/\t/evil.example", " //evil"])
def test_claim_never_redirects_off_site(claimable, back):
    client, tid = claimable
    response = client.post(f"/tasks/{tid}/claim", data={"csrf_token": csrf(client, "/tasks"), "back": back})
    assert response.status_code == 302 and response.headers["Location"] == f"/tasks/{tid}"


def test_claim_goes_back_to_a_local_page(claimable):
    client, tid = claimable
    response = client.post(f"/tasks/{tid}/claim", data={"csrf_token": csrf(client, "/tasks"), "back": "/tasks?show=mine"})
    assert response.headers["Location"] == "/tasks?show=mine"
