"""Generated code cannot outlive its run, reach another run, or reach a release unverified.

Issue #19 item 5 and #12 item 5, each attack reproduced: a daemon that keeps writing the app after
its run, a run reading another run's environment and writing into its files through ``/proc``, a
deployed app reading the Scopeflow home and key, an app changed after verification, and a daemon
spawned by a release outliving the release. Every test here needs namespace isolation (probed; the
project's machines have it); without it the README says what does not hold.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine
from scopeflow.handlers.app_content import tree_digest
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.deployer import deploy_release
from scopeflow.handlers.failures import EXTERNAL_BLOCKER, TaskFailure
from scopeflow.handlers.release import list_releases, stop_all, stop_release
from scopeflow.handlers.sandbox import (
    NAMESPACE,
    SANDBOX_UID_BASE,
    isolation_support,
    reclaim,
    run_untrusted,
    start_untrusted,
)
from scopeflow.processes.synth import linear_process
from tests.conftest import make_settings
from tests.test_deployer import get_json, write_tiny_app

pytestmark = pytest.mark.skipif(isolation_support().mode != NAMESPACE,
                                reason=f"no namespace isolation here: {isolation_support().reason}")


def _running(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmdline and state != "Z":
                found.append(int(entry))
    return found


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# ------------------------------------------------------------------------------ runs

def test_a_daemon_cannot_keep_writing_the_app_after_its_run(tmp_path):
    marker = f"marker-beat-{os.getpid()}"
    beat = tmp_path / "beat"
    daemon = f"import time\nwhile True:\n    open({str(beat)!r}, 'a').write('.')\n    time.sleep(0.02)  # {marker}"
    code = f"""
        import os, subprocess, sys, time
        if os.fork() == 0:                 # double fork + setsid: leaves the session and the group
            os.setsid()
            subprocess.Popen([sys.executable, "-c", {daemon!r}])
            os._exit(0)
        time.sleep(0.5)
    """
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10)
    assert result.ok, result.stderr
    written = beat.read_text()
    assert written, "the daemon ran during the run"
    time.sleep(0.3)
    assert beat.read_text() == written, "nothing writes the app once its run has ended"
    assert _running(marker) == [] and result.survivors == 0


def test_one_run_cannot_read_or_write_another_runs_processes(tmp_path):
    victim_dir, attacker_dir = tmp_path / "victim", tmp_path / "attacker"
    victim_dir.mkdir()
    attacker_dir.mkdir()
    log = (tmp_path / "victim.log").open("wb")
    victim = start_untrusted(_python("import time; time.sleep(30)"), cwd=victim_dir, log_file=log,
                             env_extra={"VICTIM_TOKEN": "tok-4242"})
    try:
        attack = f"""
            import os
            found, planted = [], []
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    if b"tok-4242" in open(f"/proc/{{pid}}/environ", "rb").read():
                        found.append(pid)
                except OSError:
                    pass
                try:
                    open(f"/proc/{{pid}}/root{victim_dir}/planted", "w").write("x")
                    planted.append(pid)
                except OSError:
                    pass
            print(len(os.listdir("/proc")), found, planted)
        """
        time.sleep(0.3)
        result = run_untrusted(_python(attack), cwd=attacker_dir, timeout_s=10, hide=[victim_dir])
        assert result.ok, result.stderr
        assert result.stdout.split(" ", 1)[1].strip() == "[] []"
        assert not (victim_dir / "planted").exists()
    finally:
        os.killpg(victim.proc.pid, 15)
        victim.proc.wait(timeout=10)
        log.close()
        reclaim(victim_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="the dedicated uid is how root runs untrusted code")
def test_under_root_each_run_has_its_own_unprivileged_uid_and_gets_its_directory_back(tmp_path):
    (tmp_path / "mine.txt").write_text("ours")
    result = run_untrusted(_python("import os; open('made.txt', 'w').write('x'); print(os.getuid())"),
                           cwd=tmp_path, timeout_s=10)
    assert result.ok, result.stderr
    assert int(result.stdout) == result.run_uid and result.run_uid >= SANDBOX_UID_BASE
    other = run_untrusted(_python("print(1)"), cwd=tmp_path, timeout_s=10)
    assert other.run_uid != result.run_uid
    owners = {path.name: path.stat().st_uid for path in tmp_path.iterdir()}
    assert owners == {"mine.txt": 0, "made.txt": 0}      # taken back after the run
    assert tmp_path.stat().st_mode & 0o1020 == 0


def test_a_server_stops_with_everything_it_spawned(tmp_path):
    marker = f"marker-server-child-{os.getpid()}"
    code = f"""
        import subprocess, sys, time
        marker = "marker-server-" + "child-{os.getpid()}"   # whole only in the child's command line
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # " + marker], start_new_session=True)
        time.sleep(60)
    """
    with (tmp_path / "log").open("wb") as log:
        server = start_untrusted(_python(code), cwd=tmp_path / ".." / tmp_path.name, log_file=log)
    deadline = time.monotonic() + 5
    while not _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(marker)
    os.killpg(server.proc.pid, 15)          # what release.terminate sends first
    server.proc.wait(timeout=10)
    assert _running(marker) == []


# ------------------------------------------------------------------------------ deploy

PROBE_APP = '''\
import json
import os
from pathlib import Path

from flask import Flask, jsonify

app = Flask(__name__)
HOME = __HOME__


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@app.get("/probe")
def probe():
    seen = {}
    for name in ("secret.key", "scopeflow.db"):
        try:
            seen[name] = (Path(HOME) / name).read_text()[:20]
        except OSError as exc:
            seen[name] = exc.strerror
    seen["uid"] = os.getuid()
    seen["env"] = sorted(os.environ)
    seen["token_set"] = bool(os.environ["SHOP_TOKEN"])   # the credential this app's code reads
    seen["engine_visible"] = os.path.exists(f"/proc/{__ENGINE_PID__}")
    return jsonify(seen)


app.run(host=os.environ["HOST"], port=int(os.environ["PORT"]))
'''


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    (home / "workspaces" / "inst-1").mkdir(parents=True)
    (home / "secret.key").write_text("THE-SECRET-KEY")
    (home / "scopeflow.db").write_text("THE-DATABASE")
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    yield home
    stop_all(home / "releases", grace_s=2.0)


def test_a_deployed_app_cannot_read_the_scopeflow_home_or_key(home):
    workspace = home / "workspaces" / "inst-1"
    app = write_tiny_app(workspace)
    (app / "run.py").write_text(PROBE_APP.replace("__HOME__", repr(str(home)))
                                .replace("__ENGINE_PID__", str(os.getpid())))
    ctx = RecordingContext(instance_id="inst-1", task_id="deploy", bpmn_id="deploy_release", workspace=workspace,
                           secret_names=("*",), secrets={"SHOP_TOKEN": "declared"})
    spec = {"title": "t", "integrations": [{"name": "shop", "label": "Shop", "credentials": ["SHOP_TOKEN"]}]}
    release = deploy_release(ctx, spec=spec, verified_sha256=tree_digest(app))["release"]
    _status, seen = get_json(release["url"] + "/probe")
    assert seen["secret.key"] == "No such file or directory"
    assert seen["scopeflow.db"] == "No such file or directory"
    assert seen["engine_visible"] is False
    assert "SHOP_TOKEN" in seen["env"] and not any(name.startswith("SCOPEFLOW_") for name in seen["env"])
    if os.geteuid() == 0:
        assert seen["uid"] >= SANDBOX_UID_BASE
    stop_release(home / "releases", release["id"], grace_s=2.0)
    released = Path(release["path"])
    assert all(path.stat().st_uid == os.geteuid() for path in [released, *released.rglob("*")])


def test_deploy_refuses_an_app_that_changed_after_verification(home):
    workspace = home / "workspaces" / "inst-1"
    app = write_tiny_app(workspace)
    verified = tree_digest(app)
    (app / "run.py").write_text((app / "run.py").read_text() + "\n# planted after the checks\n")
    ctx = RecordingContext(instance_id="inst-1", task_id="deploy", bpmn_id="deploy_release", workspace=workspace)
    with pytest.raises(TaskFailure) as refused:
        deploy_release(ctx, verified_sha256=verified)
    assert refused.value.kind == EXTERNAL_BLOCKER
    assert "differs from the verified one" in refused.value.message
    with pytest.raises(TaskFailure, match="no verified content hash"):
        deploy_release(ctx)
    assert list_releases(home / "releases") == []


CLEAN_APP = '''"""A tiny app that passes every check."""
import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    """Health check."""
    return jsonify({"status": "ok"})


if __name__ == "__main__":
    app.run(host=os.environ["HOST"], port=int(os.environ["PORT"]))
'''


def _verify_wait_deploy_model() -> str:
    """start → verify_build → 1 s timer → deploy_release(verified_sha256 from verify) → end."""
    xml = linear_process("verify_then_deploy", [
        ("verify", "verify_build", {"app_dir": "'app'"}),
        ("deploy", "deploy_release", {"verified_sha256": "verify_result['app_sha256']"})])
    timer = ('<bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f1</bpmn:incoming>'
             '<bpmn:outgoing>f1b</bpmn:outgoing><bpmn:timerEventDefinition>'
             '<bpmn:timeDuration xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             'xsi:type="bpmn:tFormalExpression">"PT1S"</bpmn:timeDuration></bpmn:timerEventDefinition>'
             '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="f1b" sourceRef="wait" targetRef="deploy"/>')
    xml = xml.replace('<bpmn:sequenceFlow id="f1" sourceRef="verify" targetRef="deploy"/>',
                      '<bpmn:sequenceFlow id="f1" sourceRef="verify" targetRef="wait"/>' + timer)
    xml = xml.replace("<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>",
                      "<bpmn:incoming>f1b</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>")
    shape = ('<bpmndi:BPMNShape id="wait_di" bpmnElement="wait"><dc:Bounds x="300" y="200" width="36" '
             'height="36"/></bpmndi:BPMNShape><bpmndi:BPMNEdge id="f1b_di" bpmnElement="f1b">'
             '<di:waypoint x="318" y="200"/><di:waypoint x="336" y="120"/></bpmndi:BPMNEdge>')
    return xml.replace("</bpmndi:BPMNPlane>", shape + "</bpmndi:BPMNPlane>")


def test_in_a_real_run_an_app_changed_between_verify_and_deploy_is_refused(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "verify_then_deploy.bpmn").write_text(_verify_wait_deploy_model())
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    engine = Engine(make_settings(home, models))
    instance_id = engine.start("verify_then_deploy", {}, advance=False)
    app = engine.workspace(instance_id) / "app"
    (app / "tests").mkdir(parents=True)
    (app / "run.py").write_text(CLEAN_APP)
    (app / "tests" / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    engine.advance(instance_id)
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "waiting", row.incident
    (app / "run.py").write_text((app / "run.py").read_text() + "\n# planted between verify and deploy\n")
    time.sleep(1.1)
    engine.run_due()
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        statuses = set(session.scalars(select(Instance.status)))
    assert row.status == "error" and statuses == {"error"}
    assert row.incident["bpmn_id"] == "deploy"
    assert "differs from the verified one" in row.incident["message"]
    assert list_releases(home / "releases") == []
    assert json.dumps(row.incident)    # the incident is plain data


@pytest.mark.skipif(os.geteuid() != 0, reason="the survivor sweep works by the run's dedicated uid (root)")
def test_a_process_that_outlives_its_run_is_killed_and_the_result_stops_claiming_isolation(tmp_path, monkeypatch):
    """Without a PID namespace (forced here) a setsid daemon would survive: the sweep by uid finds
    it, kills it, and the result says ``isolation = none``."""
    from scopeflow.handlers import sandbox

    monkeypatch.setattr(sandbox, "_namespace_prefix",
                        lambda: ["unshare", "--mount", "--propagation", "private", "--"])
    marker = f"marker-survivor-{os.getpid()}"
    code = f"""
        import subprocess, sys, time
        marker = "marker-" + "survivor-{os.getpid()}"
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # " + marker], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    """
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10)
    assert result.returncode == 0 and not result.timed_out
    assert result.survivors == 1
    assert result.isolation == "none" and result.isolation_reason.startswith("1 process(es) of the run outlived it")
    time.sleep(0.2)
    assert _running(marker) == []
