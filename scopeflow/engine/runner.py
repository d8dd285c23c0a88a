"""One ``advance`` of one instance: run engine steps with a span per BPMN task.

A :class:`Runner` owns a deserialized workflow for the length of one advance. It opens the advance
span (linked to the previous advance's trace), a child span per BPMN task run, dispatches service
tasks to operators with their retry policy, and tells the caller when a checkpoint is due (after
any expensive or slow task). Persistence is the caller's business (``engine/service.py``).
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.util.task import TaskState

from scopeflow.engine.flow import FlowTask
from scopeflow.engine.incidents import cause_of
from scopeflow.engine.people import Decider
from scopeflow.engine.spiff import ScopeflowScriptEngine, do_engine_steps
from scopeflow.handlers import registry
from scopeflow.handlers.context import ChildSpan, TaskContext
from scopeflow.handlers.failures import TRANSIENT, TaskFailure
from scopeflow.processes.bpmn_xml import ProcessInfo, lane_role
from scopeflow.redaction import secret_redactor
from scopeflow.spans import semconv
from scopeflow.spans.direct import DirectSpan
from scopeflow.spans.record import SpanRecord

PROPAGATOR = TraceContextTextMapPropagator()
# A task's outcome attribute: its state's name (TaskState.get_name builds its table at every call).
_OUTCOMES = {state: TaskState.get_name(state).lower() for state in TaskState._values}


@dataclass
class RunIdentity:
    instance_id: str
    model_name: str
    model_version: int
    workspace: Path
    processes: dict[str, ProcessInfo]        # every process of the version's bundle, by id
    evidence_rules: str = ""                 # the model's <model>.evidence.toml text


@dataclass
class Runner:
    workflow: BpmnWorkflow
    identity: RunIdentity
    tracer: trace.Tracer
    read_secret: Callable[[str, str, str], str] | None = None   # (name, instance_id, task) -> value
    has_secret: Callable[[str], bool] | None = None
    write_secret: Callable[[str, str, str, str], None] | None = None   # (name, value, instance_id, task)
    recorded_spans: Callable[[], list[Any]] | None = None       # stored + buffered SpanRecords
    chain_head: Callable[[], tuple[str, int]] | None = None     # head of the stored span chain
    checkpoint_threshold_s: float = 0.2
    on_checkpoint: Callable[[], None] | None = None
    redact: Callable[[str], str] = field(default=lambda text: text)
    # Where task spans go when they skip the SDK (spans/direct.py); None: through the SDK.
    direct_spans: Callable[[SpanRecord], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    steps: int = 0
    _open: dict[Any, trace.Span] = field(default_factory=dict)
    _started: dict[Any, float] = field(default_factory=dict)
    _advance_span: trace.Span | None = None
    _steps_run: list[str] = field(default_factory=list)      # BPMN names of the tasks this advance ran
    _last_checkpoint: float = field(default_factory=time.monotonic)
    # task spec -> (its span attributes but the task id, whether a checkpoint follows it): per element
    _spec_facts: dict[Any, tuple[dict[str, Any], bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workflow.script_engine = ScopeflowScriptEngine(runner=self)

    # -- the advance span -------------------------------------------------------------------
    @contextlib.contextmanager
    def advance_span(self, carrier: dict[str, str], reason: str) -> Iterator[dict[str, str]]:
        """Open the advance span (linked to the previous one); yields the new carrier to store."""
        links = []
        previous = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context() if carrier else None
        if previous is not None and previous.is_valid:
            links.append(Link(previous, {semconv.LINK_REASON: "resume"}))
        caller = trace.get_current_span().get_span_context()
        if caller.is_valid:  # e.g. the Celery task run that carries this advance
            links.append(Link(caller, {semconv.LINK_REASON: "caller"}))
        attributes = {
            semconv.INSTANCE_ID: self.identity.instance_id,
            semconv.PROCESS_ID: self.identity.model_name,
            semconv.PROCESS_VERSION: self.identity.model_version,
            semconv.ADVANCE_REASON: reason,
            "scopeflow.span.type": "advance",
        }
        # The root says which instance and why (backends without span links list each advance apart).
        name = f"advance {self.identity.model_name} {self.identity.instance_id[:8]}: {reason}"
        if self.direct_spans is not None:   # nothing but the evidence buffer reads spans (spans/direct.py)
            span: trace.Span = DirectSpan(name, None, attributes, self.direct_spans, links=links)
        else:
            span = self.tracer.start_span(name, links=links, context=trace.set_span_in_context(trace.INVALID_SPAN),
                                          attributes=attributes)
        self._advance_span = span
        self._steps_run = []
        new_carrier: dict[str, str] = {}
        PROPAGATOR.inject(new_carrier, context=trace.set_span_in_context(span))
        try:
            yield new_carrier
        except BaseException as exc:
            self._fail_span(span, exc)
            raise
        finally:
            span.set_attribute(semconv.ADVANCE_STEPS, self.steps)
            if self._steps_run:
                first, last = self._steps_run[0], self._steps_run[-1]
                span.update_name(f"{name} ({first})" if first == last else f"{name} ({first} … {last})")
            span.end()
            self._advance_span = None

    # -- engine steps with a span per task ----------------------------------------------------
    def run_steps(self) -> None:
        """Refresh timers and run every READY non-human task; exceptions propagate (incident)."""
        self.workflow.refresh_timers()
        try:
            do_engine_steps(self.workflow, self._will, self._did)
        except Exception as exc:
            for task_id, span in list(self._open.items()):
                self._fail_span(span, exc)
                span.set_attribute(semconv.TASK_OUTCOME, "error")
                span.end()
                self._open.pop(task_id, None)
            raise

    def _task_attributes(self, task) -> dict[str, Any]:
        """A task span's attributes: its element's and the task's id."""
        attrs = dict(self._facts(task)[0])
        attrs["scopeflow.task.id"] = _id_text(task)
        return attrs

    def _facts(self, task) -> tuple[dict[str, Any], bool]:
        """What a task's element says, the same at every run of that element in this advance (so
        worked out once per spec): its span attributes but the task id, and whether its operator
        asks for a checkpoint after it runs."""
        spec = task.task_spec
        known = self._spec_facts.get(spec)
        if known is None:
            element = self.element_of(task)
            expensive = bool(element and element.operator and _is_expensive(element.operator))
            known = self._spec_facts[spec] = (self._element_attributes(task, element), expensive)
        return known

    def _element_attributes(self, task, element) -> dict[str, Any]:
        spec = task.task_spec
        attrs: dict[str, Any] = {
            semconv.INSTANCE_ID: self.identity.instance_id,
            semconv.PROCESS_ID: self.identity.model_name,
            semconv.PROCESS_VERSION: self.identity.model_version,
            semconv.BPMN_ELEMENT_ID: spec.bpmn_id,
            semconv.BPMN_ELEMENT_TYPE: element.tag if element else type(spec).__name__,
            "scopeflow.span.type": "bpmn.task",
        }
        if spec.bpmn_name:
            attrs[semconv.BPMN_ELEMENT_NAME] = spec.bpmn_name
        if getattr(spec, "lane", None):
            attrs[semconv.LANE] = spec.lane
        if element and element.operator:
            attrs[semconv.OPERATOR] = element.operator
        return attrs

    def element_of(self, task):
        """The catalog's view of the BPMN element a Spiff task runs (properties, lane, operator)."""
        process = self.identity.processes.get(task.workflow.spec.name)
        return process.element(task.task_spec.bpmn_id) if process else None

    def _will(self, task) -> None:
        if not getattr(task.task_spec, "bpmn_id", None):
            return  # internal specs (Start, EndJoin) are not BPMN elements
        name = task.task_spec.bpmn_name or task.task_spec.bpmn_id
        self._steps_run.append(name)
        if self.direct_spans is not None:
            span: trace.Span = DirectSpan(name, self._advance_span.get_span_context(), self._task_attributes(task),
                                          self.direct_spans, plain=True)   # str keys, scalar values
        else:
            span = self.tracer.start_span(name, context=trace.set_span_in_context(self._advance_span),
                                          attributes=self._task_attributes(task))
        self._open[task.id] = span
        self._started[task.id] = time.monotonic()

    def _did(self, task) -> None:
        self.steps += 1
        span = self._open.pop(task.id, None)
        started = self._started.pop(task.id, time.monotonic())
        if span is not None:
            failure = task.internal_data.get("scopeflow_failure")
            if failure:
                span.set_attribute(semconv.TASK_OUTCOME, f"failure:{failure['kind']}")
                span.set_attribute(semconv.FAILURE_KIND, failure["kind"])
                span.add_event("exception", {"exception.type": "TaskFailure",
                                             "exception.message": self.redact(failure["message"])})
                span.set_status(Status(StatusCode.ERROR, self.redact(failure["message"])))
            else:
                span.set_attribute(semconv.TASK_OUTCOME, _OUTCOMES.get(task.state) or TaskState.get_name(task.state).lower())
            span.end()
        slow = time.monotonic() - started > self.checkpoint_threshold_s
        expensive = span is not None and self._facts(task)[1]
        if (slow or expensive) and self.on_checkpoint is not None:
            self.on_checkpoint()
            self._last_checkpoint = time.monotonic()

    def _fail_span(self, span: trace.Span, exc: BaseException) -> None:
        """ERROR status and an ``exception`` event, redacted: an exception's text may hold a secret
        (the SDK's own ``record_exception`` would store it verbatim)."""
        span.add_event("exception", {
            "exception.type": type(exc).__name__,
            "exception.message": self.redact(str(exc)),
            "exception.stacktrace": self.redact("".join(traceback.format_exception(exc))),
        })
        span.set_status(Status(StatusCode.ERROR, self.redact(_one_line(exc))))

    # -- human task completion ----------------------------------------------------------------
    def complete_human_task(self, task, data: dict[str, Any], decider: Decider) -> None:
        """Run a READY human task (already guarded) with a span from READY to now; ``decider`` was
        checked against the lane's role by the engine (or is an automatic policy)."""
        attrs = self._task_attributes(task)
        attrs[semconv.HUMAN_ACTOR] = decider.actor
        attrs[semconv.HUMAN_ROLE] = "" if decider.automated else lane_role(getattr(task.task_spec, "lane", None))
        attrs[semconv.HUMAN_AUTOMATED] = decider.automated
        if decider.automated:
            attrs[semconv.HUMAN_POLICY] = decider.policy
        else:
            attrs[semconv.HUMAN_ROLES] = list(decider.roles)
        start_ns = int(task.last_state_change * 1e9)
        self._steps_run.append(task.task_spec.bpmn_name or task.task_spec.bpmn_id)
        span = self.tracer.start_span(task.task_spec.bpmn_name or task.task_spec.bpmn_id,
                                      context=trace.set_span_in_context(self._advance_span),
                                      attributes=attrs, start_time=start_ns)
        for key, value in _decision_attributes(data).items():
            span.set_attribute(key, _attr_value(value, self.redact))
        try:
            task.data.update(data)
            task.run()
        except Exception as exc:
            self._fail_span(span, exc)
            span.end()
            raise
        span.set_attribute(semconv.TASK_OUTCOME, "completed")
        span.end()
        self.steps += 1

    # -- operators ----------------------------------------------------------------------------
    def call_operator(self, task, name: str, params: dict[str, dict[str, Any]]) -> str:
        op = registry.get(name)
        values = {key: param["value"] for key, param in params.items()}
        span = self._open.get(task.id)
        attempt = 1
        while True:
            ctx = self._context(task, op, attempt, span)
            if span is not None:
                span.set_attribute(semconv.TASK_ATTEMPT, attempt)
            try:
                result = op(ctx, **values)
                break
            except TaskFailure as failure:
                if failure.kind != TRANSIENT or attempt >= op.retry.max_attempts:
                    if span is not None and failure.kind == TRANSIENT:
                        span.set_attribute("scopeflow.retry.exhausted", True)
                    raise
                if span is not None:
                    span.add_event("retry", {"attempt": attempt, "reason": self.redact(failure.message)})
                self.sleep(op.retry.delay(attempt))
                attempt += 1
        return _json_result(name, result)

    def _context(self, task, op, attempt: int, span: trace.Span | None) -> TaskContext:
        hooks = _OperatorHooks(self, task, span)
        identity = self.identity
        return TaskContext(
            instance_id=identity.instance_id,
            task_id=_id_text(task),
            bpmn_id=task.task_spec.bpmn_id,
            workspace=identity.workspace,
            attempt=attempt,
            secret_names=op.secrets,
            record_attributes=hooks.record,
            open_span=hooks.open_span,
            read_secret=hooks.read_secret,
            has_secret=self.has_secret,
            store_secret=hooks.write_secret,
            recorded_spans=self.recorded_spans,
            evidence_rules=identity.evidence_rules,
            chain_head=self.chain_head,
        )


