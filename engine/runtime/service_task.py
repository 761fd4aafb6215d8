"""Service tasks that call a registered connector and turn its failures into BPMN errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.spiff.specs.defaults import ServiceTask
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition

from engine.runtime.connectors import DEFAULT_ERROR_CODE, outcome_unknown

if TYPE_CHECKING:
    from SpiffWorkflow.task import Task

log = logging.getLogger(__name__)


# Connectors that query a customer's credit, move money, bind a guarantor or make a contract. A bank's
# product manager deploys processes of the bank's own; one calling these outside an application would
# pay out, or pull a credit report, with no product limit, review or approval in between.
LOAN_ACTIONS = ("core_banking/", "credit_bureau/", "guarantee/", "contract.")


def acts_on_a_loan(connector: str) -> bool:
    return connector.startswith(LOAN_ACTIONS)


class ConnectorServiceTask(ServiceTask):
    """Runs ``operation_name`` from the script engine's connector registry.

    SpiffWorkflow's own ``call_service`` error path hides the original exception (NameError on
    ``script``), so we dispatch here and raise the error event ourselves. The event must be the
    *spiff* ``ErrorEventDefinition``: event definitions compare by exact class. Each failure also goes
    to the top workflow's ``on_connector_failure`` callback where the caller set one (the service
    layer puts it on the audit trail, whether a boundary event catches it or not).
    """

    def _execute(self, task: Task) -> bool:
        engine = task.workflow.script_engine
        if acts_on_a_loan(self.operation_name) and not getattr(task.workflow.top_workflow, "acts_on_loans", False):
            raise WorkflowTaskException(
                f"connector {self.operation_name} acts on a loan: it runs only in an application of a published "
                "product or in the province's own processes, not in a bank's own process",
                task=task,
            )
        params = {name: value["value"] for name, value in self.evaluate_params(task).items()}
        try:
            task.data[self.result_variable] = engine.connectors.call(self.operation_name, task, params)
            return True
        except Exception as exc:
            code = getattr(exc, "code", None) or DEFAULT_ERROR_CODE
            message = str(exc) or exc.__class__.__name__
            log.info("connector %s failed with %s", self.operation_name, code)
            payload: dict[str, Any] = {
                "code": code,
                "message": message,
                "connector": self.operation_name,
                "outcome_unknown": outcome_unknown(exc),
            }
            top = task.workflow.top_workflow
            failed = getattr(top, "on_connector_failure", None)
            if failed is not None:
                failed(task, payload)
            event = BpmnEvent(ErrorEventDefinition(code, code=code), payload=payload, target=task.workflow)
            top.catch(event)
            if event in top.bpmn_events:  # nothing caught it: it escaped to the top as an external event
                top.bpmn_events.remove(event)
                raise WorkflowTaskException(
                    f"connector {self.operation_name} failed ({code}): {message}", task=task, exception=exc
                ) from exc
            return False
