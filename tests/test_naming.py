"""Any label becomes a safe identifier; labels keep what the person wrote."""

from __future__ import annotations

import keyword

import pytest

from scopeflow.handlers.naming import (
    clean_label,
    dedupe,
    entity_name,
    field_name,
    lookup_key,
    singular,
    table_name,
)


@pytest.mark.parametrize(("label", "expected"), [
    ("Title", "title"),
    ("Due Date", "due_date"),
    ("dueDate", "due_date"),
    ("due-date", "due_date"),
    ("Café Ünïcode", "cafe_unicode"),
    ("Straße", "strasse"),
    ("2fa code", "n_2fa_code"),
    ("class", "class_"),
    ("from", "from_field"),
    ("order", "order_field"),
    ("select", "select_field"),
    ("user", "user_field"),
    ("id", "id_field"),
    ("type", "type_"),
    ("list", "list_"),
    ("match", "match_"),
    ("created_at", "created_at_field"),
    ("<b>Price</b>", "price"),
    ("书名", "shu_ming"),          # other scripts are spelled out, not dropped
    ("Заказ клиента", "zakaz_klienta"),
    ("☕🍰", "field"),              # symbols and emoji name nothing
])
def test_field_names_are_safe_snake_case(label, expected):
    assert field_name(label) == expected


@pytest.mark.parametrize(("label", "expected"), [
    ("Book", "Book"),
    ("books", "Book"),
    ("Categories", "Category"),
    ("Boxes", "Box"),
    ("Addresses", "Address"),
    ("Status", "Status"),
    ("order items", "OrderItem"),
    ("Café Ünïcode", "CafeUnicode"),
    ("People", "Person"),
    ("ORDERS", "Order"),
    ("None", "NoneEntity"),
    ("session", "SessionEntity"),
    ("3D Model", "N3DModel"),
])
def test_entity_names_are_singular_pascal_case(label, expected):
    assert entity_name(label) == expected


@pytest.mark.parametrize(("entity", "expected"), [
    ("Book", "books"), ("Category", "categories"), ("Box", "boxes"), ("OrderItem", "order_items"),
    ("Person", "people"), ("Day", "days"), ("Group", "groups_table"),
])
def test_table_names_are_plural_snake_case(entity, expected):
    assert table_name(entity) == expected


def test_generated_names_are_never_keywords_and_never_start_with_a_digit():
    for label in ["if", "True", "9 lives", "while", "lambda", "async", "__", "!!!"]:
        name = field_name(label)
        assert name.isidentifier() and not keyword.iskeyword(name) and not name[0].isdigit()
        cls = entity_name(label)
        assert cls.isidentifier() and not keyword.iskeyword(cls)


def test_duplicates_after_conversion_get_numbered_suffixes():
    assert dedupe(["title", "title", "name", "title", "title_2"]) == [
        "title", "title_2", "name", "title_3", "title_2_2"]


def test_labels_keep_unicode_and_html_but_lose_control_characters():
    assert clean_label("<b>Café</b>\x00 \u202eshop\t\n") == "<b>Café</b> shop"


def test_lookup_keys_match_across_case_and_number():
    assert lookup_key("authors") == lookup_key("Author") == "author"
    assert lookup_key("Order Items") == lookup_key("order_item") == "orderitem"
    assert singular("bus") == "bus"
