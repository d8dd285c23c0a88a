"""Static checks of every BPMN model under ``bpmn-models/``, plus in-memory runs of the simple examples.

What a model must satisfy before the engine sees it: it parses with SpiffWorkflow's XSD validator,
its process id is its file stem, every element has a name and full diagram interchange (so it
renders in bpmn.io), no two shapes overlap, every form it names exists and is a valid JSON Schema,
and every service task names an operator. The examples that need no Scopeflow engine (no failures,
no human tasks, no messages) are also run with bare SpiffWorkflow, dispatching to the real example
operators, to prove their wiring.
"""

from __future__ import annotations

import json
import tempfile
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from scopeflow.handlers import examples
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import KINDS

MODELS_DIR = Path(__file__).resolve().parent.parent / "bpmn-models"
FORMS_DIR = MODELS_DIR / "forms"
MODEL_FILES = sorted(MODELS_DIR.rglob("*.bpmn"))
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
FLOW_NODES = (
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "serviceTask", "userTask", "scriptTask", "manualTask", "callActivity", "subProcess",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway",
)
LANE_NAMES = {"Submitter", "Agents", "Technical Operator", "Reviewer"}
# The example operators live in one module; the test uses that module alone so a half-finished
# handler elsewhere cannot break these checks.
EXAMPLE_OPERATORS = {"noop", "echo", "sum_values", "square", "sleep", "fail", "flaky"}
DELIVERY_OPERATORS = {
    "analyze_scope", "apply_answers", "plan_build", "build_task", "verify_build", "review_changes",
    "verify_evidence", "check_credentials", "deploy_release", "write_report", "write_blocker_plan",
}


def model_id(path: Path) -> str:
    return str(path.relative_to(MODELS_DIR))


def parse_xml(path: Path) -> etree._ElementTree:
    return etree.parse(str(path))


def flow_nodes(tree: etree._ElementTree) -> list[etree._Element]:
    return [el for tag in FLOW_NODES for el in tree.iterfind(f".//bpmn:process/bpmn:{tag}", NS)]


def properties(el: etree._Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in el.iterfind(".//spiffworkflow:property", NS)}


def bounds(tree: etree._ElementTree) -> dict[str, tuple[float, float, float, float]]:
    """Element id -> (x, y, width, height) of its BPMNShape."""
    out = {}
    for shape in tree.iterfind(".//bpmndi:BPMNShape", NS):
        b = shape.find("dc:Bounds", NS)
        out[shape.get("bpmnElement")] = tuple(float(b.get(k)) for k in ("x", "y", "width", "height"))
    return out


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def all_parser() -> SpiffBpmnParser:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_files([str(p) for p in MODEL_FILES])
    return parser


