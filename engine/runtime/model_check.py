"""Deploy-time checks of a BPMN/DMN bundle: XSD, parse, and lint, reporting every problem at once.

A model that would fail at run time for a reason visible in the file (a missing form, an unknown
connector, a script that does not compile in the sandbox, a timer that does not parse, a user task
nobody can be assigned to) is refused here, before any instance can trip over it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.specs.MultiChoice import MultiChoice
from SpiffWorkflow.spiff.parser.process import VALIDATOR

from engine.errors import InvalidInput, InvalidModel
from engine.inbox.assignment import PERSONAL
from engine.org.roles import ROLES, role_for_lane
from engine.runtime.parser import BPMN_NS, CreditFlowParser
from engine.runtime.service_task import ConnectorServiceTask
from engine.runtime.xml_safety import parse_xml

ExpressionCheck = Callable[[str, str], "str | None"]
Problem = dict[str, Any]

KINDS = {".bpmn": "bpmn", ".dmn": "dmn"}
MAX_FILES = 50


@dataclass(frozen=True)
class ModelFile:
    name: str
    kind: str
    content: bytes
    sha256: str


def read_model_files(files: Iterable[tuple[str, bytes]], max_bytes: int) -> list[ModelFile]:
    """Check names, count, size and XML safety; raises on the first unsafe file."""
    result: list[ModelFile] = []
    seen: set[str] = set()
    for raw_name, content in files:
        name = PurePath(raw_name or "").name
        kind = KINDS.get(PurePath(name).suffix.lower())
        if kind is None:
            raise InvalidInput(
                f"{name or 'unnamed file'}: only .bpmn and .dmn files can be deployed",
                [{"field": "files", "message": f"{name or 'unnamed file'} is not a .bpmn or .dmn file"}],
            )
        if name in seen:
            raise InvalidInput(f"{name} was uploaded twice", [{"field": "files", "message": f"duplicate {name}"}])
        seen.add(name)
        parse_xml(content, name, max_bytes)
        result.append(ModelFile(name, kind, content, hashlib.sha256(content).hexdigest()))
    if not result:
        raise InvalidInput("no model files were uploaded", [{"field": "files", "message": "is required"}])
    if len(result) > MAX_FILES:
        raise InvalidInput(f"at most {MAX_FILES} files per deployment", [{"field": "files", "message": "too many"}])
    return result


def build_parser(files: Iterable[ModelFile], *, validate: bool = True) -> tuple[CreditFlowParser, list[Problem]]:
    """Validate against the XSDs and feed the parser; problems are collected, not raised."""
    parser = CreditFlowParser()
    problems: list[Problem] = []
    for model in files:
        root = parse_xml(model.content, model.name, max_bytes=len(model.content) + 1)
        if validate:
            problems.extend(_schema_problems(parser, model, root))
            if problems:
                continue
        try:
            if model.kind == "bpmn":
                parser.add_bpmn_xml(root, model.name)
            else:
                parser.add_dmn_xml(root, model.name)
        except ValidationException as exc:
            problems.append(_from_validation(exc, model.name))
    return parser, problems


def _schema_problems(parser: CreditFlowParser, model: ModelFile, root: etree._Element) -> list[Problem]:
    if model.kind == "bpmn":
        VALIDATOR.preprocess(root)
        schema = VALIDATOR.validator
    else:
        schema = _dmn_schema(parser, root.nsmap.get(None) or root.nsmap.get("dmn"))
        if schema is None:
            return [{"location": model.name, "message": "unknown DMN namespace"}]
    if schema.validate(root):
        return []
    return [{"location": f"{model.name}:{error.line}", "message": error.message} for error in schema.error_log]


@functools.cache
def _dmn_schema_for(path: str) -> etree.XMLSchema:
    return BpmnValidator(path).validator


def _dmn_schema(parser: CreditFlowParser, namespace: str | None) -> etree.XMLSchema | None:
    """The compiled XSD of a DMN version (1.1–1.3), built once per process."""
    path = parser.dmn_schemas.get(namespace)
    return _dmn_schema_for(path) if path else None


def _from_validation(exc: ValidationException, file_name: str) -> Problem:
    element = getattr(exc, "id", None) or getattr(exc, "name", None)
    where = f"{exc.file_name or file_name}:{exc.line_number}" if exc.line_number else (exc.file_name or file_name)
    message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    problem: Problem = {"location": where, "message": message}
    if element:
        problem["element"] = element
    return problem


def lint(
    parser: CreditFlowParser,
    *,
    forms: Container[str],
    connectors: Container[str],
    check_expression: ExpressionCheck,
) -> tuple[dict[str, tuple[Any, dict[str, Any]]], list[Problem]]:
    """Resolve every executable process with its subprocesses and lint all their task specs.

    Returns ``{process_id: (spec, subprocess_specs)}`` for the processes that resolved.
    """
    problems: list[Problem] = []
    resolved: dict[str, tuple[Any, dict[str, Any]]] = {}
    for process_id in sorted(parser.get_process_ids()):
        try:
            spec = parser.get_spec(process_id)
            subprocesses = parser.get_subprocess_specs(process_id)
        except ValidationException as exc:
            problems.append(_from_validation(exc, exc.file_name or process_id))
            continue
        resolved[process_id] = (spec, subprocesses)
    checked: set[int] = set()
    for spec, subprocesses in resolved.values():
        for process_spec in (spec, *subprocesses.values()):
            if id(process_spec) in checked:
                continue
            checked.add(id(process_spec))
            for task_spec in process_spec.task_specs.values():
                problems.extend(_lint_task(task_spec, process_spec, forms, connectors, check_expression))
            problems.extend(_unreachable(parser, process_spec))
    return resolved, problems


# What a sequence flow must reach for it to run; start events and event subprocesses are triggered.
_FLOW_NODES = frozenset(
    f"{{{BPMN_NS}}}{tag}"
    for tag in (
        "task", "userTask", "manualTask", "scriptTask", "serviceTask", "businessRuleTask", "sendTask",
        "receiveTask", "callActivity", "subProcess", "exclusiveGateway", "parallelGateway",
        "inclusiveGateway", "eventBasedGateway", "intermediateCatchEvent", "intermediateThrowEvent",
        "endEvent", "boundaryEvent",
    )
)  # fmt: skip


def _unreachable(parser: CreditFlowParser, process_spec: Any) -> list[Problem]:
    """Nodes no sequence flow leads to: SpiffWorkflow drops them without a word, so a step a product
    manager added but did not connect would simply never run."""
    process_parser = parser.process_parsers.get(process_spec.name)
    node = getattr(process_parser, "node", None)
    if node is None:
        return []
    known = {getattr(t, "bpmn_id", None) for t in process_spec.task_specs.values()}
    where = getattr(process_spec, "file", None) or process_spec.name
    return [
        {
            "location": f"{where}:{element.get('id')}",
            "message": "unreachable: no sequence flow leads to it, so it never runs",
        }
        for element in node
        if element.tag in _FLOW_NODES and element.get("triggeredByEvent") != "true" and element.get("id") not in known
    ]


def _lint_task(
    task_spec: Any, process_spec: Any, forms: Container[str], connectors: Container[str], check: ExpressionCheck
) -> list[Problem]:
    where = (
        f"{getattr(process_spec, 'file', None) or process_spec.name}:{getattr(task_spec, 'bpmn_id', task_spec.name)}"
    )
    found: list[Problem] = []

    def expression(source: str | None, mode: str, what: str) -> None:
        if source:
            error = check(source, mode)
            if error:
                found.append({"location": where, "message": f"{what}: {error}"})

    extensions = getattr(task_spec, "extensions", None) or {}
    properties = extensions.get("properties") or {}
    if getattr(task_spec, "manual", False) and getattr(task_spec, "bpmn_id", None):
        named = any(properties.get(p) for p in ("candidateRole", "candidateUsers", "candidateGroups", PERSONAL))
        if not task_spec.lane and not properties.get("candidateRole"):
            found.append({"location": where, "message": "user task has no lane and no candidateRole property"})
        elif task_spec.lane and role_for_lane(task_spec.lane) not in ROLES and not named:
            message = (
                f"lane {task_spec.lane!r} is not a role and the task names no candidates: it would be offered "
                f"to nobody (roles: {', '.join(sorted(ROLES))})"
            )
            found.append({"location": where, "message": message})
        form = properties.get("formJsonSchemaFilename")
        if type(task_spec).__name__ == "UserTask" and not form:
            found.append({"location": where, "message": "user task has no formJsonSchemaFilename property"})
        if form and form not in forms:
            found.append({"location": where, "message": f"form {form!r} does not exist"})
        ui_form = properties.get("formUiSchemaFilename")
        if ui_form and ui_form not in forms:
            found.append({"location": where, "message": f"UI schema {ui_form!r} does not exist"})
    if isinstance(task_spec, ScriptTask):
        expression(task_spec.script, "exec", "script")
    expression(getattr(task_spec, "prescript", None), "exec", "preScript")
    expression(getattr(task_spec, "postscript", None), "exec", "postScript")
    if isinstance(task_spec, MultiChoice):
        for condition, _target in task_spec.cond_task_specs:
            if condition is not None:
                expression(condition.args[0], "eval", "condition")
    if isinstance(task_spec, ConnectorServiceTask):
        if task_spec.operation_name not in connectors:
            found.append({"location": where, "message": f"no connector named {task_spec.operation_name!r}"})
        for name, param in task_spec.operation_params.items():
            expression(param.get("value"), "eval", f"parameter {name}")
    if isinstance(task_spec, CatchingEvent) and isinstance(task_spec.event_definition, TimerEventDefinition):
        found.extend(_lint_timer(task_spec.event_definition.expression, where, check))
    return found


def _lint_timer(text: str, where: str, check: ExpressionCheck) -> list[Problem]:
    """A quoted literal must parse as ISO 8601; anything else must be a valid expression."""
    source = (text or "").strip()
    if len(source) >= 2 and source[0] == source[-1] and source[0] in "'\"":
        literal = source[1:-1]
        try:
            TimerEventDefinition.parse_time_or_duration(literal) if "/" not in literal else (
                TimerEventDefinition.parse_iso_recurring_interval(literal)
            )
        except Exception as exc:
            return [{"location": where, "message": f"timer {literal!r} is not ISO 8601: {exc}"}]
        return []
    if _LOOKS_ISO.match(source):  # bare ISO text is quoted before parsing only when it is valid
        return [
            {
                "location": where,
                "message": f"timer {source!r} looks like an ISO 8601 duration but is not one "
                "(e.g. PT4H, P2D, R3/PT1H, designators in capitals)",
            }
        ]
    error = check(source, "eval")
    return [{"location": where, "message": f"timer expression: {error}"}] if error else []


_LOOKS_ISO = re.compile(r"(?i)^(?:R\d*/)?P(?:T?\d)")  # no credible variable name: PT4X, pt4h, P2DX


def raise_if_problems(problems: list[Problem]) -> None:
    if problems:
        raise InvalidModel(f"the model has {len(problems)} problem(s)", problems)
