"""The planner turns a Spec into a valid task DAG: ownership, dependencies, phases, blockers."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.plan import Plan, PlanTask
from scopeflow.handlers.planner import make_plan, plan_build, topological_order, validate_plan
from scopeflow.handlers.spec import Entity, Feature, Field, Integration, Question, Spec


def entity(name: str, table: str, *fields: Field) -> Entity:
    return Entity(name=name, label=name, table=table, fields=list(fields) or [Field("name", "Name", "text")])


def ref(name: str, target: str, required: bool = False) -> Field:
    return Field(name=name, label=name, type="reference", reference=target, required=required)


def library(**extra) -> Spec:
    return Spec(title="Library", entities=[
        entity("Book", "books", Field("title", "Title", "text", required=True), ref("author", "Author", True)),
        entity("Author", "authors"),
    ], **extra)


def test_plan_has_core_entity_and_test_tasks_with_explicit_dependencies():
    plan = make_plan(library())
    assert [t.id for t in plan.tasks] == ["app-core", "entity-authors", "tests-authors",
                                          "entity-books", "tests-books"]
    assert plan.task("entity-books").depends_on == ["app-core", "entity-authors"]
    assert plan.task("tests-books").depends_on == ["entity-books"]
    assert plan.task("entity-books").files == ["app/webapp/entities/books.py"]


def test_login_adds_an_auth_task_that_tests_depend_on():
    plan = make_plan(library(wants_login=True))
    assert plan.task("auth").depends_on == ["app-core"]
    assert "auth" in plan.task("tests-authors").depends_on


def test_login_feature_also_turns_login_on():
    plan = make_plan(library(features=[Feature("users sign in", "login", True)]))
    assert any(t.kind == "auth" for t in plan.tasks)


def test_every_file_has_exactly_one_owner():
    plan = make_plan(library(wants_login=True))
    paths = [path for task in plan.tasks for path in task.files]
    assert len(paths) == len(set(paths))
    assert all(path.startswith("app/") for path in paths)


def test_unbuildable_features_and_integrations_are_kept_with_a_reason():
    spec = library(features=[Feature("AI recommendations", "custom", False, reason="needs a model"),
                             Feature("search books", "search", True)],
                   integrations=[Integration("stripe", "Stripe", ["STRIPE_API_KEY"])])
    plan = make_plan(spec)
    blocked = {t.id: t for t in plan.tasks if not t.buildable}
    assert set(blocked) == {"feature-1", "integration-stripe"}
    assert blocked["feature-1"].reason == "needs a model"
    assert "STRIPE_API_KEY" in blocked["integration-stripe"].reason
    assert all(t.kind == "unbuildable" and not t.files for t in blocked.values())


def test_a_custom_feature_claimed_buildable_is_still_unbuildable():
    plan = make_plan(library(features=[Feature("chat with authors", "custom", True)]))
    assert "no template builds 'custom'" in plan.task("feature-1").reason


def test_monster_scope_gets_three_phases_and_no_edge_to_a_later_phase():
    entities = [entity(f"Thing{i}", f"things{i}", ref("parent", f"Thing{i - 1}")) if i else entity("Thing0", "things0")
                for i in range(4)]
    plan = make_plan(Spec(title="Big", entities=entities, complexity="monster",
                          features=[Feature("ML ranking", "custom", False, reason="no model")]))
    assert plan.phases == ["mvp", "enhanced", "polish"]
    phase = {t.id: t.phase for t in plan.tasks}
    assert phase["app-core"] == "mvp" and phase["entity-things0"] == "mvp" and phase["entity-things1"] == "mvp"
    assert phase["entity-things2"] == "enhanced" and phase["tests-things3"] == "enhanced"
    assert phase["feature-1"] == "polish"
    validate_plan(plan)


def test_reference_cycle_is_broken_and_noted():
    spec = Spec(title="Cycle", entities=[
        entity("Team", "teams", Field("name", "Name", "text"), ref("captain", "Player", True)),
        entity("Player", "players", Field("name", "Name", "text"), ref("team", "Team", True)),
        entity("Person", "people", Field("name", "Name", "text"), ref("mentor", "Person")),
    ])
    plan = make_plan(spec)
    assert plan.task("entity-teams").depends_on == ["app-core", "entity-players"]
    assert plan.task("entity-players").depends_on == ["app-core"]
    assert any("Player.team closes a reference cycle" in note for note in plan.notes)
    assert any("Person.mentor" in note for note in plan.notes)


def test_feedback_is_recorded_on_the_plan():
    assert make_plan(library(), feedback="split books by genre").feedback == "split books by genre"


def test_spec_without_entities_is_an_external_blocker_with_questions():
    spec = Spec(title="Vague", questions=[Question("q1", "What should it store?", "notes")])
    with pytest.raises(TaskFailure) as caught:
        make_plan(spec)
    assert caught.value.kind == "external_blocker"
    assert caught.value.message.startswith("nothing buildable")
    assert caught.value.details["questions"] == ["What should it store?"]


@pytest.mark.parametrize("bad_entity, message", [
    (entity("Login", "login"), "reserved"),
    (entity("Thing", "things", Field("id", "Id", "text")), "reserved"),
    (entity("Thing", "things", Field("class", "Class", "text")), "snake_case"),
    (entity("Base", "bases"), "PascalCase"),
    (entity("Thing", "things", ref("owner", "Nobody")), "unknown entity"),
    (entity("Thing", "things", Field("kind", "Kind", "choice")), "without choices"),
])
def test_unsafe_or_inconsistent_specs_are_design_flaws(bad_entity, message):
    with pytest.raises(TaskFailure) as caught:
        make_plan(Spec(title="Bad", entities=[bad_entity]))
    assert caught.value.kind == "design_flaw"
    assert message in caught.value.message


def test_validate_plan_rejects_shared_files_unknown_and_cyclic_dependencies():
    def plan_of(*tasks: PlanTask) -> Plan:
        return Plan(tasks=list(tasks))

    with pytest.raises(ValueError, match="owned by both a and b"):
        validate_plan(plan_of(PlanTask("a", "A", "x", files=["app/x.py"]), PlanTask("b", "B", "x", files=["app/x.py"])))
    with pytest.raises(ValueError, match="unknown task 'zz'"):
        validate_plan(plan_of(PlanTask("a", "A", "x", depends_on=["zz"])))
    with pytest.raises(ValueError, match="cycle"):
        validate_plan(plan_of(PlanTask("a", "A", "x", depends_on=["b"]), PlanTask("b", "B", "x", depends_on=["a"])))
    with pytest.raises(ValueError, match="duplicate task ids"):
        validate_plan(plan_of(PlanTask("a", "A", "x"), PlanTask("a", "A", "x")))


def test_topological_order_puts_dependencies_first():
    plan = make_plan(library(wants_login=True))
    order = topological_order(plan)
    for task in plan.tasks:
        assert all(order.index(dep) < order.index(task.id) for dep in task.depends_on)


def test_plan_build_operator_returns_plan_order_and_records_counts(tmp_path):
    ctx = RecordingContext(instance_id="i1", task_id="t1", bpmn_id="plan_build", workspace=tmp_path)
    spec = library(features=[Feature("AI", "custom", False, reason="needs a model")])
    result = plan_build(ctx, spec.to_data(), feedback="more tests please")
    plan = Plan.from_data(result["plan"])
    assert plan.feedback == "more tests please"
    assert result["build_order"] == ["app-core", "entity-authors", "tests-authors", "entity-books", "tests-books"]
    assert result["unbuildable"] == [{"id": "feature-1", "title": "AI", "reason": "needs a model"}]
    assert result["summary"] == "6 tasks (5 buildable, 1 unbuildable) for 2 entities in 1 phase(s); login off"
    assert ctx.recorded == {"scopeflow.plan.tasks": 6, "scopeflow.plan.build_tasks": 5, "scopeflow.plan.unbuildable": 1,
                            "scopeflow.plan.phases": 1, "scopeflow.requirements.unplanned": 0}


def test_plan_build_rejects_malformed_spec_data(tmp_path):
    ctx = RecordingContext(instance_id="i1", task_id="t1", bpmn_id="plan_build", workspace=tmp_path)
    with pytest.raises(TaskFailure, match="spec is malformed"):
        plan_build(ctx, {"title": "x", "colour": "red"})


# ------------------------------------------------------------------ requirement tracing

@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).resolve().parent.parent
                                                        / "examples" / "scopes").glob("*.md")))
def test_every_example_requirement_is_realised_or_ruled_out_by_a_plan_task(name):
    from scopeflow.handlers.planner import unplanned
    from scopeflow.handlers.scope import analyze

    text = (Path(__file__).resolve().parent.parent / "examples" / "scopes" / name).read_text(encoding="utf-8")
    spec = analyze(text)
    plan = make_plan(spec)
    assert unplanned(spec, plan) == []
    named = {rid for task in plan.tasks for rid in task.requirements}
    for requirement in spec.requirements:
        if requirement.kind in ("entity", "field", "relation", "modifier", "feature", "integration", "title"):
            assert requirement.id in named, requirement


def test_a_planner_that_drops_a_requirement_is_caught(monkeypatch):
    from scopeflow.handlers import planner
    from scopeflow.handlers.scope import analyze

    spec = analyze("# Shop\n## Entities\n- Product: name (text, required)\n## Features\n- Search products\n")
    real = planner._tasks_for
    monkeypatch.setattr(planner, "_tasks_for", lambda s, subject, tasks: [] if subject == "feature:1"
                        else real(s, subject, tasks))
    plan = planner.make_plan(spec)
    [search] = [r for r in spec.requirements if r.subject == "feature:1"]
    assert planner.unplanned(spec, plan) == [search.id]
