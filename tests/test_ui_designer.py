"""The designer: upload (lint first, nothing stored on errors), edit → new version, diff, download."""

from __future__ import annotations

import io
import json
import re

import pytest

from scopeflow.engine.models import ModelVersion
from tests.conftest import MODELS
from tests.test_ui_support import csrf, make_ui, signed_in

HELLO = (MODELS / "examples" / "hello.bpmn").read_text()


@pytest.fixture
def designer(tmp_path):
    app, engine = make_ui(tmp_path)
    engine.deploy(["approval"])
    return app, engine, signed_in(app, "designer")


def _upload(client, name: str, content: bytes):
    return client.post("/models/upload", content_type="multipart/form-data",
                       data={"csrf_token": csrf(client, "/models/upload"), "bpmn": (io.BytesIO(content), name)})


def _versions(engine, name: str) -> list[int]:
    with engine.sessions() as session:
        return sorted(session.query(ModelVersion.version).filter_by(name=name).all())


def test_a_clean_upload_is_linted_and_stored(designer):
    app, engine, client = designer
    text = HELLO.replace('id="hello"', 'id="hello_copy"').replace('bpmnElement="hello"', 'bpmnElement="hello_copy"')
    response = _upload(client, "hello_copy.bpmn", text.encode())
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "Lint found no error" in body and "hello_copy v1" in body
    assert _versions(engine, "hello_copy") == [(1,)]


def test_a_non_bpmn_upload_is_refused_and_nothing_is_stored(designer):
    _app, engine, client = designer
    response = _upload(client, "junk.bpmn", b"this is not XML <script>alert(1)</script>")
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and 'class="field-error"' in body and "<script>alert(1)" not in body
    assert _upload(client, "notes.txt", HELLO.encode()).status_code == 400
    with engine.sessions() as session:
        assert session.query(ModelVersion).count() == 1     # only approval, deployed by the fixture


def test_lint_errors_name_the_element_and_store_nothing(designer):
    _app, engine, client = designer
    text = (HELLO.replace('id="hello"', 'id="hello_bad"').replace('bpmnElement="hello"', 'bpmnElement="hello_bad"')
            .replace('serviceTaskOperator id="echo" resultVariable="greeting"',
                     'serviceTaskOperator id="no_such_operator" resultVariable="greeting"'))
    response = _upload(client, "hello_bad.bpmn", text.encode())
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "nothing was stored" in body and 'data-element="greet"' in body
    state = json.loads(re.search(r'id="diagram-state">(.*?)</script>', body).group(1))
    assert state["elements"]["greet"]["state"] == "error"
    assert _versions(engine, "hello_bad") == []


def test_an_edit_is_stored_as_a_new_version_and_diffed(designer):
    _app, engine, client = designer
    with engine.sessions() as session:
        v1 = session.query(ModelVersion).filter_by(name="approval", version=1).one()
        path, xml = "examples/approval.bpmn", v1.files["examples/approval.bpmn"]
    edited = xml.replace('name="Approve request"', 'name="Approve the request"')
    token = csrf(client, "/models/approval/1/edit")
    saved = client.post("/models/approval/1/save", data={"csrf_token": token, "path": path, "xml": edited})
    assert saved.status_code == 200 and saved.get_json()["stored"][0]["version"] == 2
    diff = client.get("/models/approval/diff?a=1&b=2").get_data(as_text=True)
    assert "<code>approve</code>" in diff and "Approve the request" in diff
    broken = client.post("/models/approval/1/save", data={"csrf_token": token, "path": path, "xml": "<nope"})
    assert broken.status_code == 400 and broken.get_json()["ok"] is False
    assert _versions(engine, "approval") == [(1,), (2,)]


def test_versions_list_view_and_download(designer):
    _app, _engine, client = designer
    assert "v1" in client.get("/models").get_data(as_text=True)
    page = client.get("/models/approval/1").get_data(as_text=True)
    assert 'id="diagram-xml"' in page and "examples/approval.bpmn" in page
    download = client.get("/models/approval/1/files/examples/approval.bpmn")
    assert download.status_code == 200 and b'id="approval"' in download.data
    assert "attachment" in download.headers["Content-Disposition"]
    assert client.get("/models/approval/1/files/nope.bpmn").status_code == 404


