"""A scope of thousands of lines builds in time linear in its plan: what each plan task reads of the
spec is worked out once per task, not once per question (recipes.remembered, serde's converters)."""

from __future__ import annotations

import dataclasses

import pytest

from scopeflow.handlers import recipes, serde
from scopeflow.handlers.planner import make_plan
from scopeflow.handlers.spec import Spec
from tests.test_recipes import spec_of


def test_inside_remembered_the_lines_are_recognised_once(monkeypatch):
    spec = spec_of("conference")
    calls = []
    real = recipes._recognise_now
    monkeypatch.setattr(recipes, "_recognise_now", lambda s: calls.append(s) or real(s))
    with recipes.remembered(spec):
        first = recipes.find(spec)
        assert recipes.find(spec) == first and recipes.misses(spec) == recipes.misses(spec)
        recipes.covered_subjects(spec)
    assert len(calls) == 1
    recipes.find(spec)
    assert len(calls) == 2   # outside the block every call recognises again


def test_a_remembered_answer_cannot_be_changed_by_its_caller():
    spec = spec_of("conference")
    with recipes.remembered(spec):
        found = recipes.find(spec)
        assert found, "the conference scope has recipes"
        found[0].name, found[0].params["x"] = "changed", 1
        found.clear()
        again = recipes.find(spec)
    assert again == recipes.find(spec) and again[0].name != "changed" and "x" not in again[0].params


def test_another_spec_inside_the_block_is_recognised_for_itself():
    conference, library = spec_of("conference"), spec_of("library")
    with recipes.remembered(conference):
        assert recipes.find(library) == recipes.find(spec_of("library"))
        assert recipes.find(conference) != recipes.find(library)


def test_rendering_with_and_without_the_memo_gives_the_same_files(monkeypatch):
    from scopeflow.handlers.builder import render_task

    spec = spec_of("conference")
    plan = make_plan(spec)
    with_memo = {t.id: render_task(spec, plan, t) for t in plan.tasks if t.buildable}
    monkeypatch.setattr(recipes, "remembered", lambda s: _no_memo())
    assert {t.id: render_task(spec, plan, t) for t in plan.tasks if t.buildable} == with_memo


class _no_memo:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@dataclasses.dataclass
class _Inner:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Outer:
    inner: _Inner | None
    items: list[_Inner]
    pairs: tuple[str, ...] = ()
    by_name: dict[str, _Inner] = dataclasses.field(default_factory=dict)
    loose: dict[str, int] = dataclasses.field(default_factory=dict)
    maybe: list[_Inner | None] = dataclasses.field(default_factory=list)


def test_serde_round_trips_nested_optional_and_container_fields():
    value = _Outer(inner=_Inner("a", ["x"]), items=[_Inner("b")], pairs=("p", "q"),
                   by_name={"c": _Inner("c", ["y", "z"])}, loose={"n": 1}, maybe=[None, _Inner("d")])
    data = serde.to_data(value)
    back = serde.from_data(_Outer, data)
    assert back == value and isinstance(back.pairs, tuple) and isinstance(back.by_name["c"], _Inner)
    assert serde.from_data(_Outer, {"inner": None, "items": []}) == _Outer(inner=None, items=[])
    back.items[0].tags.append("new")
    assert data["items"][0]["tags"] == []   # the object owns its lists: the task data is not aliased


def test_serde_refuses_unknown_fields_and_non_objects():
    with pytest.raises(TypeError, match="unknown field"):
        serde.from_data(_Inner, {"name": "a", "colour": "red"})
    with pytest.raises(TypeError, match="expected an object"):
        serde.from_data(_Outer, {"inner": "not an object", "items": []})


def test_a_spec_survives_the_round_trip_unchanged():
    spec = spec_of("library")
    assert Spec.from_data(spec.to_data()) == spec
