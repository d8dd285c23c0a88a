"""The requirement matrix through whole runs: what the scope said, what was built, what the report
and the evidence say about it — for the scope shapes that used to be misread."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from scopeflow.handlers import planner, requirements
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from tests.conftest import REPO, cli_runner, make_settings

CORPUS = Path(__file__).parent / "scope_corpus"
EXAMPLES = REPO / "examples" / "scopes"

pytestmark = pytest.mark.slow




@pytest.fixture
def engine(tmp_path, monkeypatch):
    from scopeflow.engine.service import Engine

    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    settings = make_settings(home)
    yield Engine(settings)
    stop_all(settings.releases_dir)


@pytest.fixture(scope="module")
def cli_once(tmp_path_factory):
    """``run(*ARGS)``: ``scopeflow submit ARGS`` in a fresh home, once per module for the same arguments
    (several tests read one run); the releases those runs started are stopped after the module."""
    done: dict[tuple[str, ...], subprocess.CompletedProcess] = {}
    homes: list[Path] = []

    def run(*args: str) -> subprocess.CompletedProcess:
        if args not in done:
            homes.append(tmp_path_factory.mktemp("cli") / "home")
            done[args] = cli_runner(homes[-1])("submit", *args)
        return done[args]

    yield run
    for home in homes:
        stop_all(home / "releases")


CLINIC = CORPUS / "50-vet-clinic-setext-what-we-track.md"
CLINIC_SECRETS = ("TWILIO_TOKEN=test-token",)


def submit_json(cli, scope: Path) -> dict:
    proc = cli("submit", str(scope), "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def matrix_rows(report: str) -> dict[str, dict[str, str]]:
    """The report's requirement table, by requirement id."""
    rows = {}
    for line in Path(report).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 7 and requirements.is_id(cells[0]):
            rows[cells[0]] = dict(zip(("id", "text", "line", "source", "verdict", "tests", "files"), cells,
                                      strict=True))
    return rows


def assert_every_line_has_a_verdict(scope: Path, rows: dict[str, dict[str, str]]) -> None:
    """Each bullet and field line of the scope is the source of a matrix row that has a verdict."""
    numbered = {int(r["line"]) for r in rows.values() if r["line"]}
    for number, line in enumerate(scope.read_text(encoding="utf-8").splitlines(), start=1):
        if re.match(r"^\s*(?:[-*+]|\d+[.)])\s+\S", line) or re.match(r"^\|(?!\s*-)", line):
            assert number in numbered or _is_header(line), (number, line)
    verdicts = {r["verdict"].split(":")[0] for r in rows.values()}
    assert verdicts <= set(requirements.VERDICTS)


def _is_header(line: str) -> bool:
    return bool(re.match(r"^\|\s*(field|entity|feature)", line, re.IGNORECASE))


def by_text(rows: dict[str, dict[str, str]]) -> dict[str, str]:
    return {r["text"]: r["verdict"] for r in rows.values()}


# ------------------------------------------------------------------ the failure shapes of issue 11

def test_inline_labels_and_colon_typed_fields_are_delivered_with_their_modifiers(cli):
    scope = CORPUS / "01-inline-labels.md"
    result = submit_json(cli, scope)
    assert (result["status"], result["outcome"]) == ("completed", "delivered")
    rows = matrix_rows(result["report"])
    assert_every_line_has_a_verdict(scope, rows)
    verdicts = by_text(rows)
    assert verdicts["Member.full\\_name (text)"] == "delivered"
    assert verdicts["Member.full\\_name is required"] == "delivered"
    assert verdicts["Members can be added and removed"] == "delivered"
    assert verdicts["List and search members"] == "delivered"
    assert result["requirements"]["delivered"] == len(rows) == result["requirements"]["total"]
    assert "# Delivery: Gym Classes" in Path(result["report"]).read_text(encoding="utf-8")


def test_arrow_references_with_modifiers_are_built_as_required_references(cli):
    scope = CORPUS / "05-colon-fields-nested.md"
    result = submit_json(cli, scope)
    assert result["outcome"] == "delivered"
    rows = matrix_rows(result["report"])
    assert_every_line_has_a_verdict(scope, rows)
    verdicts = by_text(rows)
    assert verdicts["Booking.class refers to GymClass"] == "delivered"
    assert verdicts["Booking.class is required"] == "delivered"
    assert verdicts["Member.age is at least 16"] == "delivered"


