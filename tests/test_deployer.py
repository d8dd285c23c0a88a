"""The deployer runs built apps as local releases: health-checked, rolled back, idempotent, and stoppable."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from scopeflow.handlers.app_content import tree_digest
from scopeflow.handlers.builder import build_task
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.deployer import check_credentials, deploy_release, releases_dir
from scopeflow.handlers.failures import CONFIGURATION, DESIGN_FLAW, EXTERNAL_BLOCKER, TaskFailure
from scopeflow.handlers.planner import make_plan, topological_order
from scopeflow.handlers.release import (
    FAILED,
    ROLLED_BACK,
    RUNNING,
    STOPPED,
    Release,
    list_releases,
    load_release,
    process_alive,
    stop_all,
    stop_release,
    terminate,
)
from scopeflow.handlers.spec import Entity, Field, Integration, Spec

TINY_APP = '''\
import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify({"status": __STATUS__}), __HTTP_CODE__


@app.get("/env")
def env():
    return jsonify(dict(os.environ))


__READS__
if __EXIT__ is not None:
    print("refusing to start: broken on purpose", flush=True)
    raise SystemExit(__EXIT__)
app.run(host=os.environ["HOST"], port=int(os.environ["PORT"]))
'''


def write_tiny_app(workspace: Path, status: str = "ok", code: int = 200, exit_code: int | None = None,
                   reads: str = "") -> Path:
    """A one-file Flask app in ``workspace/app`` whose /healthz answers ``code`` with ``status``;
    ``reads`` is code run at import (how a test makes the app read credentials)."""
    app = workspace / "app"
    app.mkdir(parents=True, exist_ok=True)
    source = TINY_APP.replace("__STATUS__", repr(status)).replace("__HTTP_CODE__", str(code))
    source = source.replace("__READS__", reads)
    source = source.replace("__EXIT__", repr(exit_code))
    (app / "run.py").write_text(source, encoding="utf-8")
    (app / "requirements.txt").write_text("Flask>=3.0,<4\n", encoding="utf-8")
    return app


def build_real_app(workspace: Path) -> Path:
    """The flask_app template pack's app for a one-entity spec, rendered by the planner and builder."""
    spec = Spec(title="Library", entities=[Entity(name="Book", label="Book", table="books", fields=[
        Field(name="title", label="Title", type="text", required=True)])])
    plan = make_plan(spec)
    ctx = RecordingContext(instance_id="build", task_id="build", bpmn_id="build", workspace=workspace)
    for task_id in topological_order(plan, [t for t in plan.tasks if t.buildable]):
        build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id=task_id)
    return workspace / "app"


def get_json(url: str) -> tuple[int, object]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture
def releases(tmp_path, monkeypatch) -> Path:
    """The releases root for one test; every process a test started is stopped afterwards, pass or fail."""
    root = tmp_path / "releases"
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(root))
    yield root
    stop_all(root, grace_s=2.0)
    for release in list_releases(root):
        terminate(release, grace_s=2.0)


@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def deploy(ctx, **kwargs):
    """``deploy_release`` given the digest the verifier records for the app as it is now."""
    app = Path(ctx.workspace) / kwargs.get("app_dir", "app")
    return deploy_release(ctx, verified_sha256=tree_digest(app) if app.is_dir() else "unverified", **kwargs)


def make_ctx(workspace: Path, instance_id: str = "inst-1", secrets: dict[str, str] | None = None):
    return RecordingContext(instance_id=instance_id, task_id="deploy", bpmn_id="deploy_release",
                            workspace=workspace, secret_names=("*",), secrets=dict(secrets or {}))


def test_releases_dir_comes_from_settings(releases):
    assert releases_dir() == releases


def test_generated_app_is_released_health_checked_listed_and_stopped(releases, workspace):
    build_real_app(workspace)
    ctx = make_ctx(workspace)

    release = deploy(ctx)["release"]

    assert get_json(release["url"] + "/healthz") == (200, {"status": "ok"})
    directory = Path(release["path"])
    assert directory.parent == releases.resolve() / "inst-1"
    for name in ("run.py", "requirements.txt", "run.sh", "Dockerfile", "release.json", "release.log"):
        assert (directory / name).is_file(), name
    assert 'CMD ["python", "run.py"]' in (directory / "Dockerfile").read_text()
    assert release["status"] == RUNNING and release["health"]["ok"] and release["health"]["status"] == 200
    assert ctx.recorded["scopeflow.deploy.release_id"] == release["id"]
    assert ctx.recorded["scopeflow.deploy.url"] == release["url"]
    assert ctx.recorded["scopeflow.deploy.health_ok"] is True
    [span] = ctx.child_spans
    assert span.name == "health check"
    assert span.attributes["scopeflow.deploy.port"] == release["port"]
    assert span.attributes["scopeflow.deploy.health_status"] == 200

    [listed] = list_releases(releases)
    assert (listed.id, listed.status, listed.pid) == (release["id"], RUNNING, release["pid"])

    stopped = stop_release(releases, release["id"])
    assert stopped.status == STOPPED
    assert gone(release["pid"])
    assert load_release(directory).status == STOPPED


