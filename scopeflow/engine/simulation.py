"""Run a model in memory with nothing bound: what ``scopeflow simulate MODEL`` does.

A designer can test-run a diagram from any modeler before operators exist: service tasks (bound or
not) return a simulated result, human tasks are answered from an answers file or their form's
defaults, timers fire at once and messages are delivered from the answers file. The run uses the same
parse (``processes.prepare``), the same :class:`Runner`, the same script sandbox and the same spans
as a real instance; every span carries ``scopeflow.simulated = true`` so a simulated trace can never
pass for evidence of a real one. Nothing is stored.

Answers file (JSON)::

    {"start": {...start data...},
     "tasks": {"element_id": {...data...} or [{...first visit...}, {...second visit...}]},
     "messages": {"message name": {...payload...}}}

For a service task the answer is merged into the task data (its result variable, when the answer
names it, is the operator's result); for a human task it is the form's answer, validated against the
form like a real completion.
"""

from __future__ import annotations

import copy
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.util.task import TaskState

from scopeflow.engine.flow import FlowWorkflow
from scopeflow.engine.parsing import load_specs
from scopeflow.engine.people import automatic
from scopeflow.engine.runner import RunIdentity, Runner, incident_from
from scopeflow.engine.versions import prepared_files
from scopeflow.handlers import registry
from scopeflow.processes.catalog import Catalog, evidence_path
from scopeflow.processes.lint import LintMessage, blocking, lint_catalog
from scopeflow.processes.prepare import UNBOUND_OPERATOR
from scopeflow.spans import semconv
from scopeflow.spans.convert import to_record
from scopeflow.spans.record import SpanRecord
from scopeflow.spans.tracing import Telemetry

MAX_ROUNDS = 500            # human answers + timer firings + message deliveries in one simulation
SIMULATION_POLICY = "simulation: answers file or form defaults"
MAX_CYCLE_FIRINGS = 3       # a repeating timer fires this often, then the simulation lets it be


class AnswersError(ValueError):
    """An answers file that does not have the documented shape (one line)."""


@dataclass
class Answers:
    start: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> Answers:
        if not isinstance(value, dict):
            raise AnswersError("the answers file must hold a JSON object")
        unknown = sorted(set(value) - {"start", "tasks", "messages"})
        if unknown:
            raise AnswersError(f"unknown key(s) in the answers file: {', '.join(unknown)} "
                               "(expected start, tasks, messages)")
        answers = cls(**{k: copy.deepcopy(v) for k, v in value.items()})
        for key in ("start", "tasks", "messages"):
            if not isinstance(getattr(answers, key), dict):
                raise AnswersError(f"\u201c{key}\u201d in the answers file must be a JSON object")
        for element, answer in answers.tasks.items():
            visits = answer if isinstance(answer, list) else [answer]
            if not all(isinstance(v, dict) for v in visits):
                raise AnswersError(f"the answer for task {element} must be an object or a list of objects")
        return answers

    def take(self, element_id: str) -> dict[str, Any] | None:
        """The answer for this visit of ``element_id`` (a list answers one visit per item)."""
        answer = self.tasks.get(element_id)
        if isinstance(answer, list):
            return answer.pop(0) if answer else None
        return answer