class _OperatorHooks:
    """The callbacks one operator call's :class:`TaskContext` carries: its task span's attributes,
    child spans, and the secret store, all through the runner (a plain object rather than closures
    built at every call, since an operator call is the engine's innermost loop)."""

    def __init__(self, runner: Runner, task, span: trace.Span | None) -> None:
        self.runner, self.task, self.span = runner, task, span
        self.nested: list[trace.Span] = []   # open child spans: a span opened inside one is its child

    def record(self, attributes: dict[str, Any]) -> None:
        if self.span is not None:
            for key, value in attributes.items():
                self.span.set_attribute(key, _attr_value(value, self.runner.redact))

    @contextlib.contextmanager
    def open_span(self, name: str, attributes: dict[str, Any]) -> Iterator[ChildSpan]:
        runner, nested = self.runner, self.nested
        handle = ChildSpan(name, attributes)
        parent = trace.set_span_in_context(nested[-1] if nested else self.span or runner._advance_span)
        span_type = attributes.get("scopeflow.span.type", "handler")
        base = {semconv.INSTANCE_ID: runner.identity.instance_id,
                semconv.BPMN_ELEMENT_ID: self.task.task_spec.bpmn_id,
                "scopeflow.span.type": span_type}
        # A model call is a client span (OpenTelemetry GenAI conventions); other work is internal.
        kind = SpanKind.CLIENT if span_type == "gen_ai" else SpanKind.INTERNAL
        with runner.tracer.start_as_current_span(name, context=parent, attributes=base, kind=kind,
                                                 record_exception=False, set_status_on_exception=False) as child:
            nested.append(child)
            try:
                yield handle
            except BaseException as exc:
                runner._fail_span(child, exc)
                raise
            finally:
                nested.pop()
                for key, value in handle.attributes.items():
                    child.set_attribute(key, _attr_value(value, runner.redact))

    def read_secret(self, name: str) -> str:
        runner = self.runner
        if runner.read_secret is None:
            raise TaskFailure("configuration", f"secret {name!r} is not available (no secret store)")
        return runner.read_secret(name, runner.identity.instance_id, self.task.task_spec.bpmn_id)

    def write_secret(self, name: str, value: str) -> None:
        runner = self.runner
        if runner.write_secret is None:
            raise TaskFailure("configuration", f"secret {name!r} cannot be stored (no secret store)")
        runner.write_secret(name, value, runner.identity.instance_id, self.task.task_spec.bpmn_id)
        runner.redact = secret_redactor([value], then=runner.redact)   # from now on, in this advance too