def test_prose_with_implied_entities_is_delivered_as_assumed_and_costs_confidence(cli):
    scope = CORPUS / "49-prose-clinic-two-entities-twelve-fields.md"
    result = submit_json(cli, scope)
    assert result["outcome"] == "delivered"
    rows = matrix_rows(result["report"])
    counts = result["requirements"]
    fields = [r for r in rows.values() if r["text"].startswith(("Patient.", "Appointment.")) and "(" in r["text"]]
    assert len(fields) == 12 and all(r["verdict"].startswith("assumed") for r in fields)
    assert by_text(rows)["entity Patient"].startswith("assumed")
    assert by_text(rows)["entity Appointment"].startswith("assumed")
    assert counts["assumed"] >= 14 and counts["delivered"] + counts["assumed"] + counts["not_built"] == len(rows)
    text = Path(result["report"]).read_text(encoding="utf-8")
    assert "## Assumptions" in text and "read from prose" in text
    assert "Confidence **1.00**" not in text


def test_a_long_feature_list_keeps_every_feature_and_builds_only_what_is_real(cli):
    scope = CORPUS / "19-long-feature-list.md"
    result = submit_json(cli, scope)
    assert result["outcome"] == "delivered"
    rows = matrix_rows(result["report"])
    assert_every_line_has_a_verdict(scope, rows)
    verdicts = by_text(rows)
    for unbuilt in ("API with rate limiting", "99.9% uptime SLA", "Billing for monthly subscriptions",
                    "Multi-tenant support for several clubs", "Email members when something changes"):
        assert verdicts[unbuilt].startswith("not built: "), unbuilt
    for built in ("Members can be added and removed", "List and search members", "Export members as CSV",
                  "Health check endpoint", "Log in with a password"):
        assert verdicts[built] == "delivered", built
    assert "The app should support the following:" not in verdicts
    assert result["requirements"]["not_built"] == 5


def assert_an_example_run_ends_delivered_or_blocked(name: str, result) -> None:
    """What every example scope's run must show: it ends delivered with a running release, or blocked
    with a blocker plan; its generated tests pass; and each of its lines has a row with a verdict in
    the report."""
    assert result.status in ("completed", "blocked"), result
    report = Path(result.report)
    assert "<script" not in report.read_text(encoding="utf-8").lower()
    if result.status == "completed":
        assert result.release and result.release["status"] == "running" and report.name == "DELIVERY.md"
    else:
        assert report.name == "BLOCKERS.md"
    if result.checks["tests_passed"] is not None:
        assert result.checks["tests_failed"] == 0 and result.checks["tests_passed"] > 0
    rows = matrix_rows(result.report)
    assert_every_line_has_a_verdict(EXAMPLES / name, rows)
    assert result.requirements["total"] == len(rows) > 0


# These examples are submitted (with yes, no secrets) by tests/test_lifecycle.py, whose tests of them make
# the assertions above on their run too: one run per example scope, not two.
RUN_IN_TEST_LIFECYCLE = ("credential-shop.md", "email-reminders.md", "simple-bookshelf.md")


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.md") if p.name not in RUN_IN_TEST_LIFECYCLE))
def test_every_example_scope_ends_delivered_or_blocked_with_every_line_in_the_matrix(engine, name):
    """One run per example scope (those of RUN_IN_TEST_LIFECYCLE are run there)."""
    result = submit(engine, (EXAMPLES / name).read_text(encoding="utf-8"), yes=True)
    assert_an_example_run_ends_delivered_or_blocked(name, result)


def test_the_examples_left_to_test_lifecycle_exist_and_are_checked_there():
    source = (Path(__file__).parent / "test_lifecycle.py").read_text(encoding="utf-8")
    for name in RUN_IN_TEST_LIFECYCLE:
        assert (EXAMPLES / name).is_file(), name
        assert f'assert_an_example_run_ends_delivered_or_blocked("{name}", result)' in source, name