@dataclass
class SimulationResult:
    model: str
    status: str                 # completed | waiting | error | rejected | limit
    reason: str                 # one line: why the simulation stopped
    spans: list[SpanRecord] = field(default_factory=list)
    lint: list[LintMessage] = field(default_factory=list)
    simulated: list[str] = field(default_factory=list)   # element ids whose outcome was simulated
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _SimulationRunner(Runner):
    answers: Answers = field(default_factory=Answers)
    run_operators: bool = False
    simulated: list[str] = field(default_factory=list)

    def _task_attributes(self, task) -> dict[str, Any]:
        attrs = super()._task_attributes(task)
        attrs[semconv.SIMULATED] = True
        return attrs

    def call_operator(self, task, name: str, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
        bound = name != UNBOUND_OPERATOR and name in registry.names()
        if bound and self.run_operators:
            return super().call_operator(task, name, params)
        self.simulated.append(task.task_spec.bpmn_id)
        answer = copy.deepcopy(self.answers.take(task.task_spec.bpmn_id) or {})
        # The operator's result lands in its result variable: an answer for that variable is the result.
        result = answer.pop(getattr(task.task_spec, "result_variable", None) or "", {})
        task.data.update(answer)
        return result if isinstance(result, dict) else {"value": result}


def simulate(catalog: Catalog, model: str, answers: Answers | None = None, *,
             run_operators: bool = False) -> SimulationResult:
    """Lint ``model`` (unbound tasks and isExecutable="false" allowed), then run it to its end."""
    answers = answers or Answers()
    messages = lint_catalog(catalog, [model], executable_only=False)
    problems = blocking(messages, simulate=True)
    if problems:
        return SimulationResult(model, "rejected", f"{len(problems)} lint error(s) stop the simulation", lint=messages)
    files = catalog.bundle(model, executable_only=False)
    spec, subprocess_specs = load_specs(*prepared_files(files), model)
    telemetry = Telemetry()
    instance_id = f"simulation-{uuid.uuid4()}"
    with tempfile.TemporaryDirectory(prefix="scopeflow-simulate-") as workspace:
        process = catalog.process(model, executable_only=False)
        identity = RunIdentity(instance_id, model, 0, Path(workspace), dict(catalog.processes),
                               evidence_rules=files.get(evidence_path(process.file), ""))
        workflow = FlowWorkflow(spec, subprocess_specs)   # the engine's own workflow class, as in a real run
        runner = _SimulationRunner(workflow, identity, telemetry.tracer, answers=answers, run_operators=run_operators)
        start = _answer_form(catalog, process.start_form, answers.start)
        if isinstance(start, str):
            return SimulationResult(model, "error", f"start data: {start}", lint=messages)
        workflow.get_next_task(state=TaskState.READY).data.update(start)
        with runner.advance_span({}, "simulate"):
            runner._advance_span.set_attribute(semconv.SIMULATED, True)
            status, reason = _drive(runner, catalog)
    spans = [to_record(span) for span in telemetry.buffer.take(instance_id)]
    telemetry.shutdown()
    data = workflow.last_task.data if workflow.last_task is not None else {}
    return SimulationResult(model, status, reason, spans=sorted(spans, key=lambda s: s.start_ns), lint=messages,
                            simulated=runner.simulated, data=_plain(data))


def _drive(runner: _SimulationRunner, catalog: Catalog) -> tuple[str, str]:
    workflow = runner.workflow
    fired: dict[str, int] = {}
    for _round in range(MAX_ROUNDS):
        try:
            runner.run_steps()
        except Exception as exc:
            return "error", _incident_sentence(exc, runner)
        if workflow.is_completed():
            return "completed", "reached its end"
        human = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
        if human:
            problem = _answer_human(runner, catalog, human[0])
            if problem:
                return "error", problem
            continue
        if _fire_timers(workflow, fired) or _deliver_messages(runner):
            continue
        return "waiting", _waiting_for(workflow)
    return "limit", f"stopped after {MAX_ROUNDS} answers, timers and messages (a loop in the model?)"


def _incident_sentence(exc: Exception, runner: _SimulationRunner) -> str:
    """The incident as a designer reads it; a missing variable says where to give it."""
    incident = incident_from(exc, runner.redact)
    where = incident.get("bpmn_id") or "the process"
    missing = re.search(r"name '(\w+)' is not defined|KeyError: '([^']+)'", incident["message"])
    if incident.get("error_type") in ("NameError", "KeyError") and missing:
        return (f"incident at {where}: the expression reads {missing.group(1) or missing.group(2)}, which the task "
                "data does not hold; give it in the answers file (under start, or under tasks for the task that "
                "sets it), or run the operators with --run-operators")
    return f"incident at {where}: {incident['message']}"


def _answer_human(runner: _SimulationRunner, catalog: Catalog, task) -> str | None:
    element = runner.element_of(task)
    form = element.properties.get("formJsonSchemaFilename") if element else None
    answer = _answer_form(catalog, form, runner.answers.take(task.task_spec.bpmn_id) or {})
    if isinstance(answer, str):
        return f"task {task.task_spec.bpmn_id}: {answer}; give an answer in the answers file under tasks"
    schema = catalog.form(form) if form else None
    variable = (schema or {}).get("x-variable")
    runner.simulated.append(task.task_spec.bpmn_id)
    try:
        # Recorded as an automatic decision, by the simulation's policy: no person decided.
        runner.complete_human_task(task, {variable: answer} if variable else answer,
                                   automatic(SIMULATION_POLICY, on_behalf_of="scopeflow simulate"))
    except Exception as exc:
        incident = incident_from(exc, runner.redact)
        return f"incident at {task.task_spec.bpmn_id}: {incident['message']}"
    return None


def _answer_form(catalog: Catalog, form: str | None, given: dict[str, Any]) -> dict[str, Any] | str:
    """``given`` completed with the form's defaults and validated; a sentence when it is invalid."""
    schema = catalog.form(form) if form else None
    if not schema:
        return dict(given)
    filled = copy.deepcopy(given)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in filled and isinstance(prop, dict) and "default" in prop:
            filled[key] = copy.deepcopy(prop["default"])
    problems = sorted(Draft202012Validator(schema).iter_errors(filled), key=lambda e: list(e.absolute_path))
    if problems:
        first = problems[0]
        if first.validator == "required":
            missing = [name for name in first.validator_value if name not in (first.instance or {})]
            return f"form {form} needs {', '.join(missing)}, which has no default"
        where = ".".join(str(p) for p in first.absolute_path) or "(root)"
        return f"form {form} is not answered by its defaults (at {where}: {first.message})"
    return filled


def _waiting_events(workflow: BpmnWorkflow) -> list:
    tasks = list(workflow.event_manager.tasks.values())
    for sub in workflow.subprocesses.values():
        tasks.extend(sub.event_manager.tasks.values())
    return tasks


def _fire_timers(workflow: BpmnWorkflow, fired: dict[str, int]) -> bool:
    """Make every waiting timer due now (a cycle at most :data:`MAX_CYCLE_FIRINGS` times)."""
    any_fired = False
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    for task in _waiting_events(workflow):
        definition = task.task_spec.event_definition
        if not isinstance(definition, TimerEventDefinition):
            continue
        key = str(task.id)
        if fired.get(key, 0) >= (MAX_CYCLE_FIRINGS if isinstance(definition, CycleTimerEventDefinition) else 1):
            continue
        if isinstance(definition, CycleTimerEventDefinition):
            definition.cycle_complete(task)  # computes (and bounds) the cycle first
            value = task._get_internal_data("event_value")
            if not value or value.get("cycles") == 0:
                continue
            value["next"] = past
        else:
            definition.has_fired(task)  # evaluates (and bounds) the timer expression first
            task._set_internal_data(event_fired=True)
        fired[key] = fired.get(key, 0) + 1
        any_fired = True
    return any_fired


def _deliver_messages(runner: _SimulationRunner) -> bool:
    for task in _waiting_events(runner.workflow):
        definition = task.task_spec.event_definition
        if isinstance(definition, MessageEventDefinition) and definition.name in runner.answers.messages:
            payload = runner.answers.messages.pop(definition.name)
            runner.workflow.send_event(BpmnEvent(definition, payload=payload if isinstance(payload, dict) else {}))
            return True
    return False


def _waiting_for(workflow: BpmnWorkflow) -> str:
    waits = []
    for task in _waiting_events(workflow):
        definition = task.task_spec.event_definition
        if isinstance(definition, MessageEventDefinition):
            waits.append(f"message \u201c{definition.name}\u201d at {task.task_spec.bpmn_id} (give it under messages)")
        else:
            waits.append(f"{type(definition).__name__.replace('EventDefinition', '').lower() or 'an event'} "
                         f"at {task.task_spec.bpmn_id}")
    return "waits for " + "; ".join(waits) if waits else "nothing is ready and nothing is awaited"


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(data, default=str))
