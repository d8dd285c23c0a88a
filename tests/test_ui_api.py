"""The JSON API: bearer tokens and cookie sessions (with CSRF), role checks, JSON errors, and an
OpenAPI 3.1 document that describes exactly the routes that exist."""

from __future__ import annotations

import re

import pytest

from scopeflow.engine.accounts import issue_api_token
from scopeflow.engine.models import HumanTask
from tests.test_ui_support import make_ui, signed_in, wait_for_status


@pytest.fixture
def api(tmp_path):
    app, engine = make_ui(tmp_path)
    tokens = {role: issue_api_token(engine.sessions, role) for role in ("submitter", "reviewer", "auditor",
                                                                          "designer", "admin")}
    client = app.test_client()

    def call(method: str, url: str, role: str, **kwargs):
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        return client.open(url, method=method, headers=headers, **kwargs)

    return app, engine, call


def test_submit_list_show_and_complete_through_the_api(api):
    _app, engine, call = api
    created = call("POST", "/api/v1/instances", "submitter",
                   json={"title": "T", "scope": "# T\n\n## Entities\n- Book: title (text)\n"})
    assert created.status_code == 201, created.get_json()
    instance_id = created.get_json()["id"]
    assert created.get_json()["tasks"][0]["bpmn_id"] == "confirm_scope"
    listed = call("GET", "/api/v1/instances?status=waiting", "auditor").get_json()
    assert listed["total"] == 1 and listed["instances"][0]["id"] == instance_id
    tasks = call("GET", "/api/v1/tasks", "submitter").get_json()["tasks"]
    assert [t["bpmn_id"] for t in tasks] == ["confirm_scope"]
    assert call("GET", "/api/v1/tasks", "reviewer").get_json()["tasks"] == []
    detail = call("GET", f"/api/v1/tasks/{tasks[0]['id']}", "submitter").get_json()
    assert detail["form_schema"]["x-variable"] == "scope_confirmation"
    wrong = call("POST", f"/api/v1/tasks/{tasks[0]['id']}/complete", "submitter", json={"data": {"confirmed": "yes"}})
    assert wrong.status_code == 400 and "invalid" in wrong.get_json()["error"]
    forbidden = call("POST", f"/api/v1/tasks/{tasks[0]['id']}/complete", "reviewer", json={"data": {}})
    assert forbidden.status_code == 403


def test_bad_submissions_are_400_with_a_message(api):
    _app, _engine, call = api
    assert call("POST", "/api/v1/instances", "submitter", json={"scope": ""}).get_json()["error"] == \
        "scope: scope is empty"
    assert call("POST", "/api/v1/instances", "submitter", data="nope").status_code == 400
    assert call("POST", "/api/v1/instances", "submitter", json={"scope": 3}).status_code == 400
    assert call("POST", "/api/v1/instances", "auditor", json={"scope": "x"}).status_code == 403
    assert call("GET", "/api/v1/instances?status=zzz", "auditor").status_code == 400
    for body, message in [({"scope": "x", "options": 3}, "options must be an object"),
                          ({"scope": "x", "options": ["fast"]}, "options must be an object"),
                          ({"scope": "x", "title": 7}, "title must be a string")]:
        answer = call("POST", "/api/v1/instances", "submitter", json=body)
        assert answer.status_code == 400 and message in answer.get_json()["error"], body


HOSTILE_BODIES = [None, "nope", [], 3, {"data": 3}, {"data": []}, {"data": {"decision": {"$ne": 1}}},
                  {"data": {"decision": "x" * 200_000}}, {"scope": None}, {"scope": "x", "options": "fast"},
                  {"scope": "x", "options": {"mode": ["a"]}}, {"scope": "\x00" * 10}, {"title": {"a": 1}}]


def test_no_body_makes_an_api_route_answer_500(api):
    """Every POST route of the API, given each hostile body, answers a 4xx JSON error (or succeeds)."""
    app, engine, call = api
    instance_id = engine.start("approval", {"requester": "a"}, actor="x")
    with engine.sessions() as session:
        task_id = session.query(HumanTask.id).filter_by(instance_id=instance_id).scalar()
    posts = [rule.rule.replace("<task_id>", task_id).replace("<instance_id>", instance_id)
             for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/") and "POST" in rule.methods]
    assert {"/api/v1/instances", f"/api/v1/tasks/{task_id}/complete"} <= set(posts)
    for url in posts:
        for body in HOSTILE_BODIES:
            kwargs = {"data": body} if isinstance(body, str) else {"json": body}
            answer = call("POST", url, "admin", **kwargs)
            assert answer.status_code < 500, (url, body, answer.get_data(as_text=True)[:300])
            if answer.status_code >= 400:
                assert answer.is_json and answer.get_json()["error"], (url, body)


def test_spans_and_evidence_for_auditors(api):
    _app, engine, call = api
    instance_id = engine.start("approval", {"requester": "a"}, actor="x")
    spans = call("GET", f"/api/v1/instances/{instance_id}/spans", "auditor").get_json()["spans"]
    assert spans and all(s["instance_id"] == instance_id for s in spans)
    evidence = call("GET", f"/api/v1/instances/{instance_id}/evidence", "auditor").get_json()
    assert evidence["integrity"]["ok"] is True and evidence["problem"] == "this model version has no evidence rules"
    assert call("GET", f"/api/v1/instances/{instance_id}/spans", "submitter").status_code == 403


def test_cookie_session_posts_need_the_csrf_header(api):
    app, engine, _call = api
    instance_id = engine.start("approval", {"requester": "a"}, actor="x")
    with engine.sessions() as session:
        task_id = session.query(HumanTask).filter_by(instance_id=instance_id).one().id
    client = signed_in(app, "reviewer")
    refused = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {"decision": "approve"}})
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["error"]
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    done = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {"decision": "approve"}},
                       headers={"X-CSRFToken": token})
    assert done.status_code == 200 and done.get_json()["instance_status"] == "running"
    wait_for_status(engine, instance_id, "completed")  # advanced in the background


def test_openapi_document_describes_every_api_route(api):
    app, _engine, _call = api
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    routes = set()
    for rule in app.url_map.iter_rules():
        path = str(rule)
        if path.startswith("/api/v1/") and path != "/api/v1/openapi.json":
            routes.add((re.sub(r"<(?:\w+:)?\w+>", "{id}", path[len("/api/v1"):]),
                        frozenset(rule.methods - {"HEAD", "OPTIONS"})))
    documented = {(path, frozenset(m.upper() for m in ops)) for path, ops in doc["paths"].items()}
    by_path: dict[str, set] = {}
    for path, methods in routes:
        by_path.setdefault(path, set()).update(methods)
    assert {(p, frozenset(m)) for p, m in by_path.items()} == documented
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            assert operation["responses"] and all("description" in r for r in operation["responses"].values())
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(doc).replace("'", '"'))
    assert refs and all(name in doc["components"]["schemas"] for name in refs)