def test_there_are_models_to_check() -> None:
    stems = {p.stem for p in MODEL_FILES}
    assert {"delivery", "hello", "parallel", "approval", "failures", "message", "call", "child_square",
            "multi"} <= stems


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_model_parses_with_xsd_and_its_process_id_is_its_file_stem(path: Path) -> None:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_files([str(p) for p in MODEL_FILES])  # call activities resolve across files
    spec = parser.get_spec(path.stem)
    parser.get_subprocess_specs(path.stem)
    assert spec.name == path.stem
    executable = parse_xml(path).findall(".//bpmn:process[@isExecutable='true']", NS)
    assert [p.get("id") for p in executable] == [path.stem]


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_bpmn_ids_are_unique_and_no_operator_shares_one(path: Path) -> None:
    # SpiffWorkflow finds elements by ``@id`` anywhere in the file: a service task whose id equals
    # its operator's id (``serviceTaskOperator/@id``) makes the parser pick the operator element.
    tree = parse_xml(path)
    bpmn_ids = [el.get("id") for el in tree.iter() if el.get("id") and el.tag.startswith(f"{{{NS['bpmn']}}}")]
    operator_ids = {op.get("id") for op in tree.iterfind(".//spiffworkflow:serviceTaskOperator", NS)}
    assert sorted({i for i in bpmn_ids if bpmn_ids.count(i) > 1}) == []
    assert sorted(operator_ids & set(bpmn_ids)) == []


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_every_flow_node_lane_and_participant_has_a_name_and_a_shape(path: Path) -> None:
    tree = parse_xml(path)
    shapes = bounds(tree)
    elements = flow_nodes(tree) + tree.findall(".//bpmn:lane", NS) + tree.findall(".//bpmn:participant", NS)
    unnamed = [el.get("id") for el in elements if not (el.get("name") or "").strip()]
    missing = [el.get("id") for el in elements if el.get("id") not in shapes]
    assert unnamed == []
    assert missing == []


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_every_sequence_flow_has_an_edge_with_waypoints(path: Path) -> None:
    tree = parse_xml(path)
    edges = {e.get("bpmnElement"): e for e in tree.iterfind(".//bpmndi:BPMNEdge", NS)}
    for flow in tree.iterfind(".//bpmn:sequenceFlow", NS):
        edge = edges.get(flow.get("id"))
        assert edge is not None, f"{flow.get('id')} has no BPMNEdge"
        assert len(edge.findall("di:waypoint", NS)) >= 2, f"{flow.get('id')} has fewer than 2 waypoints"


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_no_two_shapes_overlap(path: Path) -> None:
    tree = parse_xml(path)
    shapes = bounds(tree)
    hosts = {b.get("id"): b.get("attachedToRef") for b in tree.iterfind(".//bpmn:boundaryEvent", NS)}
    nodes = [el.get("id") for el in flow_nodes(tree)]
    clashes = []
    for a, b in combinations(nodes, 2):
        if hosts.get(a) == b or hosts.get(b) == a:
            continue  # a boundary event sits on its host's border by design
        if overlaps(shapes[a], shapes[b]):
            clashes.append((a, b))
    lanes = [el.get("id") for el in tree.iterfind(".//bpmn:lane", NS)]
    clashes += [(a, b) for a, b in combinations(lanes, 2) if overlaps(shapes[a], shapes[b])]
    assert clashes == []


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_every_node_of_a_laned_process_lies_inside_its_lane(path: Path) -> None:
    tree = parse_xml(path)
    shapes = bounds(tree)
    for lane in tree.iterfind(".//bpmn:lane", NS):
        assert lane.get("name") in LANE_NAMES
        lx, ly, lw, lh = shapes[lane.get("id")]
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            x, y, w, h = shapes[ref.text]
            assert lx <= x and x + w <= lx + lw and ly <= y + h / 2 <= ly + lh, f"{ref.text} outside its lane"
    for task in tree.iterfind(".//bpmn:userTask", NS):
        refs = tree.findall(f".//bpmn:lane/bpmn:flowNodeRef[.='{task.get('id')}']", NS)
        assert len(refs) == 1, f"user task {task.get('id')} is in no lane"


