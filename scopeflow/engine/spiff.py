"""Everything SpiffWorkflow-specific about parsing, running and serializing a workflow.

The three 3.2.0 work-arounds from the notes live here:
1. ``ScopeflowScriptEngine.call_service`` — the stock one raises ``NameError: name 'script'`` for any
   service failure; ours keeps the real exception (as the ``WorkflowTaskException``'s ``__cause__``).
2. ``ready_manual_task`` — ``Task.run()`` happily completes tasks that are not READY; every human
   completion goes through this guard.
3. ``ScopeflowServiceTask`` is registered with the serializer (custom spec classes must be, or
   serialization fails with ``TypeError``).

And one security rule: the serializer never revives task data. Stock SpiffWorkflow turns any dict
with a ``"typename"`` key back into the registered class when a state is loaded, so user data shaped
like a serialized workflow would come back as a live object with an unrestricted script engine.
Our converters restore task data, workflow data, event payloads and internal data as the plain JSON
they were written as, and refuse to write anything that is not plain JSON
(:mod:`scopeflow.engine.plain_json`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnEventConverter,
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter
from SpiffWorkflow.spiff.specs.defaults import ServiceTask
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from scopeflow.engine import model_bounds  # noqa: F401  (limits on timers and multi-instance counts)
from scopeflow.engine.flow import FlowSubWorkflow, FlowTask, FlowWorkflow, ensure_recursion_depth
from scopeflow.engine.plain_json import NotPlainJson, first_problem, require_plain
from scopeflow.engine.sandbox import RestrictedEnvironment
from scopeflow.handlers.failures import TaskFailure
from scopeflow.redaction import redact_data

SPIFF_LOGGERS = ("spiff", "spiff.task", "spiff.workflow", "spiff.metrics")


def set_spiff_log_level(level: int | str = logging.WARNING) -> None:
    """Spiff logs one INFO record per task state change (built and usually dropped: ~5% of a run)
    and whole task data below INFO (a PII leak), so its loggers sit at WARNING unless asked for
    (``SCOPEFLOW_SPIFF_LOG_LEVEL=INFO``, applied by each Engine); below INFO is never allowed."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    for name in SPIFF_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))


set_spiff_log_level(logging.WARNING)


class UncaughtFailure(Exception):
    """A handler failure no boundary event in the diagram catches: becomes an incident."""

    def __init__(self, failure: TaskFailure):
        super().__init__(f"uncaught {failure.kind} failure: {failure.message}")
        self.failure = failure


class ScopeflowServiceTask(ServiceTask):
    """A service task whose ``TaskFailure`` becomes a BPMN error event with ``errorCode = kind``."""

    def _execute(self, my_task: Task) -> bool | None:
        engine: ScopeflowScriptEngine = my_task.workflow.script_engine
        try:
            result = engine.call_service(
                my_task,
                operation_name=self.operation_name,
                operation_params=self.evaluate_params(my_task),
            )
        except WorkflowTaskException as exc:
            failure = exc.__cause__ if isinstance(exc.__cause__, TaskFailure) else None
            if failure is None:
                raise
            return _throw_failure(my_task, failure)
        my_task.data[self.result_variable] = json.loads(result)
        return True


def _throw_failure(my_task: Task, failure: TaskFailure) -> None:
    """Throw the failure as a BPMN error; if nothing in the diagram catches it, raise.

    The payload lands in task data (and so in the stored state): it is redacted first.
    """
    runner = getattr(my_task.workflow.script_engine, "runner", None)
    redact = getattr(runner, "redact", None) or (lambda text: text)
    failure = TaskFailure(failure.kind, redact(failure.message), redact_data(failure.details, redact))
    definition = ErrorEventDefinition(failure.kind, code=failure.kind)
    event = BpmnEvent(definition, payload=failure.to_payload(), target=my_task.workflow)
    top = my_task.workflow.top_workflow
    top.catch(event)
    if event in top.bpmn_events:
        top.bpmn_events.remove(event)
        uncaught = UncaughtFailure(failure)
        raise WorkflowTaskException(str(uncaught), task=my_task, exception=uncaught) from uncaught
    my_task.internal_data["scopeflow_failure"] = failure.to_payload()
    activity = _activity_with_boundaries(my_task)
    if activity is not None and activity is not my_task:
        # A multi-instance child is dropped from the tree when the boundary cancels its activity:
        # the activity keeps the failure so `instances retry` can find what to run again.
        activity.internal_data["scopeflow_failure"] = failure.to_payload()
    return None  # the interrupting boundary cancels this task and its path runs


