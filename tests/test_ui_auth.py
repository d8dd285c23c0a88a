"""Accounts, sign-in, lockout, session fixation, CSRF, cookies and security headers."""

from __future__ import annotations

import pytest

from scopeflow.engine.models import User
from scopeflow.ui import accounts
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


def test_five_failures_lock_the_account_even_for_the_right_password(ui):
    app, engine = ui
    client = app.test_client()
    for _ in range(accounts.MAX_FAILED_LOGINS):
        assert login(client, "reviewer", "nope-nope").status_code == 401
    assert login(client, "reviewer").status_code == 401
    with engine.sessions() as session:
        assert session.query(User).filter_by(name="reviewer").one().locked_until is not None


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
