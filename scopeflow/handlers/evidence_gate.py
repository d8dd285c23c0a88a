"""The evidence gate: the lifecycle proceeds only when the recorded spans back it.

``verify_evidence`` evaluates the model's evidence rules due at a stage over every span recorded
for the instance so far (stored and not yet checkpointed). It never raises for failing rules: it
returns ``ok = False`` with the report, and the diagram routes that to the escalation path.
"""

from __future__ import annotations

from typing import Any

from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import CONFIGURATION, TaskFailure
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.spans.evidence import evaluate
from scopeflow.spans.rules import RuleError, parse_rules


@operator("verify_evidence", retry=NO_RETRY)
def verify_evidence(ctx: TaskContext, stage: str = "final") -> dict[str, Any]:
    """Evaluates the model's evidence rules due at ``stage`` over the instance's recorded spans."""
    if not ctx.evidence_rules.strip():
        raise TaskFailure(CONFIGURATION, "this model has no evidence rules (<model>.evidence.toml)")
    if ctx.recorded_spans is None:
        raise TaskFailure(CONFIGURATION, "no span record is attached to this task context")
    try:
        rules = parse_rules(ctx.evidence_rules, "evidence rules")
    except RuleError as exc:
        raise TaskFailure(CONFIGURATION, str(exc)) from None
    spans = ctx.recorded_spans()
    report = evaluate(rules, spans, stage=stage, at_element=ctx.bpmn_id)
    failed = [r.name for r in report.failed]
    ctx.record({"scopeflow.evidence.stage": stage, "scopeflow.evidence.ok": report.ok,
                "scopeflow.evidence.rules": len(report.rules), "scopeflow.evidence.failed": len(failed),
                "scopeflow.evidence.spans": len(spans)})
    result: dict[str, Any] = {"ok": report.ok, "failed": failed, "report": report.to_data()}
    if ctx.chain_head is not None:
        head, count = ctx.chain_head()
        # The head of the chain as stored before this gate ran: `scopeflow evidence verify ID --head`
        # checks an exported report against it later (this gate's own span comes after it).
        result.update(chain_head=head, chain_spans=count)
    return result