def form_files(tree: etree._ElementTree) -> list[tuple[str, str]]:
    """(element id, form file) for every user task and start event that names a form."""
    out = []
    for el in tree.iterfind(".//bpmn:userTask", NS):
        out.append((el.get("id"), properties(el).get("formJsonSchemaFilename")))
    for el in tree.iterfind(".//bpmn:startEvent", NS):
        if "formJsonSchemaFilename" in properties(el):
            out.append((el.get("id"), properties(el)["formJsonSchemaFilename"]))
    return out


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_every_form_exists_and_is_a_valid_json_schema(path: Path) -> None:
    for element, filename in form_files(parse_xml(path)):
        assert filename, f"user task {element} names no form"
        schema = json.loads((FORMS_DIR / filename).read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["title"] and schema["description"]
        for name, prop in schema["properties"].items():
            assert prop.get("title") and prop.get("description"), f"{filename}: {name} lacks title/description"
            if "default" in prop:
                assert Draft202012Validator(prop).is_valid(prop["default"]), f"{filename}: bad default of {name}"


def test_every_form_file_is_used_by_some_model() -> None:
    used = {f for path in MODEL_FILES for _, f in form_files(parse_xml(path))}
    assert sorted(p.name for p in FORMS_DIR.glob("*.schema.json")) == sorted(used)


def test_example_operators_exist_in_the_examples_module() -> None:
    assert all(callable(getattr(examples, name, None)) for name in EXAMPLE_OPERATORS)


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_every_service_task_names_an_operator(path: Path) -> None:
    tree = parse_xml(path)
    for task in tree.iterfind(".//bpmn:serviceTask", NS):
        op = task.find(".//spiffworkflow:serviceTaskOperator", NS)
        assert op is not None and op.get("id"), f"{task.get('id')} has no operator"
        assert op.get("resultVariable"), f"{task.get('id')} has no resultVariable"
        if path.parent.name == "examples":
            assert op.get("id") in EXAMPLE_OPERATORS
        else:
            assert op.get("id") in DELIVERY_OPERATORS


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_exclusive_gateways_that_split_have_a_default_flow(path: Path) -> None:
    tree = parse_xml(path)
    for gw in tree.iterfind(".//bpmn:exclusiveGateway", NS):
        outgoing = gw.findall("bpmn:outgoing", NS)
        if len(outgoing) > 1:
            assert gw.get("default") in {o.text for o in outgoing}, f"{gw.get('id')} has no default flow"


@pytest.mark.parametrize("path", MODEL_FILES, ids=model_id)
def test_errors_are_failure_kinds_whose_payload_lands_in_error_payload(path: Path) -> None:
    tree = parse_xml(path)
    for error in tree.iterfind(".//bpmn:error", NS):
        # A kind of the taxonomy, or no code at all: a catch-all (``Error_any`` in delivery.bpmn),
        # whose boundary routes every kind to one path that records error_payload["kind"].
        assert error.get("errorCode") in KINDS or error.get("errorCode") is None
        assert error.findtext(".//spiffworkflow:variableName", namespaces=NS) == "error_payload"
    declared = {e.get("id") for e in tree.iterfind(".//bpmn:error", NS)}
    for ref in tree.iterfind(".//bpmn:errorEventDefinition", NS):
        assert ref.get("errorRef") in declared


def test_delivery_lifecycle_has_its_human_checkpoints_in_the_right_lanes() -> None:
    spec = all_parser().get_spec("delivery")
    expected = {
        "confirm_scope": ("Submitter", "confirm_scope.schema.json", "scope_confirmation"),
        "design_review": ("Reviewer", "design_review.schema.json", "design_decision"),
        "final_review": ("Reviewer", "final_review.schema.json", "review_decision"),
        "provide_credentials": ("Technical Operator", "provide_credentials.schema.json", "credential_answer"),
        "deploy_approval": ("Technical Operator", "deploy_approval.schema.json", "deploy_decision"),
    }
    for bpmn_id, (lane, form, variable) in expected.items():
        task_spec = spec.task_specs[bpmn_id]
        assert task_spec.lane == lane
        assert task_spec.extensions["properties"]["formJsonSchemaFilename"] == form
        assert json.loads((FORMS_DIR / form).read_text())["x-variable"] == variable
    assert spec.task_specs["end_blocked"].extensions["properties"] == {"instanceStatus": "blocked"}


def test_delivery_start_form_defaults_every_variable_the_blocker_writer_reads() -> None:
    schema = json.loads((FORMS_DIR / "delivery.start.schema.json").read_text())
    defaults = {k: p.get("default", "<none>") for k, p in schema["properties"].items()}
    assert schema["required"] == ["scope"]
    for name in ("spec", "plan", "verification", "review", "release", "feedback"):
        assert defaults[name] is None
    assert defaults["regenerations"] == defaults["design_revisions"] == defaults["change_requests"] == 0
    assert defaults["credential_sla"] == "PT24H"
    provide = json.loads((FORMS_DIR / "provide_credentials.schema.json").read_text())
    secret_values = provide["properties"]["values"]["additionalProperties"]
    assert secret_values["x-secret"] is True and secret_values["format"] == "password"


# ---- in-memory runs of the examples that need no Scopeflow engine ----------------------------

class ExampleOperators(TaskDataEnvironment):
    """Dispatches service tasks to the real example operators with a recording context."""

    def __init__(self, workspace: Path):
        super().__init__()
        self.workspace = workspace
        self.called: list[str] = []

    def call_service(self, context: dict[str, Any], operation_name: str, operation_params: dict, **kw: Any) -> str:
        self.called.append(operation_name)
        ctx = RecordingContext(instance_id="test", task_id=operation_name, bpmn_id=operation_name,
                               workspace=self.workspace)
        params = {name: p["value"] for name, p in operation_params.items()}
        handler = getattr(examples, operation_name)  # each example operator is named like its function
        return json.dumps(handler(ctx, **params))


def run_example(process_id: str, start_data: dict[str, Any]) -> tuple[BpmnWorkflow, ExampleOperators]:
    parser = all_parser()
    with tempfile.TemporaryDirectory() as workspace:
        operators = ExampleOperators(Path(workspace))
        workflow = BpmnWorkflow(parser.get_spec(process_id), parser.get_subprocess_specs(process_id),
                                script_engine=PythonScriptEngine(environment=operators))
        workflow.get_next_task(state=TaskState.READY).data.update(start_data)
        workflow.do_engine_steps()
    return workflow, operators


def ended_at(workflow: BpmnWorkflow) -> list[str]:
    return [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.COMPLETED)
            if t.task_spec.__class__.__name__ == "EndEvent"]