def test_redeploying_the_same_files_returns_the_running_release(releases, workspace):
    write_tiny_app(workspace)
    first = deploy(make_ctx(workspace))["release"]
    ctx = make_ctx(workspace)

    second = deploy(ctx)["release"]

    assert second["id"] == first["id"] and second["pid"] == first["pid"]
    assert len(list_releases(releases)) == 1
    assert ctx.recorded["scopeflow.deploy.reused"] is True


def test_a_changed_app_replaces_the_previous_release(releases, workspace):
    write_tiny_app(workspace)
    first = deploy(make_ctx(workspace))["release"]
    (workspace / "app" / "NOTES.txt").write_text("a changed build\n")

    second = deploy(make_ctx(workspace))["release"]

    assert second["id"] != first["id"]
    statuses = {r.id: r.status for r in list_releases(releases)}
    assert statuses == {first["id"]: STOPPED, second["id"]: RUNNING}
    assert gone(first["pid"])
    assert get_json(second["url"] + "/healthz")[0] == 200


def test_unhealthy_release_fails_as_external_blocker_and_the_previous_one_keeps_serving(releases, workspace):
    write_tiny_app(workspace)
    good = deploy(make_ctx(workspace))["release"]
    write_tiny_app(workspace, status="error", code=500)
    ctx = make_ctx(workspace)

    with pytest.raises(TaskFailure) as caught:
        deploy(ctx)

    failure = caught.value
    assert failure.kind == EXTERNAL_BLOCKER
    assert failure.message.startswith("health check failed: HTTP 500")
    assert failure.details["rolled_back"] is True
    assert failure.details["active_release"]["id"] == good["id"]
    assert "GET /healthz" in failure.details["log_tail"]
    assert ctx.recorded["scopeflow.deploy.rolled_back"] is True
    assert ctx.recorded["scopeflow.deploy.health_ok"] is False
    statuses = {r.id: r.status for r in list_releases(releases)}
    assert statuses[good["id"]] == RUNNING
    bad_id = failure.details["release_id"]
    assert statuses[bad_id] == ROLLED_BACK
    assert not process_alive(load_release(releases / "inst-1" / bad_id))
    assert get_json(good["url"] + "/healthz") == (200, {"status": "ok"})


def test_rollback_starts_a_stopped_previous_release_again(releases, workspace):
    write_tiny_app(workspace)
    good = deploy(make_ctx(workspace))["release"]
    stop_release(releases, good["id"])
    write_tiny_app(workspace, exit_code=3)

    with pytest.raises(TaskFailure) as caught:
        deploy(make_ctx(workspace), health_timeout_s=5)

    assert caught.value.details["rolled_back"] is True
    restarted = caught.value.details["active_release"]
    assert restarted["id"] == good["id"] and restarted["status"] == RUNNING
    assert restarted["pid"] != good["pid"]
    assert get_json(restarted["url"] + "/healthz") == (200, {"status": "ok"})


def test_first_release_that_exits_fails_with_its_log_and_nothing_left_running(releases, workspace):
    write_tiny_app(workspace, exit_code=3)

    with pytest.raises(TaskFailure) as caught:
        deploy(make_ctx(workspace), health_timeout_s=5)

    failure = caught.value
    assert failure.kind == EXTERNAL_BLOCKER
    assert failure.message == "health check failed: process exited with code 3"
    assert "broken on purpose" in failure.details["log_tail"]
    assert failure.details["rolled_back"] is False and failure.details["active_release"] is None
    [release] = list_releases(releases)
    assert release.status == FAILED
    assert gone(release.pid)


SHOP_WITH_MAIL = Spec(title="Shop", integrations=[
    Integration(name="stripe", label="Stripe", credentials=["STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"]),
    Integration(name="mail", label="Mailer", credentials=["MAIL_FROM", "MAIL_PORT"]),
    Integration(name="payments", label="Payment gateway", credentials=["PAYMENT_API_KEY"]),
]).to_data()
READS_STRIPE_AND_MAIL = """
STRIPE_KEY = os.environ["STRIPE_API_KEY"]
MAIL_FROM = os.environ.get("MAIL_FROM", "shop@localhost")
MAIL_PORT = os.getenv("MAIL_PORT")
"""


