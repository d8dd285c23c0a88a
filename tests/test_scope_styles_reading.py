"""Scopes written in styles the analyst had not seen (user stories, Gherkin, REQ-ids, a one-paragraph
e-mail, entity × field tables, YAML front matter, non-ASCII names, Spanish and German, a bare title,
non-functional requirements only, 200 KB, injected markup, fenced fake headings, CRLF and tabs, things
no template builds): what each reading must get right, at the reader (no lifecycle), and that what
is not built ends as a ``not built`` line of the plan with its reason rather than vanishing.

The corpus files are ``tests/scope_corpus/75-…`` to ``90-…`` (their whole readings are in the
``.json`` beside them); these tests name the one thing each style used to get wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.handlers import requirements as req
from scopeflow.handlers.plan import to_data
from scopeflow.handlers.planner import make_plan
from scopeflow.handlers.scope import read_scope

CORPUS = Path(__file__).parent / "scope_corpus"


def _read(name: str):
    reading = read_scope((CORPUS / name).read_bytes().decode("utf-8"))
    assert reading.unmapped_lines == []
    return reading.spec


def _fields(spec, entity: str) -> dict[str, str]:
    return {f.name: f.reference or (f"choice:{'|'.join(f.choices)}" if f.type == "choice" else f.type)
            for f in spec.entity(entity).fields}


def _by_line(spec, line: int, kind: str | None = None) -> list[req.Requirement]:
    return [r for r in spec.requirements if r.line == line and (kind is None or r.kind == kind)]


def _verdicts(spec) -> dict[str, tuple[str, str]]:
    """Each requirement's verdict as a verified run would give it when every built thing's test passed:
    what is still ``not built`` then is what the plan cannot build."""
    plan = make_plan(spec)
    tasks = [to_data(t) for t in plan.tasks]
    realised = {rid for t in plan.tasks if t.buildable for rid in t.requirements}
    results = {rid: {"passed": [f"test_{rid}"], "failed": []} for rid in realised}
    return {r.text: (r.verdict, r.reason) for r in req.decide(spec.requirements, tasks, results)}


# ---------------------------------------------------------------- tables and front matter

def test_a_type_cell_naming_an_entity_with_a_bare_reference_note_refers_to_that_entity():
    spec = _read("79-markdown-entity-field-matrix.md")
    assert _fields(spec, "Bike")["owner"] == "Customer"
    assert [e.name for e in spec.entities] == ["Customer", "Bike", "Repair"]      # no nameless entity
    assert not [q for q in spec.questions if q.topic.startswith("reference:")]


def test_a_choice_type_with_its_values_in_the_notes_is_a_choice_of_those_values():
    spec = _read("79-markdown-entity-field-matrix.md")
    status = next(f for f in spec.entity("Repair").fields if f.name == "status")
    assert (status.type, status.choices, status.required) == ("choice", ["open", "waiting", "done"], True)


def test_yaml_front_matter_is_no_content_and_its_title_names_the_app_when_no_heading_does():
    text = ("---\ntitle: \"Tool library\"\ndescription: Neighbours lend each other tools.\nauthor: Kim\n"
            "version: 2\ntags: [a, b]\n---\n\n## Entities\n- Tool: name (required), condition (good / worn)\n")
    reading = read_scope(text)
    assert reading.unmapped_lines == []
    assert reading.spec.title == "Tool library"
    assert reading.spec.summary == "Neighbours lend each other tools."
    assert [e.name for e in reading.spec.entities] == ["Tool"]
    assert {r.line for r in reading.spec.requirements} == {2, 3, 10}    # author, version, tags: no requirement


def test_front_matter_lines_of_the_corpus_scope_are_neither_unmapped_nor_requirements():
    spec = _read("80-yaml-front-matter.md")
    assert spec.title == "Pottery class booking"
    assert not [r for r in spec.requirements if 3 <= r.line <= 6]


def test_a_rule_line_at_the_top_is_no_front_matter():
    reading = read_scope("---\n\n# Tool library\n\n## Entities\n- Tool: name\n")
    assert reading.spec.title == "Tool library" and reading.unmapped_lines == []


# ---------------------------------------------------------------- stories, Gherkin, REQ ids

def test_user_stories_give_their_fields_and_no_entity_from_a_verb_before_is():
    spec = _read("75-user-story-list-only.md")
    assert [e.name for e in spec.entities] == ["Book", "Patron", "Loan"]       # not "Is" (book is on …)
    assert _fields(spec, "Book") == {"title": "text", "author": "text", "isbn": "text"}
    assert _fields(spec, "Patron") == {"name": "text", "email": "email"}      # "an email so that …"
    assert _fields(spec, "Loan") == {"due_date": "date"}


def test_gherkin_feature_names_the_app_and_every_step_is_placed():
    spec = _read("76-gherkin.md")
    assert spec.title == "Seed swap"
    assert not [r for r in spec.requirements if r.kind == "feature" and r.line == 1]
    placed = {n for r in spec.requirements for n in r.lines}
    assert set(range(4, 24)) - placed <= {6, 11, 16, 20}                      # only the blank lines
    # the steps name the data: "Given a gardener with a name and an email", "When I offer a seed packet with …"
    assert _fields(spec, "Gardener") == {"name": "text", "email": "email"}
    assert _fields(spec, "Packet") == {"variety": "text", "quantity": "integer", "harvest_year": "integer"}
    assert all(r.status == "assumed" for r in spec.requirements if r.kind in ("entity", "field"))


def test_feature_label_without_scenarios_is_still_the_features_label():
    spec = read_scope("# Tasks\n\nFeature: search tasks by title\n\n## Entities\n- Task: title\n").spec
    assert spec.title == "Tasks"
    assert [f.kind for f in spec.features] == ["search"]


def test_a_title_heading_naming_its_document_kind_after_a_dash_is_the_title_and_nfrs_are_constraints():
    spec = _read("77-req-ids-must-should.md")
    assert spec.title == "Equipment Calibration Register — Software Requirements Specification"
    assert [c[:7] for c in spec.constraints] == ["NFR-001", "NFR-002"]
    assert _fields(spec, "Instrument")["serial_number"] == "text"          # a code, not a quantity
    assert _fields(spec, "Calibration") == {"instrument": "Instrument", "calibration_date": "date",
                                             "result": "choice:pass|fail"}


# ---------------------------------------------------------------- prose, languages, names

def test_a_one_paragraph_email_gives_both_entities_their_parenthesised_fields():
    spec = _read("78-email-one-paragraph.txt")
    assert spec.title.startswith("We are a small choir")            # not "Hello, we are …"
    assert _fields(spec, "Member") == {"name": "text", "voice_part": "choice:soprano|alto|tenor|bass",
                                       "phone": "text"}
    assert _fields(spec, "Concert") == {"date": "date", "venue": "text", "fee": "decimal"}
    assert all(r.status == req.ASSUMED for r in spec.requirements if r.kind in ("entity", "field"))


def test_a_determined_noun_that_is_also_a_verb_is_a_field():
    spec = read_scope("# Gym\n\nWe keep members with a name, an email so that we can reach them, "
                      "and a plan (monthly / yearly).\n").spec
    assert _fields(spec, "Member") == {"name": "text", "email": "email", "plan": "choice:monthly|yearly"}


def test_spanish_prose_is_mined_like_english_and_its_features_classified():
    spec = _read("82-spanish-prose.md")
    assert _fields(spec, "Socio") == {"nombre": "text", "correo_electronico": "email", "fecha_de_alta": "date"}
    assert _fields(spec, "Torneo") == {"nombre": "text", "fecha": "date", "lugar": "text"}
    assert [(f.kind, f.buildable) for f in spec.features] == [("search", True), ("export", True), ("custom", False)]


@pytest.mark.parametrize("text, entity, expected", [
    ("Wir speichern Mitglieder mit Name, E-Mail und Geburtsdatum.", "Mitglieder",
     {"name": "text", "e_mail": "email", "geburtsdatum": "date"}),
    ("Außerdem erfassen wir die Spiele mit Datum und Ergebnis.", "Spiele", {"datum": "date", "ergebnis": "text"}),
    ("Nous gardons les salles avec un nom et une capacité.", "Salle", {"nom": "text", "capacite": "text"}),
])
def test_keep_with_sentences_in_german_and_french(text, entity, expected):
    spec = read_scope(f"# Verein\n\n{text}\n").spec
    assert _fields(spec, entity) == expected


def test_a_german_section_heading_and_german_modifiers_are_read():
    spec = _read("90-german-prose.md")
    fields = {f.name: (f.type, f.required, f.unique) for f in spec.entity("Mitglied").fields}
    assert fields == {"name": ("text", True, False), "e_mail": ("email", False, True),
                      "eintrittsdatum": ("date", False, False)}
    assert spec.entity("Kegelabend").fields[0].required


def test_non_ascii_names_are_identifiers_and_labels_stay_as_written():
    spec = _read("81-emoji-non-ascii.md")
    for entity in spec.entities:
        assert entity.name.isidentifier() and entity.name.isascii(), entity.name
        assert all(f.name.isidentifier() and f.name.isascii() for f in entity.fields)
    assert [e.label for e in spec.entities] == ["🍰 Gâteau", "Bestellung 🧾", "顧客"]
    assert _fields(spec, "Bestellung")["gateau"] == "Gateau"
    assert _fields(spec, "GuKe") == {"ming_qian": "text", "dian_hua": "text"}   # 顧客: 名前, 電話 spelled out


def test_injected_markup_stays_in_labels_and_never_in_names():
    spec = _read("86-injection-templates.md")
    assert [e.name for e in spec.entities] == ["Note77", "Tag", "Shelf"]     # not one entity per whole line
    assert spec.entity("Tag").label == "<img src=x onerror=alert(1)>Tag"      # the label stays as written
    for entity in spec.entities:
        for item in entity.fields:
            assert item.name.isidentifier() and item.name.isascii()


def test_fenced_headings_are_no_sections_and_a_lead_in_is_no_entity():
    spec = _read("87-code-fences-fake-headings.md")
    assert [e.name for e in spec.entities] == ["Snippet"]
    assert spec.integrations == []
    assert {r.line for r in spec.requirements if r.status == req.NOT_UNDERSTOOD} == {6, 9, 10, 11, 12, 13, 17, 18}


def test_an_entity_name_with_a_note_in_parentheses_keeps_its_fields():
    spec = read_scope("# Zoo\n\n## Entities\n- Animal (aka beast): name (required), species\n").spec
    assert _fields(spec, "Animal") == {"name": "text", "species": "text"}


def test_crlf_and_tabs_mixed_read_like_clean_markdown():
    spec = _read("88-crlf-tabs-mixed.md")
    assert _fields(spec, "Player") == {"name": "text", "nickname": "text"}
    assert _fields(spec, "Match") == {"played_on": "date", "home": "Player", "away": "Player", "score": "integer"}


# ---------------------------------------------------------------- what is not built says so

def test_what_no_template_builds_ends_not_built_with_its_reason():
    spec = _read("89-unbuildable-payments-mobile.md")
    verdicts = _verdicts(spec)
    for line in ("iOS and Android mobile app for customers", "Take card payments with Apple Pay",
                 "Push notifications when an order is ready", "Real-time GPS tracking of the truck on a map"):
        verdict, reason = verdicts[line]
        assert verdict == req.NOT_BUILT and reason, line
    assert verdicts["integration Stripe"][0] == req.NOT_BUILT
    assert "STRIPE_API_KEY" in verdicts["integration Stripe"][1]
    assert verdicts["list orders"] == (req.DELIVERED, "")


def test_non_functional_requirements_are_constraints_that_end_not_built():
    spec = _read("84-non-functional-only.md")
    assert spec.features == [] and len(spec.constraints) == 5
    decided = req.decide(spec.requirements, [], None)       # nothing to plan: the run stops at ideation
    assert [(r.kind, r.verdict) for r in decided if r.line >= 4] == [("constraint", req.NOT_BUILT)] * 5
    assert all(r.reason for r in decided)
    assert any(q.topic == "data:none" for q in spec.questions)


def test_a_bare_title_is_the_title_and_a_question_for_the_data():
    spec = _read("83-title-only.md")
    assert spec.title == "Inventory tracker for a food bank"
    assert spec.entities == [] and [q.topic for q in spec.questions] == ["data:none"]


# ---------------------------------------------------------------- 200 KB

def _large_scope() -> str:
    lines = ["# Regional archive catalogue", "", "A catalogue for a regional archive.", "", "## Entities"]
    lines += [f"- Series{i:02d}: title (text, required, max 200), reference code (unique), opened on (date), "
              f"boxes (integer, min 0), notes (markdown), status (open / closed)" for i in range(60)]
    lines += ["", "## Features"]
    n = 0
    while sum(len(line) + 1 for line in lines) < 200_000:
        lines.append(f"- search series{n % 60:02d} by title and list the boxes of the reading room, item {n}")
        n += 1
    return "\n".join(lines) + "\n"


def test_a_200_kb_scope_reads_every_line():
    text = _large_scope()
    assert len(text.encode()) >= 200_000
    reading = read_scope(text)
    assert reading.unmapped_lines == []
    assert len(reading.spec.entities) == 60
    assert _fields(reading.spec, "Series59") == {"title": "text", "reference_code": "text", "opened_on": "date",
                                                 "boxes": "integer", "notes": "long_text",
                                                 "status": "choice:open|closed"}
    feature_lines = len(text.splitlines()) - 67
    assert len(reading.spec.features) == feature_lines
    assert reading.spec.complexity == "monster"


# ---------------------------------------------------------------- wiki markup, org-mode, task boxes

def test_jira_wiki_headings_open_sections_and_ticked_task_boxes_are_no_part_of_the_item():
    spec = _read("91-jira-wiki-markup.txt")
    assert spec.title == "Tool lending library"
    assert [e.name for e in spec.entities] == ["Tool", "Member", "Loan"]
    assert [f.text for f in spec.features][0] == "list loans that are overdue"     # not "[x] list …"


def test_org_mode_stars_are_headings_when_the_scope_uses_deeper_ones():
    spec = _read("92-org-mode.txt")
    assert spec.title == "Beekeeping log" and spec.summary == "Hives and the inspections we do on them."
    assert _fields(spec, "Inspection")["hive"] == "Hive"
    assert [(f.kind, f.buildable) for f in spec.features] == [("crud", True), ("search", True), ("custom", False)]


def test_single_star_bullets_stay_items_without_org_headings():
    spec = read_scope("# Pantry\n\n## Entities\n* Item: name\n* [x] Shelf: label\n").spec
    assert [e.name for e in spec.entities] == ["Item", "Shelf"]
