"""A real delivery run emits only spans the attribute registry declares, with the declared types.

One simple scope goes through the whole lifecycle (analyse → … → deploy → report) on a fresh store;
every span stored for the instance is then checked against ``spans/registry/scopeflow.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from scopeflow.spans import semconv
from scopeflow.spans.record import SpanRecord
from scopeflow.spans.registry_check import check_spans, required_attributes, undeclared_attributes
from tests.conftest import REPO, make_settings

SCOPE = REPO / "examples" / "scopes" / "simple-bookshelf.md"
HUMAN_TASK_TYPES = ("userTask", "manualTask")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def delivered(tmp_path_factory) -> tuple[object, list[SpanRecord]]:
    """The lifecycle result of the simple scope and every span stored for its instance."""
    home = Path(tmp_path_factory.mktemp("registry-run")) / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCOPEFLOW_HOME", str(home))             # the deployer reads its releases dir from settings
        env.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
        settings = make_settings(home)
        engine = Engine(settings)
        try:
            result = submit(engine, SCOPE.read_text(encoding="utf-8"), yes=True)
            with engine.sessions() as session:
                spans = load_spans(session, result.instance_id)
        finally:
            stop_all(settings.releases_dir)
    return result, spans


def typed(spans: list[SpanRecord], span_type: str) -> list[SpanRecord]:
    return [span for span in spans if span.attributes.get(semconv.SPAN_TYPE) == span_type]


def test_the_run_is_a_full_delivery(delivered):
    result, spans = delivered
    assert (result.status, result.outcome) == ("completed", "delivered")
    elements = {span.attributes.get(semconv.BPMN_ELEMENT_ID) for span in typed(spans, semconv.SPAN_TYPE_TASK)}
    assert {"verify_build_task", "final_review", "deploy_release_task", "write_report_task"} <= elements


def test_every_stored_span_is_a_scopeflow_span_of_a_declared_type(delivered):
    _, spans = delivered
    types = {span.attributes.get(semconv.SPAN_TYPE) for span in spans}
    assert types == {semconv.SPAN_TYPE_ADVANCE, semconv.SPAN_TYPE_TASK, semconv.SPAN_TYPE_HANDLER}
    assert all(span.attributes.get(semconv.INSTANCE_ID) == delivered[0].instance_id for span in spans)


def test_no_stored_span_breaks_the_registry(delivered):
    _, spans = delivered
    assert check_spans(spans) == []


def test_every_scopeflow_attribute_of_the_run_is_declared(delivered):
    _, spans = delivered
    keys = {key for span in spans for key in span.attributes if key.startswith("scopeflow.")}
    assert len(keys) > 50, "the run recorded far fewer attributes than a delivery measures"
    assert undeclared_attributes(spans) == set()


def test_every_task_span_carries_the_required_attributes(delivered):
    _, spans = delivered
    required = required_attributes(semconv.SPAN_TYPE_TASK)
    tasks = typed(spans, semconv.SPAN_TYPE_TASK)
    assert len(tasks) > 20
    for span in tasks:
        assert required <= set(span.attributes), (span.name, sorted(required - set(span.attributes)))
        assert span.attributes[semconv.TASK_OUTCOME] == "completed", span.name


def test_service_tasks_name_their_operator_and_human_tasks_their_actor(delivered):
    """The registry's conditionally required attributes, for the conditions a delivery meets."""
    _, spans = delivered
    for span in typed(spans, semconv.SPAN_TYPE_TASK):
        element_type = span.attributes[semconv.BPMN_ELEMENT_TYPE]
        if element_type == "serviceTask":
            assert isinstance(span.attributes.get(semconv.OPERATOR), str), span.name
        if element_type in HUMAN_TASK_TYPES:
            assert span.attributes.get(semconv.HUMAN_ACTOR), span.name
            assert isinstance(span.attributes.get(semconv.HUMAN_AUTOMATED), bool), span.name
            if span.attributes[semconv.HUMAN_AUTOMATED]:     # submit --yes: a policy, not an account, decided
                assert span.attributes.get(semconv.HUMAN_POLICY) == "--yes", span.name
            else:
                assert span.attributes.get(semconv.HUMAN_ROLE) and semconv.HUMAN_ROLES in span.attributes, span.name


def test_human_decisions_are_recorded_under_the_form_data_template(delivered):
    _, spans = delivered
    review = next(span for span in typed(spans, semconv.SPAN_TYPE_TASK)
                  if span.attributes[semconv.BPMN_ELEMENT_ID] == "final_review")
    assert review.attributes[f"{semconv.HUMAN_DATA_PREFIX}.review_decision.decision"] == "approve"
    confirm = next(span for span in typed(spans, semconv.SPAN_TYPE_TASK)
                   if span.attributes[semconv.BPMN_ELEMENT_ID] == "confirm_scope")
    assert confirm.attributes[f"{semconv.HUMAN_DATA_PREFIX}.scope_confirmation.confirmed"] is True


def test_the_process_version_is_the_deployed_version_number(delivered):
    _, spans = delivered
    versions = {span.attributes[semconv.PROCESS_VERSION] for span in typed(spans, semconv.SPAN_TYPE_TASK)}
    assert versions == {1}     # a fresh store deploys the delivery model as version 1


def test_no_span_carries_an_unnamespaced_attribute(delivered):
    _, spans = delivered
    bare = {(span.name, key) for span in spans for key in span.attributes if "." not in key}
    assert bare == set()
