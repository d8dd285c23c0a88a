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
HUMAN_ROLE = "scopeflow.human.role"                # the lane's role the account acted in
HUMAN_ROLES = "scopeflow.human.roles"              # every role the account holds (looked up)
HUMAN_AUTOMATED = "scopeflow.human.automated"      # true when a policy (--yes), not a person, decided
HUMAN_POLICY = "scopeflow.human.policy"            # the policy that decided an automated completion
SIMULATED = "scopeflow.simulated"                  # true on spans of `scopeflow simulate`
FALLBACK = "scopeflow.fallback"                    # true when a fallback path ran
FALLBACK_REASON = "scopeflow.fallback.reason"

# Set on spans started after this process failed to export span batches to the OTLP collector.
OTLP_EXPORT_FAILURES = "scopeflow.otlp.export_failures"
OTLP_EXPORT_PROBLEM = "scopeflow.otlp.export_problem"

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

# Task runs and human tasks, beyond the identity attributes above.
TASK_ID = "scopeflow.task.id"                      # the engine's id of this task run
RETRY_EXHAUSTED = "scopeflow.retry.exhausted"      # a transient failure on the last allowed attempt
# A template (Weaver ``template[any]``): the keys are ``scopeflow.human.data.<form variable>.<field>``.
HUMAN_DATA_PREFIX = "scopeflow.human.data"

# What the handlers measured, one block per operator family.
SPEC_ENTITIES = "scopeflow.spec.entities"
SPEC_FIELDS = "scopeflow.spec.fields"
SPEC_QUESTIONS = "scopeflow.spec.questions"
SPEC_COMPLEXITY = "scopeflow.spec.complexity"
SPEC_DEFAULTS_USED = "scopeflow.spec.defaults_used"
SPEC_ANSWERS_APPLIED = "scopeflow.spec.answers_applied"
SPEC_AUTHOR = "scopeflow.spec.author"

PLAN_TASKS = "scopeflow.plan.tasks"
PLAN_BUILD_TASKS = "scopeflow.plan.build_tasks"   # the build order's length (one completed build each)
PLAN_ENTITIES = "scopeflow.plan.entities"
PLAN_UNBUILDABLE = "scopeflow.plan.unbuildable"
PLAN_PHASES = "scopeflow.plan.phases"

BUILD_TASK = "scopeflow.build.task"
BUILD_FILES = "scopeflow.build.files"
BUILD_FEEDBACK_IGNORED = "scopeflow.build.feedback_ignored"
BUILD_AUTHOR = "scopeflow.build.author"
BUILD_REQUIREMENTS = "scopeflow.build.requirements"     # requirements the built task realises
BUILD_FEEDBACK_USED = "scopeflow.build.feedback_used"
BUILD_KEPT = "scopeflow.build.kept"
BUILD_SELF_CHECK_PYTEST_EXIT = "scopeflow.build.self_check.pytest_exit"
BUILD_SELF_CHECK_RUFF_EXIT = "scopeflow.build.self_check.ruff_exit"

CHECK_NAME = "scopeflow.check.name"
CHECK_FILES = "scopeflow.check.files"
CHECK_DURATION_S = "scopeflow.check.duration_s"
CHECK_ERROR = "scopeflow.check.error"
TESTS_SKIPPED = "scopeflow.tests.skipped"
SECURITY_LOW = "scopeflow.security.low"
SANDBOX_ISOLATION = "scopeflow.sandbox.isolation"            # namespace | none
SANDBOX_ISOLATION_REASON = "scopeflow.sandbox.isolation_reason"

