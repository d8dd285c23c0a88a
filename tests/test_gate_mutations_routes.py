"""The route table: every route of the app is either explicitly public or names the roles it admits,
and each of those refusals happens in a real request.

``tests/test_ui_routes.py`` checks each page and API route per role with the methods its matrices
list. This file is derived from the app's own URL map instead, so a route added without
``requires(...)``, a method added to a route, or a role list widened in a decorator turns it red:

* the set of public endpoints is exactly :data:`PUBLIC_ENDPOINTS`;
* every other endpoint's declared roles equal :data:`EXPECTED_ROLES` (what each role may do);
* every (route, method) pair refuses an anonymous visitor (pages: redirect to sign-in; API and
  ``.json``: 401), with a valid CSRF token so the refusal is the role gate's, not CSRF's;
* every (route, method) pair answers 403 to each signed-in role it does not admit (admin passes).
"""

from __future__ import annotations

import pytest

from scopeflow.engine.models import ROLES
from tests.test_ui_routes import started_approval
from tests.test_ui_support import csrf, make_ui, signed_in

VIEWERS = ("submitter", "operator", "reviewer", "auditor")
WORKERS = ("submitter", "operator", "reviewer")
AUDITORS = ("auditor", "operator", "reviewer")

PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.logout", "instances.code_css", "api.openapi"}

# endpoint -> the roles its decorator admits (() = any signed-in account)
EXPECTED_ROLES = {
    "auth.home": (), "auth.account": (),
    "submit.form": ("submitter",), "submit.preview": ("submitter",),
    "instances.index": VIEWERS, "instances.show": VIEWERS, "instances.state": VIEWERS,
    "instances.download_workspace": VIEWERS, "instances.files": VIEWERS, "instances.download_file": VIEWERS,
    "instances.retry": ("operator",), "instances.cancel": ("operator",),
    "tasks.inbox": WORKERS, "tasks.claim": WORKERS, "tasks.unclaim": WORKERS, "tasks.show": WORKERS,
    "trace.show": AUDITORS, "trace.otlp": AUDITORS, "trace.evidence_json": AUDITORS,
    "designer.index": ("designer",), "designer.show": ("designer",), "designer.download": ("designer",),
    "designer.upload": ("designer",), "designer.edit": ("designer",), "designer.save": ("designer",),
    "designer.deploy": ("designer",), "designer.start": ("submitter",), "designer.diff": ("designer",),
    "designer.simulate_version": ("designer",),
    "api.instances": VIEWERS, "api.submit": ("submitter",), "api.instance": VIEWERS, "api.spans": AUDITORS,
    "api.evidence": AUDITORS, "api.tasks": WORKERS, "api.task": WORKERS, "api.complete": WORKERS,
    "api.models": ("designer",),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app, engine = make_ui(tmp_path_factory.mktemp("route-table"))
    iid, tid = started_approval(engine)
    values = {"instance_id": iid, "task_id": tid, "name": "approval", "number": "1",
              "relative": "missing.txt", "path": "examples/approval.bpmn"}
    return app, values


def _gated(app) -> list[tuple[str, str, str]]:
    """(endpoint, url, method) for every non-public rule and method of the app."""
    pairs = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            pairs.append((rule.endpoint, rule, method))
    return pairs


def _url(rule, values: dict[str, str]) -> str:
    return rule.build({k: v for k, v in values.items() if k in rule.arguments}, append_unknown=False)[1]


def _request(client, url: str, method: str, token: str):
    if method == "GET":
        return client.get(url)
    if url.startswith("/api/"):
        return client.post(url, json={}, headers={"X-CSRFToken": token})
    return client.post(url, data={"csrf_token": token})


def test_public_endpoints_are_exactly_the_listed_ones(world):
    app, _values = world
    public = {endpoint for endpoint, view in app.view_functions.items() if not hasattr(view, "required_roles")}
    assert public == PUBLIC_ENDPOINTS


def test_every_gated_endpoint_declares_the_expected_roles(world):
    app, _values = world
    declared = {endpoint: tuple(view.required_roles) for endpoint, view in app.view_functions.items()
                if hasattr(view, "required_roles")}
    assert declared == EXPECTED_ROLES


def test_an_anonymous_visitor_is_refused_every_gated_route_and_method(world):
    app, values = world
    client = app.test_client()
    token = csrf(client, "/login")       # a valid token: the refusal must come from the role gate
    wrong = []
    for endpoint, rule, method in _gated(app):
        url = _url(rule, values)
        response = _request(client, url, method, token)
        json_route = url.startswith("/api/") or url.endswith(".json")
        if json_route:
            ok = response.status_code == 401
        else:
            ok = response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
        if not ok:
            wrong.append(f"{method} {url} ({endpoint}): {response.status_code}")
    assert not wrong, wrong


def test_every_role_outside_a_routes_list_gets_403_on_every_method(world):
    app, values = world
    clients = {role: signed_in(app, role) for role in ROLES}
    tokens = {role: csrf(client, "/account") for role, client in clients.items()}
    wrong, checked = [], 0
    for endpoint, rule, method in _gated(app):
        allowed = EXPECTED_ROLES[endpoint]
        if not allowed:
            continue
        url = _url(rule, values)
        for role in ROLES:
            if role in allowed or role == "admin":
                continue
            response = _request(clients[role], url, method, tokens[role])
            checked += 1
            if response.status_code != 403:
                wrong.append(f"{role} {method} {url} ({endpoint}): {response.status_code}")
    assert checked > 100 and not wrong, wrong
