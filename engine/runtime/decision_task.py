"""Business-rule tasks that evaluate a rule decision (GoRules JDM) through the platform's rule engine.

``spiffworkflow:calledDecisionId`` names a decision *slot* (``access``, ``pricing``); a product
binds each slot to a concrete, content-hashed decision key, so one archetype process serves many
products. Without a binding the slot name is the decision key. The decision's output is stored in
the task data under the slot name (or the ``resultVariable`` property), and the evaluation with its
rule hits is kept on the task for the instance's audit trail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.spiff.parser.task_spec import BusinessRuleTaskParser
from SpiffWorkflow.spiff.serializer.task_spec import SpiffBpmnTaskConverter
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask

if TYPE_CHECKING:
    from SpiffWorkflow.task import Task

EVALUATION_KEY = "rule_evaluation"


class DecisionTask(SpiffBpmnTask):
    def __init__(self, wf_spec: Any, name: str, decision: str, result_variable: str, **kwargs: Any) -> None:
        super().__init__(wf_spec, name, **kwargs)
        self.decision = decision
        self.result_variable = result_variable

    def _run_hook(self, task: Task) -> bool:
        engine = task.workflow.script_engine
        binding = getattr(task.workflow.top_workflow, "product_binding", None)
        key = binding.decisions.get(self.decision, self.decision) if binding is not None else self.decision
        try:
            evaluation = engine.rules.evaluate(key, task.data)
        except Exception as exc:
            raise WorkflowTaskException(f"rule decision {key} failed: {exc}", task=task, exception=exc) from exc
        task.data[self.result_variable] = evaluation.result
        task.internal_data[EVALUATION_KEY] = {
            "decision": key,
            "result": evaluation.result,
            "hits": evaluation.hits,
        }
        return True


class DecisionTaskParser(BusinessRuleTaskParser):
    """Keeps spiff's ``get_decision_ref`` (the parser calls it to list dependencies) but never
    looks the decision up among DMN files: decisions live in the rule engine."""

    def create_task(self) -> DecisionTask:
        extensions = self.parse_extensions()
        decision = extensions.get("calledDecisionId")
        if not decision:
            self.raise_validation_exception("business rule task has no calledDecisionId")
        properties = extensions.get("properties") or {}
        return self.spec_class(
            self.spec,
            self.bpmn_id,
            decision=decision,
            result_variable=properties.get("resultVariable") or decision,
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            **self.bpmn_attributes,
        )


class DecisionTaskConverter(SpiffBpmnTaskConverter):
    def to_dict(self, spec: DecisionTask) -> dict[str, Any]:
        dct = super().to_dict(spec)
        dct.update(decision=spec.decision, result_variable=spec.result_variable)
        return dct
