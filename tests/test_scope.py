"""The scope analyst: what it reads from a scope, what it asks, and how answers change the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.scope import (
    ScopeError,
    analyze,
    analyze_scope,
    apply_answers,
    apply_answers_op,
    classify_feature,
    resolve_answers,
)
from scopeflow.handlers.spec import Spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "scopes"


def _example(name: str) -> Spec:
    return analyze((EXAMPLES / name).read_text(encoding="utf-8"))


def _fields(spec: Spec, entity: str) -> dict[str, tuple[str, str | None]]:
    return {f.name: (f.type, f.reference) for f in spec.entity(entity).fields}


def _ctx(tmp_path: Path) -> RecordingContext:
    return RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="analyze", workspace=tmp_path)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("text", ["", "   \n\t\n", "\x00\x01"])
def test_an_empty_scope_is_refused(text):
    with pytest.raises(ScopeError, match="^scope is empty$"):
        analyze(text)


def test_a_scope_over_one_megabyte_is_refused():
    with pytest.raises(ScopeError, match="^scope is larger than 1 MB$"):
        analyze("# Big\n" + "x" * (1024 * 1024))


def test_a_scope_that_is_not_text_is_refused():
    with pytest.raises(ScopeError, match="scope must be text"):
        analyze(b"# bytes")  # type: ignore[arg-type]


def test_the_operator_turns_a_bad_scope_into_a_design_flaw(tmp_path):
    with pytest.raises(TaskFailure) as caught:
        analyze_scope(_ctx(tmp_path), scope="  ")
    assert caught.value.kind == "design_flaw"
    assert caught.value.message == "scope is empty"


# ---------------------------------------------------------------- the example scopes

def test_every_example_scope_analyses_and_round_trips():
    names = sorted(p.name for p in EXAMPLES.glob("*.md"))
    assert len(names) >= 6
    for name in names:
        spec = _example(name)
        assert Spec.from_data(spec.to_data()) == spec, name
        for entity in spec.entities:
            for item in entity.fields:
                assert item.reference is None or spec.entity(item.reference), (name, item.name)


def test_simple_bookshelf():
    spec = _example("simple-bookshelf.md")
    assert spec.title == "Bookshelf"
    assert [e.name for e in spec.entities] == ["Book", "Author"]
    book = spec.entity("Book")
    assert _fields(spec, "Book") == {"title": ("text", None), "pages": ("integer", None),
                                     "read": ("boolean", None), "author": ("reference", "Author")}
    title = book.fields[0]
    assert title.required and title.maximum == 200
    assert book.fields[1].minimum == 1 and book.fields[2].default == "false"
    assert spec.entity("Author").fields[0].unique
    assert [f.kind for f in spec.features] == ["crud", "search"]
    assert spec.questions == [] and spec.complexity == "simple" and not spec.wants_login


def test_medium_helpdesk():
    spec = _example("medium-helpdesk.md")
    assert [e.name for e in spec.entities] == ["Customer", "Agent", "Ticket", "Comment"]
    assert spec.entity("Customer").label == "Customers"
    ticket = {f.name: f for f in spec.entity("Ticket").fields}
    assert ticket["priority"].choices == ["low", "normal", "high", "urgent"]
    assert ticket["priority"].default == "normal"
    assert ticket["status"].type == "choice" and ticket["status"].choices == ["open", "pending", "closed"]
    assert (ticket["customer"].reference, ticket["customer"].required) == ("Customer", True)
    assert ticket["assignee"].reference == "Agent"          # "-> agents" resolves to the singular
    assert ticket["opened_at"].type == "datetime"            # timestamp synonym
    assert _fields(spec, "Comment")["body"] == ("long_text", None)   # markdown synonym
    assert [f.kind for f in spec.features] == ["crud", "search", "export", "login", "health"]
    assert spec.wants_login and spec.complexity == "medium" and spec.questions == []


def test_complex_inventory():
    spec = _example("complex-inventory.md")
    assert [e.name for e in spec.entities] == [
        "Warehouse", "Supplier", "Product", "StockItem", "PurchaseOrder", "OrderLine"]
    assert spec.entity("StockItem").table == "stock_items"
    product = {f.name: f for f in spec.entity("Product").fields}
    assert product["sku"].unique and product["sku"].maximum == 32
    assert product["unit_price"].type == "decimal" and product["unit_price"].minimum == 0
    assert product["description"].type == "long_text"
    assert product["supplier"].reference == "Supplier"
    assert _fields(spec, "OrderLine")["purchase_order"] == ("reference", "PurchaseOrder")
    status = {f.name: f for f in spec.entity("PurchaseOrder").fields}["status"]
    assert status.choices == ["draft", "sent", "received", "cancelled"] and status.default == "draft"
    supplier_rating = {f.name: f for f in spec.entity("Supplier").fields}["rating"]
    assert (supplier_rating.minimum, supplier_rating.maximum) == (1, 5)
    kinds = {f.kind for f in spec.features}
    assert {"crud", "search", "export", "login", "api", "health"} <= kinds
    assert all(f.buildable for f in spec.features)
    assert spec.integrations[0].credentials == ["LABEL_PRINTER_TOKEN"]
    assert spec.wants_login and spec.complexity == "complex"


def test_monster_marketplace():
    spec = _example("monster-marketplace.md")
    assert len(spec.entities) == 14
    assert _fields(spec, "Category")["parent"] == ("reference", "Category")     # self reference
    assert _fields(spec, "OrderLine")["order_field"] == ("reference", "Order")  # "order" is SQL
    unbuildable = [f for f in spec.features if not f.buildable]
    assert len(unbuildable) == 6
    assert all(f.reason.startswith("no offline template builds: ") for f in unbuildable)
    assert any(f.kind == "export" and "pdf" in f.reason.lower() for f in unbuildable)
    assert [i.name for i in spec.integrations] == ["stripe_payments", "send_grid_email", "shipping_rates_provider"]
    assert spec.integrations[0].credentials == ["STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"]
    [question] = spec.questions
    assert question.topic == "credentials:shipping_rates_provider"
    assert question.default == "SHIPPING_RATES_PROVIDER_API_KEY"
    assert spec.integrations[2].credentials == [question.default]      # the default is applied
    assert spec.complexity == "monster"


def test_prose_todo_is_mined_for_entities_fields_and_references():
    spec = _example("prose-todo.md")
    assert spec.title == "Team Todo"
    assert _fields(spec, "Project") == {"name": ("text", None), "deadline": ("date", None)}
    assert _fields(spec, "Task") == {"title": ("text", None), "description": ("long_text", None),
                                     "due_date": ("date", None), "project": ("reference", "Project")}
    [question] = spec.questions
    assert question.topic == "entities:prose" and question.default == "yes"
    assert "Project (name, deadline)" in question.text
    assert spec.wants_login
    assert {f.kind for f in spec.features} >= {"crud", "login"}


def test_credential_shop_names_the_credentials_its_integrations_need():
    spec = _example("credential-shop.md")
    assert [(i.name, i.credentials) for i in spec.integrations] == [
        ("payment_gateway", ["PAYMENT_API_KEY"]),
        ("accounting_export_service", ["ACCOUNTING_EXPORT_SERVICE_API_KEY"]),
    ]
    assert [q.topic for q in spec.questions] == ["credentials:accounting_export_service"]
    payments = [f for f in spec.features if f.kind == "custom"]
    assert len(payments) == 1 and not payments[0].buildable


def test_credential_shop_integrations_stay_not_built_with_their_credentials_needed_once_built():
    from scopeflow.handlers.planner import make_plan

    tasks = {t.id: t for t in make_plan(_example("credential-shop.md")).tasks}
    payment = tasks["integration-payment_gateway"]
    assert not payment.buildable
    assert payment.reason.endswith("(PAYMENT_API_KEY needed once it is built)")


def test_reminders_asked_for_by_email_are_sent_through_the_email_integration():
    from scopeflow.handlers import recipes
    from scopeflow.handlers.planner import make_plan

    spec = _example("email-reminders.md")
    [reminder] = recipes.find(spec)
    assert (reminder.params["smtp"], reminder.params["smtp_subject"]) == ("Email server", "integration:email_server")
    assert set(recipes.credentials(spec)) == set(recipes.SMTP_CREDENTIALS)
    plan = make_plan(spec)
    assert "integration-email_server" not in {t.id for t in plan.tasks}     # the recipes task builds it
    integration = next(r for r in spec.requirements if r.subject == "integration:email_server")
    assert integration.id in next(t for t in plan.tasks if t.id == recipes.TASK_ID).requirements


@pytest.mark.parametrize("reminder, integration", [
    ("- Remind members 2 days before their loans are due", "- Email server (needs SMTP_HOST)"),  # not by email
    ("- Email members a reminder 2 days before their loans are due", "- Payment gateway (needs PAY_KEY)"),
])
def test_reminders_without_email_asked_or_without_an_email_integration_print_what_they_cannot_send(
        reminder, integration):
    from scopeflow.handlers import recipes

    scope = ("# Library\n## Entities\n- Member: name (text), email (email, required)\n"
             "- Loan: member (-> Member), due_on (date, required)\n"
             f"## Features\n{reminder}\n## Integrations\n{integration}\n")
    spec = analyze(scope)
    [found] = recipes.find(spec)
    assert found.params["smtp"] is None and recipes.smtp_integration(spec) is None
    assert set(recipes.credentials(spec)) == set(recipes.SMTP_CREDENTIALS)     # still read, optionally


def test_hostile_names_become_safe_identifiers_and_labels_stay_as_written():
    spec = _example("hostile-names.md")
    assert spec.title == '<script>alert("owned")</script> Café & Co'
    cafe = spec.entity("CafeUnicode")
    assert cafe.label == "Café Ünïcode" and cafe.table == "cafe_unicodes"
    assert [f.name for f in cafe.fields] == [
        "class_", "from_field", "order_field", "select_field", "type_", "id_field", "naive_name",
        "n_2nd_place", "title", "title_2"]
    assert cafe.fields[0].label == "class"
    assert _fields(spec, "Select")["cafe"] == ("reference", "CafeUnicode")
    order = spec.entity("Order")
    assert order.label == "<b>Order</b>" and order.table == "orders"
    [question] = spec.questions
    assert question.topic == "field_type:Order.status" and question.default == "text"
    for entity in spec.entities:
        assert entity.name.isidentifier() and entity.name.isascii()
        assert all(f.name.isidentifier() and f.name.isascii() for f in entity.fields)


# ---------------------------------------------------------------- liberal syntax

def test_bullets_separators_and_synonyms_are_read_liberally():
    spec = analyze("""# Shop
