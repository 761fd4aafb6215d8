"""Split serialization: instance state is stored without the spec, and cached specs are re-attached.

Storing the spec in every row would double its size and make every load re-build the spec
objects; definitions are immutable, so the parsed spec is cached per definition instead.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter

from engine.errors import ScriptError
from engine.runtime.connectors import ConnectorRegistry
from engine.runtime.decision_task import DecisionTask, DecisionTaskConverter
from engine.runtime.service_task import ConnectorServiceTask


class InstanceStateConverter(BpmnWorkflowConverter):
    """Converts a workflow without its spec: specs are immutable per definition and cached apart.

    Converting the spec on every save and then throwing it away cost more than the rest of the
    state together.
    """

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


SERIALIZER = BpmnWorkflowSerializer(
    BpmnWorkflowSerializer.configure(
        {
            **SPIFF_CONFIG,
            BpmnWorkflow: InstanceStateConverter,
            ConnectorServiceTask: ServiceTaskConverter,
            DecisionTask: DecisionTaskConverter,
        }
    )
)
SERIALIZER_VERSION: str = SERIALIZER.VERSION
# Money is Decimal (never float) and dates are dates: both must survive a save and a load.
SERIALIZER.registry.register(Decimal, lambda value: {"value": str(value)}, lambda dct: Decimal(dct["value"]))
SERIALIZER.registry.register(
    date, lambda value: {"value": value.isoformat()}, lambda dct: date.fromisoformat(dct["value"])
)
# Convert the way SpiffWorkflow's own serialize_json does: a shallow conversion, with its JSON encoder
# turning registered types inside task data (Decimal, dates, UUIDs) into tagged objects. Every
# conversion here is for JSON, so the registry stays in that mode.
SERIALIZER.registry._encoder_mode = True
_ENCODER = SERIALIZER._encoder_cls


class CreditFlowScriptEngine(PythonScriptEngine):
    """The script engine every instance runs with: a sandboxed environment, connectors and rules."""

    def __init__(self, environment: Any, connectors: ConnectorRegistry, rules: Any) -> None:
        super().__init__(environment=environment)
        self.connectors = connectors
        self.rules = rules


def new_workflow(spec: Any, subprocess_specs: dict[str, Any], engine: CreditFlowScriptEngine) -> BpmnWorkflow:
    return BpmnWorkflow(spec, subprocess_specs, script_engine=engine)


def dump_state(workflow: BpmnWorkflow) -> str:
    """The instance state as JSON; ScriptError if a script left data that cannot be stored."""
    state = SERIALIZER.to_dict(workflow)
    state[SERIALIZER.VERSION_KEY] = SERIALIZER_VERSION
    try:
        return json.dumps(state, separators=(",", ":"), ensure_ascii=False, cls=_ENCODER)
    except (TypeError, ValueError) as exc:
        raise ScriptError(
            f"the process data cannot be stored: {exc}; "
            "task data may hold text, numbers, Decimal, dates, lists and dicts"
        ) from None


def load_state(state: str, spec: Any, subprocess_specs: dict[str, Any], engine: CreditFlowScriptEngine) -> BpmnWorkflow:
    document = json.loads(state)
    SERIALIZER.migrate(document)
    document["spec"] = spec
    document["subprocess_specs"] = subprocess_specs
    workflow: BpmnWorkflow = SERIALIZER.from_dict(document)
    workflow.script_engine = engine
    return workflow


def plain_json(value: Any) -> Any:
    """Task data as plain JSON for clients: Decimal as a string (never a float), dates in ISO 8601."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)