def _activity_with_boundaries(task: Task) -> Task | None:
    """The nearest ancestor-or-self whose parent is the boundary-event split of its activity."""
    current = task
    while current is not None:
        if current.parent is not None and isinstance(current.parent.task_spec, BoundaryEventSplit):
            return current
        current = current.parent
    return None


class ScopeflowScriptEngine(PythonScriptEngine):
    """Restricted scripts + operator dispatch; ``runner`` is the advance in progress."""

    def __init__(self, runner: Any = None, time_budget_s: float = 1.0):
        super().__init__(environment=RestrictedEnvironment(time_budget_s))
        self.runner = runner

    def call_service(self, task: Task, **kwargs: Any) -> str:
        # Work-around 1: the stock method references an undefined ``script`` on failure.
        try:
            if self.runner is None:
                raise RuntimeError("no runner attached to the script engine")
            result = self.runner.call_operator(task, kwargs["operation_name"], kwargs["operation_params"])
            return result if isinstance(result, str) else json.dumps(result)  # the engine's runner gives JSON
        except WorkflowTaskException:
            raise
        except Exception as err:
            raise WorkflowTaskException(f"{type(err).__name__}: {err}", task=task, exception=err) from err


class ScopeflowParser(SpiffBpmnParser):
    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ServiceTaskParser, ScopeflowServiceTask),
    }

    def add_bpmn_xml(self, bpmn, filename=None):
        # Spiff parses a sequence flow's target inside its source (one recursion level per element):
        # a linear model of ~490 tasks would stop with RecursionError at the default limit.
        ensure_recursion_depth(sum(1 for _ in bpmn.iter()))
        super().add_bpmn_xml(bpmn, filename)


def build_parser(validate: bool = True) -> ScopeflowParser:
    return ScopeflowParser(validator=VALIDATOR if validate else None)


# Internal-data keys under which SpiffWorkflow itself keeps library objects (a multiple event's
# seen events); everything else in internal data is plain JSON, user payloads included.
_LIBRARY_INTERNAL_KEYS = {"seen_events": {"BpmnEvent"}}