# ------------------------------------------------------------------ each matrix rule fails a real run

def failed_rules(result) -> list[str]:
    text = Path(result.report).read_text(encoding="utf-8")
    return re.findall(r"^- FAIL: (.+?)(?::|$)", text, re.MULTILINE) or [text]


def test_a_line_no_requirement_covers_fails_the_evidence_gate(engine, monkeypatch):
    from scopeflow.handlers import scope_markdown

    real = scope_markdown._token_blocks          # a reader that silently drops line 4
    monkeypatch.setattr(scope_markdown, "_token_blocks", lambda text: [b for b in real(text) if b.line != 4])
    scope = "# Shelf\n## Entities\n- Book: title (text, required)\n- Author: name (text)\n"
    result = submit(engine, scope, yes=True)
    assert result.status == "blocked" and result.release is None
    text = Path(result.report).read_text(encoding="utf-8")
    assert "every scope line maps to a requirement" in text


def test_a_planner_that_drops_a_requirement_fails_the_evidence_gate(engine, monkeypatch):
    real = planner._tasks_for
    monkeypatch.setattr(planner, "_tasks_for",
                        lambda spec, subject, tasks: [] if subject == "feature:1" else real(spec, subject, tasks))
    result = submit(engine, "# Shelf\n## Entities\n- Book: title (text)\n## Features\n- Search books\n", yes=True)
    assert result.status == "blocked" and result.release is None
    assert "every requirement is realised or ruled out by the plan" in Path(result.report).read_text(encoding="utf-8")


def test_a_requirement_left_without_verdict_fails_the_evidence_gate(engine, monkeypatch):
    real = requirements._verdict
    monkeypatch.setattr(requirements, "_verdict", lambda r, *a: ("", "") if r.kind == "title" else real(r, *a))
    result = submit(engine, "# Shelf\n## Entities\n- Book: title (text)\n", yes=True)
    assert result.status == "blocked" and result.release is None
    assert "every requirement has a verdict" in Path(result.report).read_text(encoding="utf-8")


def test_a_requirement_called_delivered_without_a_passing_test_fails_the_evidence_gate(engine, monkeypatch):
    real = requirements._verdict
    monkeypatch.setattr(requirements, "_verdict",
                        lambda r, *a: (requirements.DELIVERED, "") if r.kind == "feature" else real(r, *a))
    result = submit(engine, "# Shelf\n## Entities\n- Book: title (text)\n## Features\n- 99.9% uptime SLA\n",
                    yes=True)
    assert result.status == "blocked" and result.release is None
    assert "every delivered requirement has a passing test" in Path(result.report).read_text(encoding="utf-8")


def test_a_scope_blocked_before_confirmation_keeps_its_title_and_lists_every_line(engine):
    scope = "# Its Title\n\nMake my life better somehow.\nAnd faster, please.\n"
    result = submit(engine, scope, yes=True)
    assert result.status == "blocked"
    text = Path(result.report).read_text(encoding="utf-8")
    assert text.startswith("# Blocked: Its Title")
    rows = matrix_rows(result.report)
    assert {int(r["line"]) for r in rows.values()} == {1, 3}     # the title; the summary (lines 3-4)
    assert result.requirements["delivered"] == 0 and result.requirements["total"] == len(rows)


def test_the_console_summary_prints_the_same_counts_as_the_report(cli):
    proc = cli("submit", str(CORPUS / "19-long-feature-list.md"), "--yes")
    assert proc.returncode == 0, proc.stderr
    [line] = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("requirements:")]
    [report] = [line.split("report:", 1)[1].strip() for line in proc.stdout.splitlines() if "report:" in line]
    counts = re.search(r"Requirements: (\d+) from the scope: (\d+) delivered, (\d+) not built, (\d+) assumed, "
                       r"(\d+) not understood", Path(report).read_text(encoding="utf-8")).groups()
    assert line == "requirements: {} ({} delivered, {} not built, {} assumed, {} not understood)".format(*counts)
    assert counts[2] == "5"


# ------------------------------------------------------------------ scopes written by other people (issue 11)

