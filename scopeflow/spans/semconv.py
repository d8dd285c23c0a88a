"""Scopeflow's own span attribute names, declared once (documented in ``registry/*.yaml``)."""

INSTANCE_ID = "scopeflow.instance.id"
PROCESS_ID = "scopeflow.process.id"
PROCESS_VERSION = "scopeflow.process.version"
BPMN_ELEMENT_ID = "scopeflow.bpmn.element.id"
BPMN_ELEMENT_TYPE = "scopeflow.bpmn.element.type"
BPMN_ELEMENT_NAME = "scopeflow.bpmn.element.name"
LANE = "scopeflow.lane"
TASK_OUTCOME = "scopeflow.task.outcome"          # completed | error | cancelled | failure:<kind>
TASK_ATTEMPT = "scopeflow.task.attempt"
OPERATOR = "scopeflow.operator"
FAILURE_KIND = "scopeflow.failure.kind"
ADVANCE_STEPS = "scopeflow.advance.steps"
ADVANCE_REASON = "scopeflow.advance.reason"
LINK_REASON = "scopeflow.link.reason"
HUMAN_ACTOR = "scopeflow.human.actor"              # who completed a human task
HUMAN_ROLE = "scopeflow.human.role"
FALLBACK = "scopeflow.fallback"                    # true when a fallback path ran
FALLBACK_REASON = "scopeflow.fallback.reason"

TESTS_PASSED = "scopeflow.tests.passed"
TESTS_FAILED = "scopeflow.tests.failed"
TESTS_ERRORS = "scopeflow.tests.errors"
LINT_ERRORS = "scopeflow.lint.errors"
COMPILE_ERRORS = "scopeflow.compile.errors"
SECURITY_HIGH = "scopeflow.security.high"
SECURITY_MEDIUM = "scopeflow.security.medium"

SPAN_KIND_TASK = "bpmn.task"
SPAN_KIND_ADVANCE = "scopeflow.advance"

# What kind of Scopeflow span this is; every value has a ``span.scopeflow.<value>`` group in
# ``registry/scopeflow.yaml`` that lists the attributes such a span must carry.
SPAN_TYPE = "scopeflow.span.type"
SPAN_TYPE_TASK = "bpmn.task"            # one run of a BPMN task
SPAN_TYPE_ADVANCE = "advance"           # one advance() of an instance
SPAN_TYPE_HANDLER = "handler"           # a child span around real work inside a handler
SPAN_TYPE_GEN_AI = "gen_ai"             # one LLM call (OpenTelemetry GenAI conventions)
SPAN_TYPES = (SPAN_TYPE_TASK, SPAN_TYPE_ADVANCE, SPAN_TYPE_HANDLER, SPAN_TYPE_GEN_AI)