def _id_text(task) -> str:
    """The task id as text (cached on the engine's own tasks: the state's writer needs it too)."""
    return task.id_text if isinstance(task, FlowTask) else str(task.id)


def _is_expensive(operator: str) -> bool:
    try:
        return registry.get(operator).expensive
    except KeyError:
        return False


def _json_result(name: str, result: Any) -> str:
    """The operator's result as JSON text (what the service task stores, parsed, as task data)."""
    if result is None:
        result = {}
    if not isinstance(result, dict):
        raise TypeError(f"operator {name!r} returned {type(result).__name__}, expected a dict")
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"operator {name!r} returned data that is not JSON: {exc}") from None


def _attr_value(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float | bool) for v in value):
        kinds = {type(v) for v in value}
        if len(kinds) <= 1:
            return [redact(v) if isinstance(v, str) else v for v in value]
    return redact(json.dumps(value, sort_keys=True, default=str))


def _decision_attributes(data: dict[str, Any]) -> dict[str, Any]:
    """What a human decided, as span attributes: scalar form fields under ``scopeflow.human.data.*``."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                if isinstance(subvalue, str | int | float | bool):
                    out[f"scopeflow.human.data.{key}.{sub}"] = subvalue
        elif isinstance(value, str | int | float | bool):
            out[f"scopeflow.human.data.{key}"] = value
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def incident_from(exc: BaseException, redact: Callable[[str], str] = lambda text: text) -> dict[str, Any]:
    """What an operator needs to fix and retry: kept server-side, redacted like every span."""
    # Ours chain the real error as ``__cause__``; Spiff raises its wrapper inside the ``except`` of
    # the real error (an expression's), which leaves it as ``__context__``.
    spiff_wrapped = exc.__cause__ is None and isinstance(exc, WorkflowException) and exc.__context__ is not None
    cause = exc.__cause__ or (exc.__context__ if spiff_wrapped else None) or exc
    message = _one_line(cause)
    if spiff_wrapped:  # keep what Spiff says (which expression) and why it failed
        message = f"{str(exc).strip().rstrip('.')}: {message}"
    failed = getattr(exc, "task", None)
    return {
        "message": redact(message),
        "task_id": str(failed.id) if failed is not None else None,
        "bpmn_id": getattr(getattr(failed, "task_spec", None), "bpmn_id", None),
        "error_type": type(cause).__name__,
        "cause": cause_of(type(cause).__name__, message),
        "traceback": redact("".join(traceback.format_exception(exc))),
    }
