"""The builder renders each plan task's files; the generated app passes its own tests, ruff and bandit."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scopeflow.handlers.builder import build_task, render_task
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.planner import make_plan, plan_build
from scopeflow.handlers.spec import Entity, Feature, Field, Spec

HOSTILE = "Author <script>alert('x')</script> & Co {{ 7*7 }}"


def bookshop() -> Spec:
    return Spec(title="Bücher <b>shop</b>", wants_login=True, complexity="medium", entities=[
        Entity("Author", HOSTILE, "authors", [
            Field("name", "Name — naïve ✓", "text", required=True, unique=True, minimum=2, maximum=60),
            Field("email", "E-mail <i>", "email", unique=True),
            Field("born", "Born", "date"),
        ]),
        Entity("Book", "Book", "books", [
            Field("title", "Title", "text", required=True),
            Field("author", "Author", "reference", reference="Author", required=True),
            Field("status", "Status", "choice", required=True, choices=["draft", "published"], default="draft"),
            Field("pages", "Pages", "integer", minimum=1, maximum=5000),
            Field("price", "Price", "decimal", minimum=0, maximum=999.5),
            Field("in_stock", "In stock", "boolean"),
            Field("website", "Website", "url"),
            Field("released", "Released", "datetime"),
        ]),
        Entity("Review", "Review", "reviews", [
            Field("book", "Book", "reference", reference="Book", required=True),
            Field("stars", "Stars", "integer", required=True, minimum=1, maximum=5),
            Field("text", "Text", "long_text", maximum=2000),
        ]),
    ], features=[Feature("Recommend books with AI", "custom", False, reason="needs a language model")])


def family() -> Spec:
    """No login; a self-reference and a two-entity reference cycle."""
    return Spec(title="Family", entities=[
        Entity("Person", "Person", "people", [
            Field("name", "Name", "text", required=True),
            Field("parent", "Parent", "reference", reference="Person", required=True),
            Field("home", "Home", "reference", reference="House", required=True),
        ]),
        Entity("House", "House", "houses", [
            Field("street", "Street", "text", required=True, unique=True),
            Field("owner", "Owner", "reference", reference="Person", required=True),
        ]),
    ])


def context(workspace: Path) -> RecordingContext:
    return RecordingContext(instance_id="i1", task_id="t1", bpmn_id="build", workspace=workspace)


def build_all(spec: Spec, workspace: Path) -> dict:
    planned = plan_build(context(workspace), spec.to_data())
    results = {task_id: build_task(context(workspace), spec.to_data(), planned["plan"], task_id)
               for task_id in planned["build_order"]}
    return {"plan": planned["plan"], "results": results}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, dict]:
    workspace = tmp_path_factory.mktemp("shop")
    return workspace, build_all(bookshop(), workspace)


def test_each_task_writes_exactly_the_files_it_owns(shop):
    workspace, built = shop
    owned = {t["id"]: t["files"] for t in built["plan"]["tasks"]}
    for task_id, result in built["results"].items():
        assert [f["path"] for f in result["files"]] == owned[task_id]
    written = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*") if p.is_file())
    assert written == sorted(path for files in owned.values() for path in files)


def test_building_a_task_again_gives_identical_files(shop):
    workspace, built = shop
    before = (workspace / "app/webapp/entities/books.py").read_bytes()
    again = build_task(context(workspace), bookshop().to_data(), built["plan"], "entity-books")
    assert again == built["results"]["entity-books"]
    assert (workspace / "app/webapp/entities/books.py").read_bytes() == before


def test_build_records_what_it_wrote(tmp_path):
    spec = bookshop()
    plan = make_plan(spec).to_data()
    ctx = context(tmp_path)
    build_task(ctx, spec.to_data(), plan, "app-core", feedback="use blue buttons")
    assert ctx.recorded["scopeflow.build.task"] == "app-core"
    assert ctx.recorded["scopeflow.build.files"] == len(make_plan(spec).task("app-core").files)
    assert ctx.recorded["scopeflow.build.feedback_ignored"] is True


def test_generated_app_templates_keep_their_own_jinja_and_never_contain_labels(shop):
    workspace, _ = shop
    form = (workspace / "app/webapp/templates/entity/form.html").read_text()
    assert "{{ rule.label }}" in form
    for page in (workspace / "app/webapp").rglob("*.html"):
        assert "<script>" not in page.read_text()
    assert repr(HOSTILE) in (workspace / "app/webapp/entities/authors.py").read_text(encoding="utf-8")


def test_generated_app_passes_its_tests(shop):
    workspace, _ = shop
    result = run(["pytest", "-q"], workspace / "app")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", result.stdout).group(1))
    assert passed > 40


def test_generated_app_is_ruff_and_bandit_clean(shop):
    workspace, _ = shop
    lint = run(["ruff", "check", "."], workspace / "app")
    assert lint.returncode == 0, lint.stdout
    security = run(["bandit", "-q", "-r", "app", "-x", "tests", "-lll"], workspace)
    assert security.returncode == 0, security.stdout


def test_run_script_serves_healthz_on_the_port_from_env(shop, tmp_path):
    workspace, _ = shop
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "SECRET_KEY": "run-test"}
    server = subprocess.Popen([sys.executable, "run.py"], cwd=workspace / "app", env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = _poll(f"http://127.0.0.1:{port}/healthz", deadline=time.monotonic() + 20)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert body == {"status": "ok"}


def _poll(url: str, deadline: float) -> dict:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_app_without_login_and_with_reference_cycles_passes_its_tests(tmp_path):
    built = build_all(family(), tmp_path)
    assert not (tmp_path / "app/webapp/auth.py").exists()
    assert "Person.parent closes a reference cycle" in " ".join(built["plan"]["notes"])
    result = run(["pytest", "-q"], tmp_path / "app")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_unbuildable_task_is_an_external_blocker(tmp_path):
    spec = bookshop()
    plan = make_plan(spec)
    with pytest.raises(TaskFailure) as caught:
        build_task(context(tmp_path), spec.to_data(), plan.to_data(), "feature-1")
    assert caught.value.kind == "external_blocker"
    assert "needs a language model" in caught.value.message


def test_path_escaping_the_workspace_is_refused(tmp_path):
    spec = bookshop()
    plan = make_plan(spec)
    plan.task("entity-books").files = ["../outside.py"]
    with pytest.raises(TaskFailure) as caught:
        build_task(context(tmp_path / "ws"), spec.to_data(), plan.to_data(), "entity-books")
    assert caught.value.kind == "design_flaw"
    assert not (tmp_path / "outside.py").exists()


def test_file_no_template_renders_is_refused():
    spec = bookshop()
    plan = make_plan(spec)
    plan.task("entity-books").files = ["app/webapp/entities/other.py"]
    with pytest.raises(TaskFailure, match="no template renders app/webapp/entities/other.py"):
        render_task(spec, plan, plan.task("entity-books"))


def test_unknown_task_is_a_design_flaw(tmp_path):
    spec = bookshop()
    with pytest.raises(TaskFailure, match="no task 'entity-nope'"):
        build_task(context(tmp_path), spec.to_data(), make_plan(spec).to_data(), "entity-nope")


def test_generated_tests_carry_the_ids_of_the_requirements_they_prove():
    from scopeflow.handlers.builder import render_task
    from scopeflow.handlers.planner import make_plan
    from scopeflow.handlers.scope import analyze

    spec = analyze("# Shelf\n## Entities\n- Book: title (text, required, unique), pages (integer, min 1)\n"
                   "## Features\n- Search books by title\n")
    plan = make_plan(spec)
    [text] = render_task(spec, plan, plan.task("tests-books")).values()
    ids = {r.text: r.id for r in spec.requirements}
    assert (f"@pytest.mark.requirements({ids['Book.title is required']!r})\n"
            "def test_title_is_required(client):") in text
    assert (f"@pytest.mark.requirements({ids['Book.pages is at least 1']!r})\n"
            "def test_pages_below_minimum_is_rejected(client):") in text
    assert (f"@pytest.mark.requirements({ids['Search books by title']!r})\n"
            "def test_search_finds_matching_rows(client):") in text
    core = render_task(spec, plan, plan.task("app-core"))["app/tests/test_core.py"]
    assert f"@pytest.mark.requirements({ids['the app is called ' + repr('Shelf')]!r})" in core
