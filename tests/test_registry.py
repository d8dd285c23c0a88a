"""The attribute registry: it agrees with semconv.py, and spans are checked against it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scopeflow.spans import semconv
from scopeflow.spans.record import SpanRecord
from scopeflow.spans.registry_check import (
    DEFAULT_REGISTRY,
    RegistryError,
    check_spans,
    load_registry,
    required_attributes,
    undeclared_attributes,
)

NOT_ATTRIBUTES = ("SPAN_KIND_", "SPAN_TYPE_")   # constants that name span types, not attributes


def semconv_attributes() -> set[str]:
    return {value for name, value in vars(semconv).items()
            if name.isupper() and isinstance(value, str) and not name.startswith(NOT_ATTRIBUTES)}


def test_every_semconv_attribute_is_in_the_registry_and_vice_versa():
    declared = set(load_registry().attributes)
    assert semconv_attributes() - declared == set(), "constants missing from registry/scopeflow.yaml"
    assert declared - semconv_attributes() == set(), "registry attributes without a semconv.py constant"


def test_span_types_in_semconv_match_the_registry_span_groups():
    registry = load_registry()
    assert set(semconv.SPAN_TYPES) == set(registry.spans)
    assert set(registry.attributes[semconv.SPAN_TYPE].members) == set(semconv.SPAN_TYPES)


def test_every_declared_attribute_is_documented():
    for attribute in load_registry().attributes.values():
        assert attribute.brief and attribute.stability == "development", attribute.id


def test_required_attributes_of_a_task_span():
    assert required_attributes(semconv.SPAN_TYPE_TASK) == {
        semconv.INSTANCE_ID, semconv.SPAN_TYPE, semconv.PROCESS_ID, semconv.PROCESS_VERSION,
        semconv.BPMN_ELEMENT_ID, semconv.BPMN_ELEMENT_TYPE, semconv.TASK_OUTCOME, semconv.TASK_ID,
    }
    assert "gen_ai.provider.name" in required_attributes(semconv.SPAN_TYPE_GEN_AI)


def test_unknown_span_type_is_a_clear_error():
    with pytest.raises(RegistryError, match="unknown span type 'bpmn.tsk'; known: advance, bpmn.task"):
        required_attributes("bpmn.tsk")


def make_span(span_type: str | None, kind: str = "INTERNAL", **attributes: object) -> SpanRecord:
    attrs = {semconv.INSTANCE_ID: "i-1"}
    if span_type is not None:
        attrs[semconv.SPAN_TYPE] = span_type
    attrs.update(attributes)
    return SpanRecord("a" * 32, "b" * 16, None, "verify", 0, 1, kind=kind, attributes=attrs)


def complete_task(**overrides: object) -> SpanRecord:
    attrs = {semconv.PROCESS_ID: "delivery", semconv.PROCESS_VERSION: 3, semconv.BPMN_ELEMENT_ID: "verify_build",
             semconv.BPMN_ELEMENT_TYPE: "serviceTask", semconv.TASK_OUTCOME: "completed",
             semconv.TASK_ID: "0b7a3c52-93c1-4f0e-8d0e-2f6f3c9a1b44"}
    attrs.update(overrides)
    return make_span(semconv.SPAN_TYPE_TASK, **attrs)


def test_a_complete_task_span_has_no_problems():
    assert check_spans([complete_task(), make_span(None, **{"http.method": "GET"})]) == []


def test_missing_required_attributes_are_named():
    span = complete_task()
    del span.attributes[semconv.TASK_OUTCOME]
    del span.attributes[semconv.PROCESS_ID]
    assert check_spans([span]) == [
        f"span {'b' * 16} ('verify', type bpmn.task): missing required attribute(s) "
        "scopeflow.process.id, scopeflow.task.outcome"
    ]


def test_wrong_value_types_and_enum_values_are_problems():
    problems = check_spans([complete_task(**{semconv.TESTS_PASSED: "3", semconv.FAILURE_KIND: "flaky",
                                             semconv.FALLBACK: 1})])
    assert len(problems) == 3
    assert any("scopeflow.tests.passed is '3', expected int" in p for p in problems)
    assert any("scopeflow.failure.kind is 'flaky', expected one of transient, recoverable" in p for p in problems)
    assert any("scopeflow.fallback is 1, expected boolean" in p for p in problems)


def test_unknown_type_and_wrong_kind_are_problems():
    gen_ai = make_span(semconv.SPAN_TYPE_GEN_AI, **{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"})
    problems = check_spans([make_span("mystery"), gen_ai])
    assert problems == [
        f"span {'b' * 16} ('verify'): unknown scopeflow.span.type 'mystery'",
        f"span {'b' * 16} ('verify', type gen_ai): span kind INTERNAL, expected CLIENT",
    ]
    gen_ai.kind = "CLIENT"
    assert check_spans([gen_ai]) == []


def test_undeclared_own_attributes_are_listed_but_foreign_ones_ignored():
    span = complete_task(**{"scopeflow.task.ident": "x", "http.method": "GET"})
    assert undeclared_attributes([span]) == {"scopeflow.task.ident"}


def test_the_process_version_is_the_engine_s_integer_version_number():
    problems = check_spans([complete_task(**{semconv.PROCESS_VERSION: "3"})])
    assert len(problems) == 1 and "scopeflow.process.version is '3', expected int" in problems[0]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    return path


SPAN_TYPE_ATTR = """
  - id: registry.t
    type: attribute_group
    attributes:
      - id: scopeflow.span.type
        type: {members: [{id: a, value: "a"}]}
        stability: development
        brief: type
