"""Security headers, sign-in throttling and the session key, each failing a real Flask request.

Over the app factory with real accounts (``tests/test_ui_support.make_ui``):

* every kind of response (a page, a redirect, a 403, a 404, API 401 and 200, a static file)
  carries the whole Content-Security-Policy and the other headers, not just pages that render;
* the public endpoints accept only their methods (sign-out is POST only, so a link cannot sign
  anyone out);
* a session cookie signed with the raw ``SCOPEFLOW_SECRET_KEY`` is refused (the session key is
  derived from it, because the raw value also keys the secret store);
* a throttled client may sign in again exactly when its oldest failure leaves the window, and the
  throttle's memory stays bounded by forgetting the clients with the oldest failures.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from scopeflow.ui import auth_throttle
from scopeflow.ui.auth_throttle import MAX_FAILURES, LoginThrottle
from scopeflow.ui.security import CSP
from tests.conftest import make_settings
from tests.test_ui_support import PASSWORD, csrf, login, make_ui, signed_in

RAW_SECRET = "a-raw-deployment-secret-of-enough-length"


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """(app, engine) as ``make_ui`` makes them, with ``SCOPEFLOW_SECRET_KEY`` set."""
    from scopeflow.engine.accounts import create_user
    from scopeflow.engine.models import ROLES
    from scopeflow.engine.service import Engine
    from scopeflow.ui import create_app

    home = tmp_path_factory.mktemp("ui-gates") / "home"
    engine = Engine(replace(make_settings(home, migrated_copy=True), secret_key=RAW_SECRET))
    for role in ROLES:
        create_user(engine.sessions, role, [role], PASSWORD)
    app = create_app(engine=engine)
    app.config["TESTING"] = True
    return app, engine


def _headers_ok(response) -> list[str]:
    wrong = []
    expected = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin"}
    for name, value in expected.items():
        if response.headers.get(name) != value:
            wrong.append(f"{name}={response.headers.get(name)!r}")
    return wrong


def test_every_kind_of_response_carries_the_security_headers(ui):
    app, _engine = ui
    anonymous = app.test_client()
    auditor = signed_in(app, "auditor")
    responses = {
        "page": auditor.get("/instances"),
        "redirect to sign-in": anonymous.get("/instances"),
        "403": auditor.get("/submit"),
        "404": auditor.get("/instances/no-such-instance"),
        "api 401": anonymous.get("/api/v1/instances"),
        "api 200": auditor.get("/api/v1/instances"),
        "login page": anonymous.get("/login"),
        "static": anonymous.get("/code.css"),
    }
    codes = {what: r.status_code for what, r in responses.items()}
    assert codes == {"page": 200, "redirect to sign-in": 302, "403": 403, "404": 404, "api 401": 401,
                     "api 200": 200, "login page": 200, "static": 200}
    wrong = {what: _headers_ok(r) for what, r in responses.items() if _headers_ok(r)}
    assert not wrong, wrong
    assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP and "unsafe-" not in CSP


def test_public_endpoints_accept_only_their_methods(ui):
    app, _engine = ui
    methods = {rule.endpoint: sorted(rule.methods - {"HEAD", "OPTIONS"}) for rule in app.url_map.iter_rules()
               if rule.endpoint in ("auth.login", "auth.logout", "api.openapi", "instances.code_css", "static")}
    assert methods == {"auth.login": ["GET", "POST"], "auth.logout": ["POST"], "api.openapi": ["GET"],
                       "instances.code_css": ["GET"], "static": ["GET"]}
    client = signed_in(app, "auditor")
    assert client.get("/logout").status_code == 405
    assert client.get("/instances").status_code == 200     # still signed in


def test_a_cookie_signed_with_the_raw_secret_key_is_refused(ui):
    app, _engine = ui
    client = signed_in(app, "auditor")
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    payload = serializer.loads(client.get_cookie("session").value)
    assert payload.get("_user_id")
    raw = Flask("forger")
    raw.secret_key = RAW_SECRET
    forged = SecureCookieSessionInterface().get_signing_serializer(raw).dumps(payload)
    assert app.secret_key != RAW_SECRET
    attacker = app.test_client()
    attacker.set_cookie("session", forged)
    response = attacker.get("/instances")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    # the same payload under the app's own key is a session: only the key made the difference
    genuine = app.test_client()
    genuine.set_cookie("session", serializer.dumps(payload))
    assert genuine.get("/instances").status_code == 200


def _throttled_app(tmp_path, now: list[float], window_s: float = 60.0):
    app, engine = make_ui(tmp_path)
    app.extensions["scopeflow.login_throttle"] = LoginThrottle(window_s=window_s, clock=lambda: now[0])
    return app


def _guesser(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_throttled_client_may_sign_in_again_exactly_when_its_oldest_failure_leaves_the_window(tmp_path):
    now = [5000.0]
    app = _throttled_app(tmp_path, now)
    guesser = _guesser(app, "203.0.113.20")
    for _ in range(MAX_FAILURES):
        assert login(guesser, "auditor", "wrong-password").status_code == 401
        now[0] += 1
    refused = login(guesser, "auditor")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "56"     # the first failure (t=5000) leaves at t=5060
    now[0] = 5059.5
    assert login(guesser, "auditor").status_code == 429
    now[0] = 5060.0                                     # the window is (now - 60, now]: 5000 is out
    assert login(guesser, "auditor").status_code == 302


def test_the_throttle_forgets_the_client_with_the_oldest_failure_first(tmp_path, monkeypatch):
    monkeypatch.setattr(auth_throttle, "MAX_CLIENTS", 2)
    now = [100.0]
    app = _throttled_app(tmp_path, now, window_s=3600)
    old, middle, new = (_guesser(app, f"198.51.100.{n}") for n in (1, 2, 3))
    for client in (old, middle, new):
        for _ in range(MAX_FAILURES):
            login(client, "auditor", "wrong-password")
        now[0] += 10
    throttle = app.extensions["scopeflow.login_throttle"]
    assert len(throttle._failures) == 2                 # bounded: one client was forgotten
    assert login(old, "auditor").status_code == 302     # the oldest failures went first
    assert login(middle, "auditor").status_code == 429
    assert login(new, "auditor").status_code == 429
    assert csrf(new)                                     # the sign-in page itself is never throttled
