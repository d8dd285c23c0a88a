"""Every route × every role: who gets 200 (or the route's success code), who gets 403, and what
an anonymous visitor gets (pages: redirect to sign-in; API: 401)."""

from __future__ import annotations

import shutil

import pytest

from scopeflow.engine.accounts import create_user, issue_api_token
from scopeflow.engine.models import ROLES, HumanTask, Instance
from scopeflow.engine.queries import list_tasks
from tests.conftest import MODELS
from tests.test_ui_support import PASSWORD, csrf, make_ui, signed_in

VIEWERS = {"submitter", "operator", "reviewer", "auditor"}
AUDITORS = {"auditor", "operator", "reviewer"}   # reviewers read the trace of what they approve
WORKERS = {"submitter", "operator", "reviewer"}
EVERYONE = set(ROLES)

# (url, roles allowed, code for an allowed role)
GET_MATRIX = [
    ("/instances", VIEWERS, 200),
    ("/instances/{iid}", VIEWERS, 200),
    ("/instances/{iid}/state.json", VIEWERS, 200),
    ("/instances/{iid}/workspace.zip", VIEWERS, 200),
    ("/instances/{iid}/files", VIEWERS, 200),
    ("/instances/{iid}/files/missing.txt", VIEWERS, 404),
    ("/instances/{iid}/trace", AUDITORS, 200),
    ("/instances/{iid}/trace/otlp.json", AUDITORS, 200),
    ("/instances/{iid}/evidence.json", AUDITORS, 200),
    ("/tasks", WORKERS, 200),
    ("/tasks/{tid}", {"reviewer"}, 200),
    ("/submit", {"submitter"}, 200),
    ("/models", {"designer"}, 200),
    ("/models/approval/1", {"designer"}, 200),
    ("/models/approval/1/edit", {"designer"}, 200),
    ("/models/approval/1/files/examples/approval.bpmn", {"designer"}, 200),
    ("/models/approval/diff?a=1&b=1", {"designer"}, 200),
    ("/models/upload", {"designer"}, 200),
    ("/account", EVERYONE, 200),
    ("/api/v1/instances", VIEWERS, 200),
    ("/api/v1/instances/{iid}", VIEWERS, 200),
    ("/api/v1/instances/{iid}/spans", AUDITORS, 200),
    ("/api/v1/instances/{iid}/evidence", AUDITORS, 200),
    ("/api/v1/tasks", WORKERS, 200),
    ("/api/v1/tasks/{tid}", {"reviewer"}, 200),
    ("/api/v1/models", {"designer"}, 200),
]

# POSTs a wrong role must not get through (checked before any work is done).
POST_MATRIX = [
    ("/submit", {"submitter"}),
    ("/submit/preview", {"submitter"}),
    ("/instances/{iid}/retry", {"operator"}),
    ("/instances/{iid}/cancel", {"operator"}),
    ("/tasks/{tid}", {"reviewer"}),
    ("/tasks/{tid}/claim", {"reviewer"}),
    ("/tasks/{tid}/unclaim", {"reviewer"}),
    ("/models/upload", {"designer"}),
    ("/models/approval/1/save", {"designer"}),
    ("/models/approval/1/simulate", {"designer"}),
    ("/models/approval/deploy", {"designer"}),
    ("/models/approval/1/start", {"submitter"}),
]

PUBLIC = {"/login", "/logout", "/api/v1/openapi.json", "/static/<path:filename>", "/", "/code.css"}