## data model
* Products — name: str required, price: money min 0, notes (text area)
+ customer - email (e-mail, unique), site (link), vip (bool), joined (timestamp)
1. ORDERS: buyer ref Customers, items (int, min 1, max 99), total: float
""")
    assert [e.name for e in spec.entities] == ["Product", "Customer", "Order"]
    assert _fields(spec, "Product") == {"name": ("text", None), "price": ("decimal", None),
                                        "notes": ("long_text", None)}
    product = spec.entity("Product").fields
    assert product[0].required and product[1].minimum == 0
    assert _fields(spec, "Customer") == {"email": ("email", None), "site": ("url", None),
                                         "vip": ("boolean", None), "joined": ("datetime", None)}
    assert _fields(spec, "Order")["buyer"] == ("reference", "Customer")
    assert spec.entity("Order").fields[1].maximum == 99


def test_fields_may_follow_as_sub_bullets_or_under_a_heading():
    spec = analyze("""# Notes
## Entities
- Notebook
  - title (text, required)
  - archived: boolean
### Note
- body (long text)
- notebook (-> Notebook)
""")
    assert _fields(spec, "Notebook") == {"title": ("text", None), "archived": ("boolean", None)}
    assert _fields(spec, "Note") == {"body": ("long_text", None), "notebook": ("reference", "Notebook")}


def test_labels_lose_control_characters_but_keep_unicode():
    spec = analyze("# Caf\x07é\n## Entities\n- Thé\u202e: nom\x00 (text)\n")
    assert spec.title == "Café"
    assert spec.entity("The").label == "Thé"
    assert spec.entity("The").fields[0].label == "nom"


@pytest.mark.parametrize(("text", "kind", "buildable"), [
    ("Manage books", "crud", True),
    ("Search and filter orders", "search", True),
    ("Export orders to CSV", "export", True),
    ("Export invoices as PDF", "export", False),
    ("Users sign up and log in", "login", True),
    ("A JSON API for books", "api", True),
    ("Health check endpoint", "health", True),
    ("Send SMS reminders", "custom", False),
])
def test_features_are_classified(text, kind, buildable):
    feature = classify_feature(text)
    assert (feature.kind, feature.buildable) == (kind, buildable)
    assert feature.buildable or feature.reason.startswith("no offline template builds: ")


def test_an_unrecognised_feature_bullet_is_custom_and_not_buildable():
    spec = analyze("# X\n## Entities\n- Thing: name\n## Features\n- Teleport the warehouse\n")
    [feature] = spec.features
    assert (feature.kind, feature.buildable) == ("custom", False)
    assert feature.reason == "no offline template builds: Teleport the warehouse"


def test_a_login_constraint_asks_for_login():
    spec = analyze("# X\n## Entities\n- Thing: name\n## Constraints\n- Only authenticated staff may edit\n")
    assert spec.wants_login


def test_a_scope_without_any_data_still_returns_a_spec_with_a_question(tmp_path):
    result = analyze_scope(_ctx(tmp_path), scope="# Dream\nMake everyone happier somehow.")
    assert result["buildable"] is False
    assert result["spec"]["entities"] == []
    assert [q["topic"] for q in result["questions"]] == ["data:none"]
    assert result["summary"].startswith("0 entities, 0 fields")


# ---------------------------------------------------------------- questions and answers

UNKNOWN_TYPE = "# T\n## Entities\n- Book: title, rating (stars), author (-> Writer)\n"


def test_an_unknown_type_becomes_text_with_a_question():
    spec = analyze(UNKNOWN_TYPE)
    assert _fields(spec, "Book")["rating"] == ("text", None)
    topics = {q.topic: q for q in spec.questions}
    assert topics["field_type:Book.rating"].default == "text"
    assert topics["reference:Book.author"].default == "create"
    assert _fields(spec, "Writer") == {"name": ("text", None)}    # the default was applied


def test_answers_change_types_and_references_and_close_the_questions():
    spec = analyze(UNKNOWN_TYPE)
    ids = {q.topic: q.id for q in spec.questions}
    answered = apply_answers(spec, {ids["field_type:Book.rating"]: "int",
                                    ids["reference:Book.author"]: "text"})
    assert _fields(answered, "Book") == {"title": ("text", None), "rating": ("integer", None),
                                         "author": ("text", None)}
    assert [e.name for e in answered.entities] == ["Book"]       # unused Writer dropped
    assert answered.questions == []
    assert _fields(spec, "Book")["rating"] == ("text", None)     # the original is untouched


def test_a_type_answer_may_name_an_entity_or_list_choices():
    spec = analyze("# T\n## Entities\n- Author: name\n- Book: writer (person), level (grade)\n")
    ids = {q.topic: q.id for q in spec.questions}
    answered = apply_answers(spec, {ids["field_type:Book.writer"]: "authors",
                                    ids["field_type:Book.level"]: "choice: easy|hard"})
    fields = {f.name: f for f in answered.entity("Book").fields}
    assert (fields["writer"].type, fields["writer"].reference) == ("reference", "Author")
    assert fields["level"].choices == ["easy", "hard"]


def test_a_bad_answer_is_a_clear_one_line_error():
    spec = analyze(UNKNOWN_TYPE)
    ids = {q.topic: q.id for q in spec.questions}
    with pytest.raises(ScopeError, match=rf"^answer to {ids['field_type:Book.rating']}: .*unknown type 'sparkly'"):
        apply_answers(spec, {ids["field_type:Book.rating"]: "sparkly"})
    with pytest.raises(ScopeError, match="not 'create', 'text' or an entity"):
        apply_answers(spec, {ids["reference:Book.author"]: "Nobody"})


def test_prose_entities_can_be_replaced_by_an_answer():
    spec = _example("prose-todo.md")
    answered = apply_answers(spec, {"q1": "Board: title (text, required)\nCard: text (long text), board (-> Board)"})
    assert [e.name for e in answered.entities] == ["Board", "Card"]
    assert _fields(answered, "Card") == {"text": ("long_text", None), "board": ("reference", "Board")}


def test_an_entity_without_fields_gets_default_fields_an_answer_replaces():
    spec = analyze("Users can manage recipes.")
    topics = {q.topic: q for q in spec.questions}
    assert _fields(spec, "Recipe") == {"name": ("text", None)}
    question = topics["fields:Recipe"]
    answered = apply_answers(spec, {question.id: "title (text, required), servings (integer, min 1)"})
    assert _fields(answered, "Recipe") == {"title": ("text", None), "servings": ("integer", None)}


def test_no_data_answer_creates_the_entities():
    spec = analyze("# Dream\nMake everyone happier somehow.")
    answered = apply_answers(spec, {"q1": "- Wish: text (text, required)"})
    assert [e.name for e in answered.entities] == ["Wish"]


def test_credential_answers_must_be_variable_names():
    spec = _example("credential-shop.md")
    answered = apply_answers(spec, {"q1": "LEDGER_TOKEN, LEDGER_SECRET"})
    assert answered.integrations[1].credentials == ["LEDGER_TOKEN", "LEDGER_SECRET"]
    with pytest.raises(ScopeError, match="upper-case variable names"):
        apply_answers(spec, {"q1": "my key"})
    with pytest.raises(ScopeError, match="upper-case variable names"):
        apply_answers(spec, {"q1": "SCOPEFLOW_SECRET_KEY"})


def test_unknown_answer_ids_are_ignored_and_defaults_are_counted():
    spec = analyze(UNKNOWN_TYPE)
    outcome = resolve_answers(spec, {"q99": "whatever"})
    assert outcome.ignored == ["q99"]
    assert sorted(outcome.defaults_used) == sorted(q.id for q in spec.questions)
    assert outcome.applied == []
    assert outcome.spec.entities == spec.entities


def test_the_analyze_operator_records_what_it_found(tmp_path):
    ctx = _ctx(tmp_path)
    result = analyze_scope(ctx, scope=(EXAMPLES / "complex-inventory.md").read_text())
    assert result["buildable"] is True
    assert result["summary"] == "6 entities, 27 fields, 7 features (0 not buildable offline), complexity complex"
    assert ctx.recorded["scopeflow.spec.entities"] == 6
    assert ctx.recorded["scopeflow.spec.fields"] == 27
    assert ctx.recorded["scopeflow.spec.questions"] == 0
    assert ctx.recorded["scopeflow.spec.complexity"] == "complex"
    assert Spec.from_data(result["spec"]).entity("Product").table == "products"


def test_the_apply_answers_operator_reports_applied_ignored_and_defaults(tmp_path):
    ctx = _ctx(tmp_path)
    spec = analyze(UNKNOWN_TYPE)
    ids = {q.topic: q.id for q in spec.questions}
    result = apply_answers_op(ctx, spec=spec.to_data(),
                              answers={ids["field_type:Book.rating"]: "integer", "nope": "x"})
    assert result["applied"] == [ids["field_type:Book.rating"]]
    assert result["ignored"] == ["nope"]
    assert ctx.recorded["scopeflow.spec.defaults_used"] == 1
    assert Spec.from_data(result["spec"]).questions == []
    with pytest.raises(TaskFailure) as caught:
        apply_answers_op(ctx, spec=spec.to_data(), answers={ids["field_type:Book.rating"]: "sparkly"})
    assert caught.value.kind == "design_flaw"


def test_arbitrary_fragments_either_analyse_or_fail_with_a_scope_error():
    """A seeded fuzz over scope syntax: never a crash, always a consistent spec."""
    import random

    rng = random.Random(7)
    pieces = ["# ", "## Entities\n", "## Features\n", "## Integrations\n", "- ", "  - ", "(", ")", ":",
              "->", " ref ", ",", "|", "choice: ", "min ", "max ", "default ", "required", "\n", "Book",
              "authors", "text", "int", "### ", "users can create ", " with a ", " and ", "each task has ",
              "é", "—", "<b>", "\x00", "9", " "]
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        try:
            spec = analyze(text)
        except ScopeError:
            continue
        names = {e.name for e in spec.entities}
        assert all(f.reference in names for e in spec.entities for f in e.fields if f.reference)
        assert apply_answers(spec, {}).questions == []


# ------------------------------------------------------------------ requirements and line coverage

def test_inline_label_sections_are_read_like_headings():
    spec = analyze("# Gym\n\nEntities:\n- Member: full_name: string (required)\n- GymClass: title (text)\n\n"
                   "Features:\n- Search members\n")
    assert [e.name for e in spec.entities] == ["Member", "GymClass"]
    full_name = spec.entity("Member").fields[0]
    assert (full_name.name, full_name.type, full_name.required) == ("full_name", "text", True)
    assert [f.kind for f in spec.features] == ["search"]


def test_arrow_reference_keeps_its_modifiers_and_the_title_is_kept():
    spec = analyze("# Its Title\n\n## Entities\n- Booking: class -> GymClass (required)\n- GymClass: title\n")
    assert spec.title == "Its Title"
    field = spec.entity("Booking").fields[0]
    assert (field.type, field.reference, field.required) == ("reference", "GymClass", True)


def test_a_lead_in_sentence_is_no_feature_and_unbuildable_items_say_so():
    spec = analyze("# Club\n## Entities\n- Member: name\n## Features\nThe app should support:\n"
                   "- Members can be added and removed\n- API with rate limiting\n- 99.9% uptime SLA\n")
    assert [(f.text, f.buildable) for f in spec.features] == [
        ("Members can be added and removed", True), ("API with rate limiting", False),
        ("99.9% uptime SLA", False)]


def test_every_requirement_names_its_source_line():
    text = "# Shop\n\n## Entities\n- Product: name (text, required), price (decimal, min 0)\n"
    spec = analyze(text)
    by_text = {r.text: (r.kind, r.line, r.source) for r in spec.requirements}
    line = "- Product: name (text, required), price (decimal, min 0)"
    assert by_text["Product.name is required"] == ("modifier", 4, line)
    assert by_text["Product.price is at least 0"] == ("modifier", 4, line)
    assert by_text["entity Product"] == ("entity", 4, line)
    assert by_text["the app is called 'Shop'"] == ("title", 1, "# Shop")


def test_a_line_the_analyst_cannot_place_is_a_not_understood_requirement_with_a_question():
    spec = analyze("# Metrics\n## Entities\n- Reading: value (decimal)\n\n```\nSELECT 1;\n```\n")
    [odd] = [r for r in spec.requirements if r.status == "not understood"]
    assert (odd.line, odd.kind, odd.text) == (6, "line", "SELECT 1;")
    question = next(q for q in spec.questions if q.id == odd.question)
    assert question.topic == "line:6" and question.default == "ignore"
    with pytest.raises(ScopeError, match="rewrite the line"):
        apply_answers(spec, {odd.question: "make it a chart"})


def test_link_reference_definitions_are_structure_not_requirements():
    from scopeflow.handlers.scope import read_scope

    reading = read_scope("# A\n## Entities\n- Book: title\n\n[docs]: https://example.com\n")
    assert reading.unmapped_lines == []
    assert all(r.line != 5 for r in reading.spec.requirements)


def test_a_line_the_markdown_reader_drops_is_counted_as_unmapped(monkeypatch):
    from scopeflow.handlers import scope_markdown
    from scopeflow.handlers.scope import read_scope

    real = scope_markdown._token_blocks
    monkeypatch.setattr(scope_markdown, "_token_blocks", lambda text: [b for b in real(text) if b.line != 4])
    reading = read_scope("# A\n## Entities\n- Book: title\n- Author: name\n")
    assert reading.unmapped_lines == [4]
    assert [e.name for e in reading.spec.entities] == ["Book"]


def test_analyze_scope_records_requirement_counts_on_its_span():
    ctx = RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="analyze", workspace=Path("."))
    result = analyze_scope(ctx, "# T\n## Entities\n- Tag\n")
    assert ctx.recorded["scopeflow.requirements.unmapped_lines"] == 0
    assert ctx.recorded["scopeflow.requirements.total"] == len(result["spec"]["requirements"])
    assert ctx.recorded["scopeflow.requirements.assumed"] >= 2      # Tag and its default name field


def test_answers_turn_assumptions_into_understood_requirements_and_keep_lines():
    spec = analyze("# T\n## Entities\n- Asset: colour (rgb)\n")
    question = next(q for q in spec.questions if q.topic.startswith("field_type:"))
    answered = apply_answers(spec, {question.id: "text"})
    assert [r.status for r in spec.requirements if r.subject == "field:Asset.colour"] == ["assumed"]
    [colour] = [r for r in answered.requirements if r.subject == "field:Asset.colour"]
    assert colour.status == "understood" and colour.line == 3


def test_the_readme_scope_example_reads_as_documented():
    import re

    from scopeflow.handlers.scope import read_scope

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## The scope format\n\n```markdown\n(.*?)```", readme, re.S)[1]
    reading = read_scope(example)
    assert reading.unmapped_lines == []
    assert [e.name for e in reading.spec.entities] == ["Product", "Order", "Supplier"]
    supplier = {f.name: (f.type, f.required, f.unique, f.maximum) for f in reading.spec.entity("Supplier").fields}
    assert supplier == {"name": ("text", True, True, 80.0), "phone": ("text", False, False, None)}
    quantity = reading.spec.entity("Order").fields[2]
    assert (quantity.minimum, quantity.maximum) == (1.0, 99.0)
    assert all(r.status == "understood" for r in reading.spec.requirements)


def test_a_spec_replaced_by_another_reader_keeps_every_line_and_marks_what_changed():
    from scopeflow.handlers.scope import reconcile_requirements
    from scopeflow.handlers.spec import Entity, Field

    spec = analyze("# Rota\n\nCoordinators create shifts with a date and a location.\n")
    spec.entities = [Entity("Shift", "Shift", "shifts", [Field("day", "Day", "date")])]
    reconcile_requirements(spec, {}, "LLM analyst", "assumed")
    by_subject = {r.subject or r.text: r for r in spec.requirements}
    assert by_subject["Shift.date (date)"].reason == "not built as read: replaced by the LLM analyst"
    assert by_subject["Shift.date (date)"].line == 3
    assert by_subject["field:Shift.day"].status == "assumed" and by_subject["field:Shift.day"].source == "(LLM analyst)"


def test_prose_describing_two_entities_and_a_dozen_fields_reads_them_all():
    spec = analyze("# Clinic\n\nWe keep track of our patients: for each patient we store their first name, "
                   "last name, date of birth and any allergies. An appointment has a start time, a duration "
                   "in minutes, a status (booked, cancelled or done) and some notes.\n")
    fields = {e.name: {f.name: f.type for f in e.fields} for e in spec.entities}
    assert fields == {
        "Patient": {"first_name": "text", "last_name": "text", "date_of_birth": "date", "allergies": "text"},
        "Appointment": {"start_time": "datetime", "duration_in_minutes": "integer", "status": "choice",
                        "notes": "long_text"}}
    assert spec.entity("Appointment").fields[2].choices == ["booked", "cancelled", "done"]
    assert {r.status for r in spec.requirements if r.kind in ("entity", "field")} == {"assumed"}


@pytest.mark.parametrize("line, status", [
    ("Users must log in", "understood"),
    ("Only logged-in users can edit orders", "understood"),
    ("Only authenticated agents can close tickets", "assumed"),
    ("Sellers log in to see their own orders", "assumed"),
])
def test_login_that_also_asks_for_roles_or_ownership_is_an_assumption(line, status):
    spec = analyze(f"# A\n## Entities\n- Book: title\n## Constraints\n- {line}\n")
    [constraint] = [r for r in spec.requirements if r.kind == "constraint"]
    assert constraint.status == status
    if status == "assumed":
        assert "roles and per-user ownership are not built" in constraint.assumption