@pytest.mark.parametrize(("numbers", "size", "end"), [([3, 4, 5], "big", "end_big"), ([1, 2], "small", "end_small")])
def test_hello_greets_adds_and_branches_on_the_total(numbers: list[int], size: str, end: str) -> None:
    workflow, operators = run_example("hello", {"name": "Ada", "numbers": numbers})
    data = workflow.last_task.data
    assert workflow.is_completed()
    assert data["greeting"] == {"text": "Hello, Ada!"}
    assert data["totals"] == {"total": sum(numbers), "count": len(numbers)}
    assert data["verdict"] == {"size": size, "total": sum(numbers)}
    assert ended_at(workflow) == [end]
    assert operators.called == ["echo", "sum_values", "echo"]


def test_parallel_branches_all_run_and_their_results_merge_at_the_join() -> None:
    workflow, operators = run_example("parallel", {"value": 4})
    assert workflow.is_completed()
    combined = workflow.last_task.data["combined"]
    assert combined["square"] == 16 and combined["label"] == "labelled in a parallel branch"
    assert combined["slept_s"] > 0
    assert sorted(operators.called) == ["echo", "echo", "sleep", "square"]


def test_call_activity_squares_in_the_child_and_returns_the_result() -> None:
    workflow, _ = run_example("call", {"value": 7})
    assert workflow.is_completed()
    assert workflow.last_task.data["report"] == {"value": 7, "square": 49}


def test_multi_instance_squares_every_number_keyed_by_position_then_adds_them() -> None:
    workflow, operators = run_example("multi", {"numbers": [5, 1, 3]})
    data = workflow.last_task.data
    assert workflow.is_completed()
    assert data["squares"] == {0: {"value": 5, "square": 25}, 1: {"value": 1, "square": 1},
                               2: {"value": 3, "square": 9}}
    assert data["total"] == {"total": 35, "count": 3}
    assert operators.called.count("square") == 3


def test_multi_instance_over_no_numbers_adds_nothing() -> None:
    workflow, _ = run_example("multi", {"numbers": []})
    assert workflow.is_completed()
    assert workflow.last_task.data["total"] == {"total": 0, "count": 0}
