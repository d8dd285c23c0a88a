"""How the analyst reads scopes written by people who never saw the scope format: section names by
meaning, relation sentences, rules and roles in feature lists, prose without markdown, e-mails —
and that every sentence of a paragraph is placed (issue #11)."""

from __future__ import annotations

import pytest

from scopeflow.handlers import requirements as req
from scopeflow.handlers.scope import read_scope
from scopeflow.handlers.scope_sections import letter_lines, section_kind


def _spec(text: str):
    reading = read_scope(text)
    assert reading.unmapped_lines == []
    return reading.spec


def _fields(spec, entity: str) -> dict[str, str]:
    return {f.name: f.reference or f.type for f in spec.entity(entity).fields}


@pytest.mark.parametrize("heading, kind", [
    ("What we track", "entities"), ("Things we keep", "entities"), ("The app stores", "entities"),
    ("Objects", "entities"), ("Records", "entities"), ("Tables", "entities"), ("Entites", "entities"),
    ("Must have", "features"), ("Nice-to-have", "features"), ("Wishlist", "features"),
    ("User stories", "features"), ("Acceptance criteria", "features"), ("Featrues", "features"),
    ("Business rules", "constraints"), ("Rules", "constraints"), ("Reglas", "constraints"),
    ("Third-party services", "integrations"), ("External services", "integrations"),
    ("Background", "prose"), ("Team Todo", "prose"),
])
def test_section_names_are_read_by_meaning(heading, kind):
    assert section_kind(heading) == kind


@pytest.mark.parametrize("heading_style", ["setext", "atx", "bold", "inline"])
def test_a_section_by_another_name_opens_in_any_heading_style(heading_style):
    label = {"setext": "Things we keep\n--------------\n", "atx": "### Things we keep\n",
             "bold": "**Things we keep**\n\n", "inline": "Things we keep:\n"}[heading_style]
    spec = _spec(f"# Kiln log\n\n{label}- **Firing** – kiln (required), fired on (date), cone\n")
    assert _fields(spec, "Firing") == {"kiln": "text", "fired_on": "date", "cone": "text"}


@pytest.mark.parametrize("sentence, child, parent", [
    ("Each pet belongs to an owner.", "Pet", "Owner"),
    ("An appointment is for one pet.", "Appointment", "Pet"),
    ("An owner has many pets.", "Pet", "Owner"),
    ("A owner can have several pets.", "Pet", "Owner"),
    ("Every pet is registered to one owner.", "Pet", "Owner"),
])
def test_a_relation_sentence_makes_the_child_refer_to_its_parent(sentence, child, parent):
    spec = _spec(f"# Vet\n\n## Data\n- Owner: name\n- Pet: name\n- Appointment: on (date)\n\n{sentence}\n")
    assert _fields(spec, child)[parent.lower()] == parent
    relation = [r for r in spec.requirements if r.kind == "relation" and r.sentence == sentence]
    assert relation and relation[0].status == req.UNDERSTOOD


def test_a_field_named_like_an_entity_becomes_the_relation_the_sentence_names_not_a_second_field():
    spec = _spec("# Vet\n\n## Data\n- Owner: name\n- Pet: name, owner\n\nEach pet belongs to an owner.\n")
    assert _fields(spec, "Pet") == {"name": "text", "owner": "Owner"}


def test_a_relation_sentence_about_an_unknown_entity_is_not_understood():
    spec = _spec("# Vet\n\n## Data\n- Owner: name\n- Pet: name\n\nEach pet belongs to a galaxy.\n")
    assert [r.line for r in spec.requirements if r.status == req.NOT_UNDERSTOOD] == [7]


def test_slash_values_are_choices_and_date_and_time_is_a_datetime():
    spec = _spec("# Desk\n\n## Entities\n- Ticket: state (open / waiting / closed), date and time, yes/no flag\n")
    ticket = spec.entity("Ticket")
    assert [(f.name, f.type, f.choices) for f in ticket.fields][:2] == [
        ("state", "choice", ["open", "waiting", "closed"]), ("date_and_time", "datetime", [])]


def test_a_rule_in_a_features_list_is_a_constraint_and_a_role_is_assumed():
    spec = _spec("# Vet\n\n## Data\n- Visit: on (date)\n\n## Must have\n- visits can't be booked in the past\n"
                 "- receptionists can book and cancel visits\n- As a vet, I want to list visits\n")
    assert spec.constraints == ["visits can't be booked in the past"]
    by_text = {r.text: r for r in spec.requirements if r.kind == "feature"}
    assert set(by_text) == {"receptionists can book and cancel visits", "As a vet, I want to list visits"}
    assert all(r.status == req.ASSUMED for r in by_text.values())
    assert "no receptionist role" in by_text["receptionists can book and cancel visits"].assumption
    assert "no vet role" in by_text["As a vet, I want to list visits"].assumption