class PlainDataTaskConverter(TaskConverter):
    """Tasks whose data and internal data are written and read back as plain JSON, never revived."""

    def to_dict(self, task: Task) -> dict:
        """Spiff's own task dict (a delta of the data against the parent's), built without its
        property look-ups. Whether data and internal data are plain JSON is settled for the whole
        state at once by :func:`serialize`, and task by task (:func:`require_plain_task`) only when
        that fails, to name the task and the path."""
        tasks = task.workflow.tasks
        parent = tasks.get(task._parent) if task._parent is not None else None
        data, delta = _data_and_delta(task, parent)
        internal = task.internal_data
        return {
            "id": _id_text(task),
            "parent": _id_text(parent) if parent is not None else None,
            "children": [_id_text(tasks.get(child)) if child in tasks else str(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task._state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.convert(internal) if internal else {},
            "data": data,
            "delta": delta,
        }

    def typed_dict(self, task: Task) -> dict:
        """:meth:`to_dict` with the ``typename`` the registry would add (``Task``)."""
        dct = self.to_dict(task)
        dct["typename"] = self.typename
        return dct

    def from_dict(self, dct: dict, workflow) -> Task:
        data, internal = dct.get("data") or {}, dct.get("internal_data") or {}
        delta = dct.get("delta") or {}
        updates = delta.get("updates") or {}
        neutral = {**dct, "data": {}, "internal_data": {},
                   "delta": {"updates": {}, "deletions": delta.get("deletions", [])} if delta else {}}
        task = super().from_dict(neutral, workflow)
        if delta and task.parent is not None:
            task.data.update(updates)   # the library deep-copied the parent's data and applied deletions
        else:
            task.data = data
        task.internal_data = {key: self._internal(key, value) for key, value in internal.items()}
        return task

    def _internal(self, key: str, value: Any) -> Any:
        allowed = _LIBRARY_INTERNAL_KEYS.get(key)
        if allowed is None:
            return value
        _only_typenames(value, allowed)
        return self.registry.restore(value)


def _data_and_delta(task: Task, parent: Task | None) -> tuple[dict, dict]:
    """(data, delta) as Spiff writes a task: the root's whole data, else the changes against the parent's."""
    if parent is None:
        return task.data, {}
    before, after = parent.data, task.data
    return {}, {"updates": {key: value for key, value in after.items() if key not in before or value != before[key]},
                "deletions": [key for key in before if key not in after]}


def require_plain_task(task: Task) -> None:
    """Raise :class:`NotPlainJson` naming ``task`` and the path, when what its dict would hold of
    its data and internal data (bar the library's own internal keys) is not plain JSON."""
    parent = task.workflow.tasks.get(task._parent) if task._parent is not None else None
    data, delta = _data_and_delta(task, parent)
    internal = {k: v for k, v in task.internal_data.items() if k not in _LIBRARY_INTERNAL_KEYS}
    updates = delta.get("updates", {})
    if (data or updates or internal) and first_problem((data, updates, internal)) is not None:
        name = _task_name(task)
        require_plain(data, "data", name)
        require_plain(updates, "data", name)
        require_plain(internal, "internal data", name)


def _id_text(task: Task) -> str:
    return task.id_text if isinstance(task, FlowTask) else str(task.id)


def _only_typenames(value: Any, allowed: set[str]) -> None:
    """Refuse a library-owned internal value whose top-level items are not the expected library types."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict) or item.get("typename") not in allowed:
            raise NotPlainJson("internal data", f"holds an unexpected object (allowed: {sorted(allowed)})")


class PlainPayloadEventConverter(BpmnEventConverter):
    """BPMN events (messages, errors) whose payload is user data: restored as plain JSON."""

    def to_dict(self, event: BpmnEvent) -> dict:
        require_plain(event.payload, "event payload")
        return super().to_dict(event)

    def from_dict(self, dct: dict) -> BpmnEvent:
        if not isinstance(dct.get("event_definition"), dict) or \
                not str(dct["event_definition"].get("typename", "")).endswith("EventDefinition"):
            raise NotPlainJson("event", "does not hold an event definition")
        event = super().from_dict({**dct, "payload": None})
        event.payload = dct.get("payload")
        return event


class _PlainWorkflowData:
    """Workflow-level data (data objects) is user data too: restored as plain JSON."""

    def mapping_to_dict(self, mapping: dict, **kwargs: Any) -> dict:
        """Spiff's, but a task is keyed by its cached id text (the tasks mapping is keyed by task id)
        and written by the engine's task converter directly (the registry's dispatch for each task
        of every checkpoint cost more than the task's own dict)."""
        convert, task_dict = self.registry.convert, _FLOW_TASK_CONVERTER.typed_dict
        return {(value.id_text if type(value) is FlowTask and key == value.id else str(key)):
                (task_dict(value) if type(value) is FlowTask and not kwargs else convert(value, **kwargs))
                for key, value in mapping.items()}

    def set_default_attributes(self, workflow, dct: dict) -> None:
        data = dct.pop("data", {})
        super().set_default_attributes(workflow, dct)
        workflow.data = data

    def to_dict(self, workflow) -> dict:
        require_plain(workflow.data, "workflow data")
        return super().to_dict(workflow)


class PlainDataWorkflowConverter(_PlainWorkflowData, BpmnWorkflowConverter):
    pass


class PlainDataSubWorkflowConverter(_PlainWorkflowData, BpmnSubWorkflowConverter):
    pass


# (spec, subprocess specs) of a deployed model version by its id; set by ``engine/versions.py``.
SpecSource = Callable[[str], tuple[Any, dict[str, Any]]]
_spec_source: list[SpecSource] = []


def set_spec_source(source: SpecSource) -> None:
    """Where states that refer to their model version's spec (instead of embedding it) get it."""
    _spec_source[:] = [source]


class SpecByReferenceConverter(PlainDataWorkflowConverter):
    """Writes a workflow whose ``spec_ref`` names its model version without its spec.

    Stock SpiffWorkflow embeds the whole parsed spec in every serialized state (more than half of
    a small instance's state, re-converted at every checkpoint). The spec is the model version's,
    stored once in ``model_version`` and parsed once per process, so the state keeps only its id.
    States written with an embedded spec (older ones, or a workflow without ``spec_ref``) load as
    before. Task data is still written and restored as plain JSON (the base converter's rule).
    """

    def to_dict(self, workflow) -> dict:
        ref = getattr(workflow, "spec_ref", None)
        if ref is None:
            return super().to_dict(workflow)
        require_plain(workflow.data, "workflow data")
        dct = WorkflowConverter.to_dict(self, workflow)   # the base attributes, without the spec
        dct["spec_ref"] = {"model_version_id": ref, "process": workflow.spec.name}
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict):
        ref = dct.pop("spec_ref", None)
        if ref is None:
            return super().from_dict(dct)
        if not _spec_source:
            raise LookupError("this state refers to a model version's spec, and no version store is open")
        spec, subprocess_specs = _spec_source[0](ref["model_version_id"])
        if spec.name != ref["process"]:
            raise ValueError(f"state of process {ref['process']!r} refers to a version of {spec.name!r}")
        workflow = super().from_dict({**dct, "spec": spec, "subprocess_specs": dict(subprocess_specs)})
        workflow.spec_ref = ref["model_version_id"]
        return workflow


def _task_name(task: Task) -> str:
    spec = task.task_spec
    return getattr(spec, "bpmn_name", None) or getattr(spec, "bpmn_id", None) or spec.name


def _serializer_config() -> dict:
    config = dict(SPIFF_CONFIG)
    config[ScopeflowServiceTask] = ServiceTaskConverter  # work-around 3
    config[Task] = PlainDataTaskConverter
    config[BpmnEvent] = PlainPayloadEventConverter
    config[BpmnWorkflow] = PlainDataWorkflowConverter
    config[BpmnSubWorkflow] = PlainDataSubWorkflowConverter
    return config


def _registry() -> tuple[Any, PlainDataTaskConverter]:
    """Spiff's registry with the engine's converters, and the one that writes the engine's tasks."""
    config = _serializer_config()
    registry = BpmnWorkflowSerializer.configure(config)
    # The indexed classes (flow.py), with the same plain-data converters, restore from and write
    # Spiff's own type names.
    converters = {cls: config[base](cls, registry, typename=base.__name__)
                  for cls, base in ((FlowTask, Task), (FlowWorkflow, BpmnWorkflow), (FlowSubWorkflow, BpmnSubWorkflow))}
    SpecByReferenceConverter(FlowWorkflow, registry, typename=BpmnWorkflow.__name__)
    return registry, converters[FlowTask]


_REGISTRY, _FLOW_TASK_CONVERTER = _registry()
SERIALIZER = BpmnWorkflowSerializer(_REGISTRY)


_STRICT_JSON = json.JSONEncoder().encode   # no ``default``: anything but plain JSON is refused


def serialize(workflow: BpmnWorkflow) -> str:
    """The workflow's state as JSON text, refused (:class:`NotPlainJson`) when task data is not plain JSON.

    One strict encode of the whole state settles the usual case. Only when it refuses does Spiff's
    encoder get its turn, after every task's data has been checked one by one (which names the task
    and path of a value that is not plain JSON): what it may then encode is a library object of
    its own internal data (a multiple event's seen events), never user data.
    """
    registry = SERIALIZER.registry
    registry._encoder_mode = True   # what Spiff's serialize_json sets: library objects left to its encoder
    try:
        dct = SERIALIZER.to_dict(workflow)
        dct[SERIALIZER.VERSION_KEY] = SERIALIZER.VERSION
        try:
            return _STRICT_JSON(dct)
        except (TypeError, ValueError, RecursionError):
            for one in _all_workflows(workflow):
                for task in one.tasks.values():
                    require_plain_task(task)
            return json.dumps(dct, cls=SERIALIZER._encoder_cls)
    finally:
        registry._encoder_mode = False


def _all_workflows(workflow: BpmnWorkflow) -> list:
    return [workflow, *workflow.subprocesses.values()]


def deserialize(state: str) -> BpmnWorkflow:
    return SERIALIZER.deserialize_json(state)


def do_engine_steps(workflow: FlowWorkflow, will_complete_task, did_complete_task) -> None:
    """Run READY non-human tasks until none is left, subprocesses deepest first (Spiff's order).

    Unlike ``BpmnWorkflow.do_engine_steps`` it takes READY tasks from the workflows' indexes
    (``flow.py``) instead of walking the task tree, so a step costs the same at any size or depth.
    It also fixes failures caught by boundary events: when a parallel multi-instance child fails
    into an interrupting boundary event, the stock loop would still run the next children (collected
    before the boundary cancelled the activity) and fail into a boundary that no longer waits. Here,
    after a caught failure the READY tasks are collected again with boundary events first, and a
    task that left READY meanwhile (run, cancelled or removed) is skipped.
    """

    def update(wf) -> int:
        count = 0
        cancellations = wf.cancellations
        # Boundary events first: a fired interrupting boundary must cancel its activity before any
        # other READY part of that activity (a sibling multi-instance child) runs.
        ready = sorted((t for t in wf.ready_tasks.values() if not t.task_spec.manual),
                       key=lambda t: not isinstance(t.task_spec, BoundaryEvent))
        for task in ready:
            if task.id not in wf.ready_tasks:
                continue
            if wf.cancellations != cancellations and _inside_cancelled(task):
                task.cancel()  # a multi-instance child whose activity a boundary event interrupted
                continue
            will_complete_task(task)
            task.run()
            count += 1
            did_complete_task(task)
            if task.internal_data.get("scopeflow_failure"):
                break  # a boundary event caught it: collect READY tasks again, boundary first
        if count:
            ensure_recursion_depth(len(wf.tasks))
        return count

    def one_pass() -> bool:
        active = workflow.get_active_subprocesses()
        for sub in sorted(active, key=lambda v: v.depth, reverse=True):
            while update(sub) > 0:
                pass
            if sub.parent_task_id is not None:
                parent = workflow.get_task_from_id(sub.parent_task_id)
                parent.task_spec._update(parent)
        ran = update(workflow)
        return ran > 0 or len(workflow.get_active_subprocesses()) > len(active)

    while one_pass():
        pass
    workflow.refresh_timers()


def _inside_cancelled(task: Task) -> bool:
    """Whether an ancestor is CANCELLED; walked only after a cancellation in the current batch."""
    parent = task.parent
    while parent is not None:
        if parent.state == TaskState.CANCELLED:
            return True
        parent = parent.parent
    return False


def ready_manual_task(workflow: BpmnWorkflow, task_id: str) -> Task:
    """Work-around 2: the human task ``task_id`` only if it is READY and manual, else ``LookupError``."""
    import uuid

    try:
        task = workflow.get_task_from_id(uuid.UUID(task_id))
    except Exception:  # a malformed id or TaskNotFoundException: both mean "not here"
        task = None
    if task is None:
        raise LookupError(f"task {task_id} is not part of this instance")
    if task.state != TaskState.READY or not task.task_spec.manual:
        raise LookupError(f"task {task_id} is {TaskState.get_name(task.state)}, not a READY human task")
    return task