def started_approval(engine) -> tuple[str, str]:
    """(instance id, id of its open task) of a new ``approval`` instance started by the submitter."""
    iid = engine.start("approval", {"requester": "alice"}, actor="submitter", title="Approve it")
    with engine.sessions() as session:
        return iid, list_tasks(session, instance_id=iid)[0]["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app, engine = make_ui(tmp_path_factory.mktemp("routes"))
    iid, tid = started_approval(engine)
    clients = {role: signed_in(app, role) for role in ROLES}
    return app, clients, {"iid": iid, "tid": tid}


@pytest.mark.parametrize("url,allowed,ok", GET_MATRIX, ids=[u for u, _a, _o in GET_MATRIX])
def test_get_route_by_role(world, url, allowed, ok):
    app, clients, ids = world
    target = url.format(**ids)
    for role in ROLES:
        expected = ok if role in allowed or role == "admin" else 403
        got = clients[role].get(target).status_code
        assert got == expected, f"{role} GET {target}: {got}, expected {expected}"
    anonymous = app.test_client().get(target).status_code
    assert anonymous == (401 if target.startswith("/api/") or target.endswith(".json") else 302)


@pytest.mark.parametrize("url,allowed", POST_MATRIX, ids=[u for u, _a in POST_MATRIX])
def test_post_route_refuses_other_roles(world, url, allowed):
    _app, clients, ids = world
    target = url.format(**ids)
    for role in ROLES:
        if role in allowed or role == "admin":
            continue
        client = clients[role]
        got = client.post(target, data={"csrf_token": csrf(client, "/account")}).status_code
        assert got == 403, f"{role} POST {target}: {got}, expected 403"


def test_every_route_is_in_the_matrix(world):
    app, _clients, _ids = world
    covered = {u.split("?")[0] for u, _a, _o in GET_MATRIX} | {u for u, _a in POST_MATRIX}
    normalised = set()
    for rule in app.url_map.iter_rules():
        path = (str(rule).replace("<instance_id>", "{iid}").replace("<task_id>", "{tid}")
                .replace("<name>", "approval").replace("<int:number>", "1"))
        normalised.add(path)
    dynamic = {"/instances/{iid}/files/<path:relative>", "/models/approval/1/files/<path:path>",
               "/api/v1/tasks/{tid}/complete"}
    missing = normalised - covered - PUBLIC - dynamic
    assert not missing, f"routes without a role expectation: {sorted(missing)}"


def test_unknown_ids_are_404_pages_and_json_for_the_api(world):
    _app, clients, _ids = world
    page = clients["admin"].get("/instances/nope")
    assert page.status_code == 404 and "unknown instance nope" in page.get_data(as_text=True)
    api = clients["admin"].get("/api/v1/instances/nope")
    assert api.status_code == 404 and api.get_json() == {"error": "unknown instance nope"}
    assert clients["admin"].get("/tasks/nope").status_code == 404
    assert clients["admin"].get("/models/approval/99").status_code == 404


def test_forbidden_api_answer_is_json(world):
    _app, clients, ids = world
    response = clients["designer"].get(f"/api/v1/instances/{ids['iid']}")
    assert response.status_code == 403 and response.get_json()["error"]


@pytest.mark.parametrize("role,links", [
    ("designer", {"/models"}), ("auditor", {"/instances"}), ("submitter", {"/submit", "/instances", "/tasks"}),
    ("admin", {"/submit", "/instances", "/tasks", "/models"}),
])
def test_navigation_offers_only_what_the_role_may_open(world, role, links):
    _app, clients, _ids = world
    page = clients[role].get("/account").get_data(as_text=True)
    nav = page.split("<nav>", 1)[1].split("</nav>", 1)[0]
    offered = {href for href in ("/submit", "/instances", "/tasks", "/models") if f'href="{href}"' in nav}
    assert offered == links


# ------------------------------------------------------------------------------ ownership
# Submitters see and act on their own instances only; operators, reviewers and auditors see every
# instance by role (the matrix above proves it: its instance was started by "submitter").

# (url, alice's code): the owner gets the route's code when submitters may open it (the task is in
# the submitter lane here), else 403 by role.
OWNED_GET = [(url, ok if "submitter" in allowed or "{tid}" in url else 403)
             for url, allowed, ok in GET_MATRIX if "{iid}" in url or "{tid}" in url]
OWNED_POST = ["/tasks/{tid}", "/tasks/{tid}/claim", "/tasks/{tid}/unclaim"]


@pytest.fixture(scope="module")
def owned(tmp_path_factory):
    """alice's approval instance whose task is in the submitter lane; bob is another submitter."""
    models = tmp_path_factory.mktemp("models") / "bpmn-models"
    shutil.copytree(MODELS, models)
    path = models / "examples" / "approval.bpmn"
    xml = path.read_text(encoding="utf-8").replace("<bpmn:flowNodeRef>approve</bpmn:flowNodeRef>", "")
    path.write_text(xml.replace("<bpmn:flowNodeRef>start</bpmn:flowNodeRef>",
                                "<bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>approve</bpmn:flowNodeRef>"),
                    encoding="utf-8")
    app, engine = make_ui(tmp_path_factory.mktemp("owned"), models_dir=models)
    for name in ("alice", "bob"):
        create_user(engine.sessions, name, ["submitter"], PASSWORD)
    iid = engine.start("approval", {"requester": "alice"}, actor="alice", title="Alice's request")
    with engine.sessions() as session:
        task = list_tasks(session, instance_id=iid)[0]
    assert task["role"] == "submitter"
    clients = {name: signed_in(app, name) for name in ("alice", "bob", "operator", "reviewer", "auditor")}
    tokens = {name: issue_api_token(engine.sessions, name) for name in ("alice", "bob")}
    return app, engine, clients, tokens, {"iid": iid, "tid": task["id"]}


@pytest.mark.parametrize("url,alice", OWNED_GET, ids=[u for u, _c in OWNED_GET])
def test_another_submitter_is_refused_every_instance_and_task_route(owned, url, alice):
    _app, _engine, clients, _tokens, ids = owned
    target = url.format(**ids)
    assert clients["alice"].get(target).status_code == alice
    theirs = clients["bob"].get(target)
    assert theirs.status_code == 403, f"bob GET {target}: {theirs.status_code}"
    if alice != 403:   # the route is open to submitters: bob's 403 is the ownership check
        assert "belongs to another submitter" in theirs.get_data(as_text=True)


@pytest.mark.parametrize("url", OWNED_POST)
def test_another_submitter_cannot_claim_or_complete_the_task(owned, url):
    _app, engine, clients, _tokens, ids = owned
    client = clients["bob"]
    response = client.post(url.format(**ids), data={"csrf_token": csrf(client, "/account"), "decision": "approve"})
    assert response.status_code == 403
    with engine.sessions() as session:
        task = list_tasks(session, status=None, instance_id=ids["iid"])[0]
    assert task["status"] == "open" and task["assignee"] is None


def test_another_submitters_bearer_token_cannot_read_or_complete_the_task(owned):
    app, engine, _clients, tokens, ids = owned
    client = app.test_client()

    def call(method: str, url: str, who: str, **kwargs):
        return client.open(url, method=method, headers={"Authorization": f"Bearer {tokens[who]}"}, **kwargs)

    for url in (f"/api/v1/instances/{ids['iid']}", f"/api/v1/tasks/{ids['tid']}"):
        assert call("GET", url, "bob").status_code == 403
    refused = call("POST", f"/api/v1/tasks/{ids['tid']}/complete", "bob", json={"data": {"decision": "approve"}})
    assert refused.status_code == 403 and refused.get_json() == {"error": "this instance belongs to another submitter"}
    with engine.sessions() as session:
        assert list_tasks(session, status=None, instance_id=ids["iid"])[0]["status"] == "open"
    assert call("GET", f"/api/v1/tasks/{ids['tid']}", "alice").status_code == 200


@pytest.mark.parametrize("url,key", [("/api/v1/instances", "instances"), ("/api/v1/tasks", "tasks")])
def test_lists_show_a_submitter_only_their_own(owned, url, key):
    _app, _engine, clients, _tokens, ids = owned
    own = ids["iid"] if key == "instances" else ids["tid"]
    listed = {who: {row["id"] for row in clients[who].get(url).get_json()[key]} for who in ("alice", "bob")}
    assert own in listed["alice"] and own not in listed["bob"]
    if key == "instances":
        assert clients["bob"].get(url).get_json()["total"] == 0
        for role in ("operator", "reviewer", "auditor"):
            assert own in {row["id"] for row in clients[role].get(url).get_json()[key]}, role


@pytest.mark.parametrize("url", ["/instances", "/tasks"])
def test_list_pages_show_a_submitter_only_their_own(owned, url):
    _app, _engine, clients, _tokens, ids = owned
    own = ids["iid"] if url == "/instances" else ids["tid"]
    assert own in clients["alice"].get(url).get_data(as_text=True)
    assert own not in clients["bob"].get(url).get_data(as_text=True)


def test_every_instance_and_task_route_is_in_the_ownership_tests(owned):
    app = owned[0]
    covered = {u.split("?")[0] for u, _c in OWNED_GET} | set(OWNED_POST) | {
        "/instances/{iid}/files/<path:relative>",          # as /files/missing.txt above
        "/api/v1/tasks/{tid}/complete",                     # the bearer-token test
        "/instances/{iid}/retry", "/instances/{iid}/cancel",  # operators only: every instance by role
    }
    routes = {str(r).replace("<instance_id>", "{iid}").replace("<task_id>", "{tid}") for r in app.url_map.iter_rules()
              if "<instance_id>" in str(r) or "<task_id>" in str(r)}
    assert routes - covered == set()


HOSTILE_FORMS = [{}, {"scope": ""}, {"scope": "\x00" * 5, "title": "t" * 5000}, {"data": "{bad"}, {"decision": ["a", "b"]},
                 {"options": "zzz", "mode": "evil"}, {"xml": "<not-bpmn"}, {"data": "[]", "answers": "{}"},
                 {"password": "", "new_password": "x"}, {"values": "\ufffe\u202e"}]


def test_no_form_makes_a_page_answer_500(tmp_path):
    """Every POST route of the pages, given each hostile form (with a valid CSRF token), answers a
    redirect, a page or a 4xx — never a 500 (the engine's state is left as it was)."""
    from tests.test_ui_support import csrf, make_ui, signed_in

    app, engine = make_ui(tmp_path)
    instance_id = engine.start("approval", {"requester": "a"}, actor="x")
    with engine.sessions() as session:
        task_id = session.query(HumanTask.id).filter_by(instance_id=instance_id).scalar()
    client = signed_in(app, "admin")
    fill = {"<instance_id>": instance_id, "<task_id>": task_id, "<name>": "approval", "<int:number>": "1"}
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and not rule.rule.startswith("/api/") and rule.rule not in ("/logout", "/login"):
            url = rule.rule
            for hole, value in fill.items():
                url = url.replace(hole, value)
            urls.append(url)
    assert f"/tasks/{task_id}" in urls and "/submit" in urls and len(urls) >= 12
    for url in urls:
        for form in HOSTILE_FORMS:
            answer = client.post(url, data={**form, "csrf_token": csrf(client, "/account")})
            assert answer.status_code < 500, (url, form, answer.get_data(as_text=True)[:300])
    with engine.sessions() as session:
        assert session.get(Instance, instance_id).status in ("waiting", "cancelled", "running", "completed")