"""


@pytest.mark.parametrize("text, message", [
    ("groups: {}", "expected a top-level 'groups' list"),
    ("groups: [\n", "not valid YAML"),
    ("groups:" + SPAN_TYPE_ATTR, "members ['a'] differ from span groups []"),
    ("groups:" + SPAN_TYPE_ATTR + "  - {id: span.scopeflow.a, type: span, span_kind: internal, attributes: "
     "[{ref: scopeflow.nope, requirement_level: required}]}", "ref scopeflow.nope is not declared"),
    ("groups:" + SPAN_TYPE_ATTR + "  - {id: span.other.a, type: span, span_kind: internal}", "must be named span.scopeflow"),
    ("groups:" + SPAN_TYPE_ATTR + "  - {id: span.scopeflow.a, type: span, span_kind: sideways}", "span_kind must be one of"),
    ("groups:\n  - id: g\n    type: attribute_group\n    attributes: [{id: scopeflow.x, type: int}]", "scopeflow.x: missing brief"),
])
def test_inconsistent_registries_are_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, text))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_minimal_consistent_registry_loads(tmp_path):
    text = "groups:" + SPAN_TYPE_ATTR + ("  - {id: span.scopeflow.a, type: span, span_kind: internal, attributes: "
                                         "[{ref: scopeflow.span.type, requirement_level: required}, {ref: gen_ai.x}]}")
    registry = load_registry(write(tmp_path, text))
    assert required_attributes("a", registry) == {"scopeflow.span.type"}
    assert registry.spans["a"].optional == {"gen_ai.x"}


def test_the_shipped_registry_is_packaged_beside_the_module():
    assert DEFAULT_REGISTRY.name == "scopeflow.yaml" and DEFAULT_REGISTRY.is_file()


# -- template attributes: an id that declares a family of keys ------------------------------------

def test_form_data_keys_are_declared_by_the_human_data_template():
    span = complete_task(**{
        f"{semconv.HUMAN_DATA_PREFIX}.review_decision.decision": "approve",
        f"{semconv.HUMAN_DATA_PREFIX}.scope_confirmation.confirmed": True,
        f"{semconv.HUMAN_DATA_PREFIX}.retries": 2,
    })
    assert undeclared_attributes([span]) == set()
    assert check_spans([span]) == []


def test_a_template_declares_only_keys_below_its_id():
    span = complete_task(**{semconv.HUMAN_DATA_PREFIX: "bare", f"{semconv.HUMAN_DATA_PREFIX}base.x": 1})
    assert undeclared_attributes([span]) == {semconv.HUMAN_DATA_PREFIX, f"{semconv.HUMAN_DATA_PREFIX}base.x"}


def test_a_template_any_value_must_still_be_an_attribute_value():
    span = complete_task(**{f"{semconv.HUMAN_DATA_PREFIX}.form.mixed": ["a", 1],
                            f"{semconv.HUMAN_DATA_PREFIX}.form.missing": None})
    problems = check_spans([span])
    assert len(problems) == 2
    assert any("scopeflow.human.data.form.mixed is ['a', 1], expected any" in p for p in problems)
    assert any("scopeflow.human.data.form.missing is None, expected any" in p for p in problems)


TEMPLATES = SPAN_TYPE_ATTR + """      - id: scopeflow.instance.id
        type: string
        stability: development
        brief: instance
      - id: scopeflow.limit
        type: template[int]
        stability: development
        brief: limits by name
      - id: scopeflow.limit.note
        type: string
        stability: development
        brief: a plain key inside the family's prefix wins over the template
  - {id: span.scopeflow.a, type: span, span_kind: internal, attributes: [{ref: scopeflow.limit, requirement_level: required}]}