def test_the_release_gets_only_the_credentials_its_code_reads(releases, workspace, monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_SECRET_KEY", "must-not-leak")
    write_tiny_app(workspace, reads=READS_STRIPE_AND_MAIL)
    stored = {"STRIPE_API_KEY": "sk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_456", "MAIL_FROM": "a@shop.test",
              "PAYMENT_API_KEY": "pk_789", "OTHER": "unused"}
    ctx = make_ctx(workspace, secrets=stored)

    release = deploy(ctx, spec=SHOP_WITH_MAIL)["release"]

    _, env = get_json(release["url"] + "/env")
    assert env["STRIPE_API_KEY"] == "sk_test_123" and env["MAIL_FROM"] == "a@shop.test"
    for unread in ("STRIPE_WEBHOOK_SECRET", "PAYMENT_API_KEY", "OTHER", "MAIL_PORT"):
        assert unread not in env      # declared (or stored) but not read, or read optionally and not stored
    assert not [key for key in env if key.startswith("SCOPEFLOW_")]
    assert env["HOST"] == "127.0.0.1" and env["PORT"] == str(release["port"])
    run_sh = Path(release["path"], "run.sh").read_text()
    assert "given to this release: STRIPE_API_KEY, MAIL_FROM\n" in run_sh
    assert ctx.recorded["scopeflow.credentials.passed"] == ["STRIPE_API_KEY", "MAIL_FROM"]
    assert not any(value in json.dumps(release) + run_sh for value in stored.values())


def test_deploy_without_a_credential_its_code_needs_is_a_configuration_failure(releases, workspace):
    write_tiny_app(workspace, reads=READS_STRIPE_AND_MAIL)

    with pytest.raises(TaskFailure) as caught:
        deploy(make_ctx(workspace, secrets={"MAIL_FROM": "a@shop.test"}), spec=SHOP_WITH_MAIL)

    assert caught.value.kind == CONFIGURATION and "STRIPE_API_KEY" in caught.value.message
    assert list_releases(releases) == []


def test_deploy_does_not_need_credentials_of_integrations_no_code_reads(releases, workspace):
    write_tiny_app(workspace)
    ctx = make_ctx(workspace)

    release = deploy(ctx, spec=SHOP_WITH_MAIL)["release"]

    _, env = get_json(release["url"] + "/env")
    assert not {"STRIPE_API_KEY", "MAIL_FROM", "PAYMENT_API_KEY"} & set(env)
    assert ctx.recorded["scopeflow.credentials.passed"] == []


@pytest.mark.parametrize("app_dir, message", [
    ("../elsewhere", "lies outside the workspace"),
    ("missing", "does not exist in the workspace"),
])
def test_bad_app_directory_is_a_design_flaw(releases, workspace, app_dir, message):
    with pytest.raises(TaskFailure, match=message) as caught:
        deploy(make_ctx(workspace), app_dir=app_dir)
    assert caught.value.kind == DESIGN_FLAW


def test_app_without_entry_point_or_with_symlinks_is_refused(releases, workspace):
    app = write_tiny_app(workspace)
    (app / "secrets.txt").symlink_to("/etc/hostname")
    with pytest.raises(TaskFailure, match="symbolic link"):
        deploy(make_ctx(workspace))
    (app / "secrets.txt").unlink()
    (app / "run.py").unlink()
    with pytest.raises(TaskFailure, match="no run.py to start") as caught:
        deploy(make_ctx(workspace))
    assert caught.value.kind == DESIGN_FLAW
    assert list_releases(releases) == []


def test_a_release_whose_process_died_is_listed_as_stopped(releases, workspace):
    write_tiny_app(workspace)
    release = deploy(make_ctx(workspace))["release"]

    os.killpg(release["pid"], signal.SIGKILL)
    wait_until(lambda: not process_alive(load_release(Path(release["path"]))))

    [listed] = list_releases(releases)
    assert listed.status == STOPPED
    assert load_release(Path(release["path"])).status == STOPPED


def test_stopping_an_unknown_release_is_a_key_error(releases):
    with pytest.raises(KeyError, match="no release 'nope'"):
        stop_release(releases, "nope")


def test_stop_all_stops_every_running_release(releases, workspace):
    write_tiny_app(workspace)
    one = deploy(make_ctx(workspace, "inst-1"))["release"]
    two = deploy(make_ctx(workspace, "inst-2"))["release"]

    stopped = stop_all(releases)

    assert {r.id for r in stopped} == {one["id"], two["id"]}
    assert gone(one["pid"]) and gone(two["pid"])


SHOP = Spec(title="Shop", integrations=[
    Integration(name="stripe", label="Stripe", credentials=["STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"]),
    Integration(name="mail", label="Mailer", credentials=["SMTP_PASSWORD", "STRIPE_API_KEY"]),
    Integration(name="ledger", label="Ledger", credentials=["LEDGER_TOKEN"]),
]).to_data()
READS_SHOP = """
import os
KEYS = (os.environ["STRIPE_API_KEY"], os.environ["STRIPE_WEBHOOK_SECRET"], os.environ["SMTP_PASSWORD"])
"""


def write_module(workspace: Path, source: str) -> None:
    (workspace / "app" / "integrations").mkdir(parents=True, exist_ok=True)
    (workspace / "app" / "integrations" / "shop.py").write_text(source, encoding="utf-8")


def test_check_credentials_lists_every_name_the_code_reads_once_when_all_are_stored(tmp_path):
    write_module(tmp_path, READS_SHOP)
    ctx = make_ctx(tmp_path, secrets={"STRIPE_API_KEY": "a", "STRIPE_WEBHOOK_SECRET": "b", "SMTP_PASSWORD": "c"})
    result = check_credentials(ctx, spec=SHOP)
    assert result["names"] == ["STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "SMTP_PASSWORD"]
    assert result["not_built"] == [{"integration": "Ledger", "names": ["LEDGER_TOKEN"]}]
    assert ctx.recorded["scopeflow.credentials.missing"] == 0
    assert ctx.recorded["scopeflow.credentials.not_built"] == ["LEDGER_TOKEN"]


def test_check_credentials_names_the_missing_ones_and_their_integrations(tmp_path):
    write_module(tmp_path, READS_SHOP)
    ctx = make_ctx(tmp_path, secrets={"STRIPE_WEBHOOK_SECRET": "b"})
    with pytest.raises(TaskFailure) as caught:
        check_credentials(ctx, spec=SHOP)
    failure = caught.value
    assert failure.kind == CONFIGURATION
    assert failure.message == "missing credential(s): STRIPE_API_KEY, SMTP_PASSWORD"
    assert failure.details == {"missing": ["STRIPE_API_KEY", "SMTP_PASSWORD"], "integrations": ["Mailer", "Stripe"]}
    assert ctx.recorded["scopeflow.credentials.missing"] == 2
    assert ctx.recorded["scopeflow.credentials.missing_names"] == ["STRIPE_API_KEY", "SMTP_PASSWORD"]


def test_check_credentials_waits_for_nothing_the_built_code_does_not_read(tmp_path):
    write_module(tmp_path, 'import os\nPORT = os.environ.get("STRIPE_API_KEY", "")\n')
    ctx = make_ctx(tmp_path)
    result = check_credentials(ctx, spec=SHOP)
    assert (result["required"], result["optional"], result["names"]) == ([], ["STRIPE_API_KEY"], [])
    assert [item["integration"] for item in result["not_built"]] == ["Ledger"]


def test_check_credentials_waits_for_an_undeclared_name_the_code_cannot_do_without(tmp_path):
    write_module(tmp_path, 'import os\nTOKEN = os.environ["GEO_TOKEN"]\nHOST = os.environ["HOST"]\n')
    with pytest.raises(TaskFailure) as caught:
        check_credentials(make_ctx(tmp_path), spec=Spec(title="x").to_data())
    assert caught.value.details == {"missing": ["GEO_TOKEN"], "integrations": ["the built code"]}


def test_check_credentials_with_no_integrations_is_ok(tmp_path):
    result = check_credentials(make_ctx(tmp_path), spec=Spec(title="x").to_data())
    assert result == {"ok": True, "names": [], "required": [], "optional": [], "not_built": []}


@pytest.mark.parametrize("spec", [
    {"title": "x", "integrations": [{"name": "bad", "label": "Bad", "credentials": ["A; rm -rf /"]}]},
    {"title": "x", "unknown": 1},
    {"integrations": []},
])
def test_check_credentials_rejects_malformed_specs_in_one_line(tmp_path, spec):
    with pytest.raises(TaskFailure) as caught:
        check_credentials(make_ctx(tmp_path), spec=spec)
    assert caught.value.kind == DESIGN_FLAW
    assert "\n" not in caught.value.message


def test_a_release_whose_server_exited_but_was_not_collected_is_not_alive(tmp_path):
    """A server started by another process (the CLI) stays a zombie after SIGTERM until its parent
    collects it: it still answers kill(pid, 0), but it serves nothing and is not alive."""
    import dataclasses
    import subprocess
    import sys

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path)
    try:
        release = Release(id="r1", instance_id="i1", path=str(tmp_path), port=1, url="http://127.0.0.1:1",
                          pid=server.pid, started_at="2026-01-01T00:00:00+00:00", status=RUNNING, app_sha256="x")
        assert process_alive(release), "a running server in its release directory is alive"
        server.terminate()
        wait_until(lambda: Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
        assert not process_alive(release)
        assert not process_alive(dataclasses.replace(release, path=str(tmp_path / "elsewhere")))
    finally:
        server.kill()
        server.wait()