@pytest.mark.parametrize("name, secrets", [
    (CLINIC.name, CLINIC_SECRETS),
    ("52-numbered-bold-en-dash-objects.md", ()),
])
def test_a_numbered_bold_entity_list_under_another_section_name_is_delivered(cli_once, name, secrets):
    scope = CORPUS / name
    proc = cli_once(str(scope), "--yes", "--json", *(a for s in secrets for a in ("--secret", s)))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["status"], result["outcome"]) == ("completed", "delivered")
    rows = matrix_rows(result["report"])
    assert_every_line_has_a_verdict(scope, rows)
    entity_rows = [r for r in rows.values() if r["text"].startswith("entity ")]
    assert len(entity_rows) == 3 and all(r["verdict"] == "delivered" for r in entity_rows)
    relations = [r for r in rows.values() if " refers to " in r["text"]]
    assert len(relations) == 4 and all(r["verdict"] == "delivered" for r in relations)   # the list's and the sentences'
    assert {r["line"] for r in relations} >= {"12"}          # the relation sentences' own line
    assert result["requirements"]["not_understood"] == 0


def test_the_clinic_roles_line_is_built_for_everyone_and_says_so(cli_once):
    proc = cli_once(str(CLINIC), "--yes", "--json", *(a for s in CLINIC_SECRETS for a in ("--secret", s)))
    rows = by_text(matrix_rows(json.loads(proc.stdout)["report"]))
    assert rows["receptionists can book, move and cancel appointments"].startswith(
        "assumed: built for every user of the app: it has no receptionist role")
    assert rows["appointments can't be booked in the past"].startswith("not built: ")


@pytest.mark.parametrize("name, entities", [
    ("51-gym-lowercase-paragraph.txt", {"Member", "Visit"}),
    ("55-plain-email-crlf.txt", {"Plot", "Tenant"}),
])
def test_prose_without_markdown_is_delivered_with_every_guess_assumed(cli, name, entities):
    result = submit_json(cli, CORPUS / name)
    assert (result["status"], result["outcome"]) == ("completed", "delivered")
    rows = matrix_rows(result["report"])
    guessed = [r for r in rows.values() if r["text"].split(".")[0] in entities or r["text"].startswith("entity ")]
    assert {r["text"].removeprefix("entity ") for r in guessed if r["text"].startswith("entity ")} == entities
    assert guessed and all(r["verdict"].startswith("assumed: read from prose: guessed from '") for r in guessed)
    assert result["requirements"]["not_understood"] == 0
    assert "Confidence **1.00**" not in Path(result["report"]).read_text(encoding="utf-8")


def test_credentials_no_built_code_reads_are_reported_as_needed_once_built_not_requested(cli):
    proc = cli("submit", str(EXAMPLES / "credential-shop.md"), "--yes")
    assert proc.returncode == 0, proc.stderr                  # delivered: nothing built reads the payment key
    assert ("  needed once Payment gateway is built: PAYMENT_API_KEY (not requested: no built code reads them)"
            in proc.stdout.splitlines())
    [report] = [line.split("report:", 1)[1].strip() for line in proc.stdout.splitlines() if "report:" in line]
    row = next(r for r in matrix_rows(report).values() if r["text"] == "integration Payment gateway")
    assert row["verdict"].startswith("not built") and "PAYMENT\\_API\\_KEY needed once it is built" in row["verdict"]


def test_a_scope_whose_every_requirement_is_assumed_is_blocked_with_what_to_do(engine):
    scope = (REPO / "tests" / "scope_corpus" / "78-email-one-paragraph.txt").read_text(encoding="utf-8")
    result = submit(engine, scope, yes=True)
    assert result.status == "blocked" and result.release is None
    assert result.requirements["delivered"] == 0 and result.requirements["assumed"] > 0
    text = Path(result.report).read_text(encoding="utf-8")
    assert "rule \u201cat least one requirement is delivered as the scope states it\u201d" in text
    assert "attr:scopeflow.requirements.delivered &gt; 0: 1 of 1 span(s) fail" in text   # markdown-escaped
    assert "answering the scope" in text and "without --yes" in text
    assert "rule \u201cevery delivered requirement has a passing test\u201d" not in text   # that one held