"""


def test_a_typed_template_checks_each_key_against_its_inner_type(tmp_path):
    registry = load_registry(write(tmp_path, "groups:" + TEMPLATES))
    good = make_span("a", **{"scopeflow.limit.cpu": 2, "scopeflow.limit.note": "soft"})
    assert check_spans([good], registry) == [] and undeclared_attributes([good], registry) == set()
    bad = make_span("a", **{"scopeflow.limit.cpu": "2"})
    assert check_spans([bad], registry) == [
        f"span {'b' * 16} ('verify', type a): attribute scopeflow.limit.cpu is '2', expected int"]


def test_a_required_template_is_met_by_any_key_of_its_family(tmp_path):
    registry = load_registry(write(tmp_path, "groups:" + TEMPLATES))
    assert check_spans([make_span("a", **{"scopeflow.limit.memory": 512})], registry) == []
    assert check_spans([make_span("a", **{"scopeflow.limit.note": "only the plain key"})], registry) == [
        f"span {'b' * 16} ('verify', type a): missing required attribute(s) scopeflow.limit"]


@pytest.mark.parametrize("type_", ["strng", "template[map]", "template[string", "int[][]"])
def test_an_unknown_attribute_type_is_refused_in_one_line(tmp_path, type_):
    text = f"groups:\n  - id: g\n    type: attribute_group\n    attributes: [{{id: scopeflow.x, type: '{type_}', " \
           "brief: b, stability: development}]"
    with pytest.raises(RegistryError, match=r"attribute scopeflow\.x: unknown type") as info:
        load_registry(write(tmp_path, text))
    assert "\n" not in str(info.value)


# -- the code's own attribute keys are all declared --------------------------------------------------

SOURCE = Path(__file__).resolve().parents[1] / "scopeflow"
KEY_PATTERNS = (
    re.compile(r'"(scopeflow\.[a-z0-9_.]+)"\s*:'),                        # {"scopeflow.x.y": value}
    re.compile(r'set_attribute\(\s*"(scopeflow\.[a-z0-9_.]+)"'),          # span.set_attribute("scopeflow.x", …)
    re.compile(r'\["(scopeflow\.[a-z0-9_.]+)"\]\s*=(?!=)'),                # measured["scopeflow.x"] = value
    re.compile(r'^[A-Z_]+ = "(scopeflow\.[a-z0-9_.]+)"', re.MULTILINE),   # LLM_ROLE = "scopeflow.llm.role"
)
DOTTED_KWARG = re.compile(r"\b([a-z][a-z0-9]*(?:__[a-z0-9_]+)+)\s*=(?!=)")  # ctx.record(tests__passed=3)


def emitted_keys_in_source() -> dict[str, str]:
    """Every literal ``scopeflow.*`` attribute key the handlers and the engine write, with where."""
    found = {}
    for path in [*(SOURCE / "handlers").glob("*.py"), SOURCE / "engine" / "runner.py"]:
        text = path.read_text(encoding="utf-8")
        for pattern in KEY_PATTERNS:
            for match in pattern.finditer(text):
                found[match.group(1)] = f"{path.relative_to(SOURCE.parent)}:{text.count(chr(10), 0, match.start()) + 1}"
        for match in DOTTED_KWARG.finditer(text):
            key = "scopeflow." + match.group(1).replace("__", ".")
            found[key] = f"{path.relative_to(SOURCE.parent)}:{text.count(chr(10), 0, match.start()) + 1}"
    return found


def test_every_attribute_key_written_in_the_source_is_declared():
    found = emitted_keys_in_source()
    assert len(found) > 40, "the source scan found too few keys to be looking in the right place"
    registry = load_registry()
    undeclared = {key: where for key, where in found.items() if registry.lookup(key) is None}
    assert undeclared == {}


def test_the_human_data_keys_the_engine_builds_use_the_template_prefix():
    runner = (SOURCE / "engine" / "runner.py").read_text(encoding="utf-8")
    built = set(re.findall(r'f"(scopeflow\.[a-z_.]+)\.\{', runner))
    assert built == {semconv.HUMAN_DATA_PREFIX}
    assert load_registry().attributes[semconv.HUMAN_DATA_PREFIX].type == "template[any]"