def test_the_simulate_button_test_runs_a_version_in_memory(designer):
    _app, engine, client = designer
    page = client.get("/models/approval/1").get_data(as_text=True)
    assert "/models/approval/1/simulate" in page and ">Simulate</button>" in page
    token = csrf(client, "/models/approval/1")
    response = client.post("/models/approval/1/simulate", data={"csrf_token": token})
    body = response.get_data(as_text=True)
    # The start form requires a requester and has no default: the simulation says so and stops.
    assert response.status_code == 422 and "start data: form approval.start.schema.json needs requester" in body
    assert client.post("/models/approval/1/simulate").status_code == 400       # no CSRF token
    with engine.sessions() as session:
        assert session.query(ModelVersion).count() == 1


def test_an_iso_8859_1_upload_is_read_in_its_declared_encoding(designer):
    _app, engine, client = designer
    text = (HELLO.replace('id="hello"', 'id="hello_latin"').replace('bpmnElement="hello"', 'bpmnElement="hello_latin"')
            .replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').replace('name="Greet"', 'name="Gr\u00fc\u00dfen"'))
    response = _upload(client, "hello_latin.bpmn", text.encode("iso-8859-1"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _versions(engine, "hello_latin") == [(1,)]


def test_a_version_saved_in_the_designer_is_what_new_instances_run_until_the_disk_changes(tmp_path, models_dir):
    from scopeflow.engine.models import Instance

    app, engine = make_ui(tmp_path, models_dir=models_dir)
    engine.deploy(["approval"])
    client = signed_in(app, "designer")
    with engine.sessions() as session:
        xml = session.query(ModelVersion).filter_by(name="approval", version=1).one().files["examples/approval.bpmn"]
    token = csrf(client, "/models/approval/1/edit")
    saved = client.post("/models/approval/1/save", data={"csrf_token": token, "path": "examples/approval.bpmn",
                                                          "xml": xml.replace('name="Approve request"', 'name="Approve it"')})
    assert saved.get_json()["stored"][0]["version"] == 2
    assert "new instances of approval run it" in client.get("/models/approval/2").get_data(as_text=True)
    first = engine.start("approval", {"requester": "ann"})
    on_disk = models_dir / "examples" / "approval.bpmn"
    on_disk.write_text(on_disk.read_text().replace('name="Approve request"', 'name="Approve on disk"'))
    second = engine.start("approval", {"requester": "bob"})
    with engine.sessions() as session:
        assert [session.get(Instance, i).model_version for i in (first, second)] == [2, 3]


def test_examples_deploy_and_start_from_the_model_pages_and_an_upload_can_be_a_new_version(tmp_path, models_dir):
    from scopeflow.engine.accounts import create_user

    app, engine = make_ui(tmp_path, models_dir=models_dir)
    create_user(engine.sessions, "dana", ["designer", "submitter"], "correct horse battery")
    client = signed_in(app, "dana")
    index = client.get("/models").get_data(as_text=True)
    assert 'action="/models/hello/deploy"' in index
    deployed = client.post("/models/hello/deploy", data={"csrf_token": csrf(client, "/models")})
    assert deployed.headers["Location"].endswith("/models/hello/1")
    page = client.get("/models/hello/1").get_data(as_text=True)
    assert 'id="start-form"' in page
    bad = client.post("/models/hello/1/start", data={"csrf_token": csrf(client, "/models/hello/1"), "data": "[1]"},
                      follow_redirects=True)
    assert "not started: the data must be a JSON object" in bad.get_data(as_text=True)
    started = client.post("/models/hello/1/start", data={"csrf_token": csrf(client, "/models/hello/1"), "data": ""})
    assert "/instances/" in started.headers["Location"]
    text = HELLO.replace('name="Greet"', 'name="Greet again"')
    assert text != HELLO
    upload = _upload(client, "my-hello.bpmn", text.encode())
    assert upload.status_code == 200, upload.get_data(as_text=True)
    assert _versions(engine, "hello") == [(1,), (2,)]