def test_everyone_and_only_lines_name_no_role_to_assume():
    spec = _spec("# Vet\n\n## Data\n- Visit: on (date)\n\n## Features\n- users can list visits\n"
                 "- As a user, I want to search visits\n")
    assert all(r.status == req.UNDERSTOOD for r in spec.requirements if r.kind == "feature")


@pytest.mark.parametrize("prose, entity, fields", [
    ("members sign up with name email and level (novice, expert).", "Member",
     {"name": "text", "email": "email", "level": "choice"}),
    ("Patrons register with a name, a phone number and a deposit.", "Patron",
     {"name": "text", "phone_number": "text", "deposit": "decimal"}),
    ("we log each delivery with the supplier and the date.", "Delivery", {"supplier": "text", "date": "date"}),
])
def test_sentences_that_introduce_data_become_assumed_entities(prose, entity, fields):
    spec = _spec(f"hello, a small app please. {prose}\n")
    assert {f.name: f.type for f in spec.entity(entity).fields} == fields
    found = [r for r in spec.requirements if r.subject == f"entity:{entity}"]
    assert found[0].status == req.ASSUMED and prose[:20] in found[0].assumption


def test_an_also_sentence_adds_a_field_to_the_entity_that_holds_the_noun():
    spec = _spec("members sign up with name and membership type (monthly, yearly). we log each visit with the "
                 "member and the date. also an expiry date on the membership.\n")
    assert _fields(spec, "Member")["membership_expiry_date"] == "date"
    assert _fields(spec, "Visit") == {"member": "Member", "date": "date"}
    added = next(r for r in spec.requirements if r.subject == "field:Member.membership_expiry_date")
    assert added.status == req.ASSUMED and added.sentence == "also an expiry date on the membership."


def test_every_sentence_of_a_paragraph_is_a_requirement_source():
    text = ("i run a dog walking business. customers book walks with a date and a dog name. "
            "our van is blue. staff can list walks.\n")
    spec = _spec(text)
    placed = {r.sentence: r for r in spec.requirements if r.sentence}
    assert set(placed) == {"i run a dog walking business.", "customers book walks with a date and a dog name.",
                           "our van is blue.", "staff can list walks."}
    assert placed["i run a dog walking business."].kind == "summary"
    assert placed["our van is blue."].status == req.NOT_UNDERSTOOD
    assert all(r.line == 1 and r.source == text.strip() for r in spec.requirements)


def test_an_unplaced_sentence_outside_the_summary_is_not_understood_even_on_a_covered_line():
    spec = _spec("# Shop\n\nWe sell tea.\n\n## Entities\n- Tea: name\n\n## Notes\n"
                 "We want to list teas. The moon is made of cheese.\n")
    lost = [r for r in spec.requirements if r.status == req.NOT_UNDERSTOOD]
    assert [(r.line, r.sentence) for r in lost] == [(9, "The moon is made of cheese.")]
    assert any(q.topic == "line:9" for q in spec.questions)


@pytest.mark.parametrize("scope", [
    "# Shop\n\n## Entities\n### Tea\nname (text). origin (text).\n",
    "# Shop\n\n## Entities\n- Tea: name\n\n## Integrations\nStripe takes card payments. It needs STRIPE_API_KEY.\n",
    "# Shop\n\n## Entities\n- Tea: name\n\n## Constraints\nPrices are in euro. Nothing is ever deleted.\n",
])
def test_a_line_read_as_a_whole_places_every_sentence_on_it(scope):
    assert [r for r in _spec(scope).requirements if r.status == req.NOT_UNDERSTOOD] == []


def test_an_email_frame_is_no_requirement_and_the_body_is_read():
    text = ("Hi Sam,\r\n\r\nhere is what the allotment society needs.\r\n\r\nWe keep plots with a number and a "
            "yearly rent. Each plot is rented by one tenant. For each tenant we store their name and phone.\r\n"
            "\r\nThanks,\r\nMaria Lopez\r\n")
    reading = read_scope(text)
    assert reading.unmapped_lines == []
    assert not [r for r in reading.spec.requirements if r.line in (1, 9, 10)]
    assert _fields(reading.spec, "Plot") == {"number": "integer", "yearly_rent": "decimal", "tenant": "Tenant"}
    assert letter_lines([(1, "Dear Ana,"), (2, "text"), (3, "Best regards,"), (4, "Jo")]) == {1, 3, 4}


def test_a_payment_entity_is_listed_by_the_templates_not_custom_code():
    spec = _spec("# Bills\n\n## Entities\n- Payment: amount, paid on (date)\n\n## Features\n- list payments\n"
                 "- take card payments online\n")
    assert [(f.kind, f.buildable) for f in spec.features] == [("crud", True), ("custom", False)]