# The requirement matrix (handlers/requirements.py): the analyst's reading, the verifier's
# per-requirement test results and the verdicts the reviewer and the reports use.
REQUIREMENTS_TOTAL = "scopeflow.requirements.total"
REQUIREMENTS_SCOPE_LINES = "scopeflow.requirements.scope_lines"
REQUIREMENTS_UNMAPPED_LINES = "scopeflow.requirements.unmapped_lines"
REQUIREMENTS_ASSUMED = "scopeflow.requirements.assumed"
REQUIREMENTS_NOT_UNDERSTOOD = "scopeflow.requirements.not_understood"
REQUIREMENTS_DELIVERED = "scopeflow.requirements.delivered"
REQUIREMENTS_NOT_BUILT = "scopeflow.requirements.not_built"
REQUIREMENTS_WITHOUT_VERDICT = "scopeflow.requirements.without_verdict"
REQUIREMENTS_DELIVERED_WITHOUT_TEST = "scopeflow.requirements.delivered_without_test"
REQUIREMENTS_UNPLANNED = "scopeflow.requirements.unplanned"
REQUIREMENTS_TESTED = "scopeflow.requirements.tested"
REQUIREMENTS_FAILING = "scopeflow.requirements.failing"

REVIEW_CONFIDENCE = "scopeflow.review.confidence"
REVIEW_RATIONALE_AUTHOR = "scopeflow.review.rationale_author"
REVIEW_RATIONALE_MISSING = "scopeflow.review.rationale_missing"   # why the optional LLM rationale is absent

CREDENTIALS_REQUIRED = "scopeflow.credentials.required"
CREDENTIALS_MISSING = "scopeflow.credentials.missing"
CREDENTIALS_REQUIRED_NAMES = "scopeflow.credentials.required_names"
CREDENTIALS_OPTIONAL_NAMES = "scopeflow.credentials.optional_names"
CREDENTIALS_MISSING_NAMES = "scopeflow.credentials.missing_names"
CREDENTIALS_NOT_BUILT = "scopeflow.credentials.not_built"
CREDENTIALS_PASSED = "scopeflow.credentials.passed"

DEPLOY_RELEASE_ID = "scopeflow.deploy.release_id"
DEPLOY_PORT = "scopeflow.deploy.port"
DEPLOY_URL = "scopeflow.deploy.url"
DEPLOY_HEALTH_OK = "scopeflow.deploy.health_ok"
DEPLOY_HEALTH_STATUS = "scopeflow.deploy.health_status"
DEPLOY_REUSED = "scopeflow.deploy.reused"
DEPLOY_ROLLED_BACK = "scopeflow.deploy.rolled_back"

EVIDENCE_STAGE = "scopeflow.evidence.stage"
EVIDENCE_OK = "scopeflow.evidence.ok"
EVIDENCE_RULES = "scopeflow.evidence.rules"
EVIDENCE_FAILED = "scopeflow.evidence.failed"
EVIDENCE_SPANS = "scopeflow.evidence.spans"

REPORT_KIND = "scopeflow.report.kind"
REPORT_BLOCKERS = "scopeflow.report.blockers"
REPORT_TEMPLATE = "scopeflow.report.template"
REPORT_BYTES = "scopeflow.report.bytes"

# On ``chat {model}`` spans, beside the GenAI conventions' ``gen_ai.*`` (handlers/llm.py sets them).
LLM_ROLE = "scopeflow.llm.role"
LLM_ATTEMPTS = "scopeflow.llm.attempts"            # HTTP attempts of one logical call
LLM_RETRIED = "scopeflow.llm.retried"              # error.type of each attempt that was retried
LLM_OUTPUT_MODE = "scopeflow.llm.output_mode"      # json_schema | json_object | text | tools
LLM_OUTPUT_MODE_REASON = "scopeflow.llm.output_mode_reason"
LLM_MAX_TOKENS_FROM_BUDGET = "scopeflow.llm.max_tokens_from_budget"
LLM_COST = "scopeflow.llm.cost"                    # micro-dollars, rounded up
LLM_COST_PRICED = "scopeflow.llm.cost_priced"
LLM_USAGE_ESTIMATED = "scopeflow.llm.usage_estimated"
LLM_REPLY_PROBLEM = "scopeflow.llm.reply_problem"

EXAMPLE_COUNT = "scopeflow.example.count"          # the example models' sum_values operator
