"""The BPMN parser CreditFlow runs models through: spiff dialect, our service tasks, safe XML."""

from __future__ import annotations

import re
from typing import ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser

from engine.runtime.decision_task import DecisionTask, DecisionTaskParser
from engine.runtime.service_task import ConnectorServiceTask

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
TIMER_TAGS = tuple(f"{{{BPMN_NS}}}{tag}" for tag in ("timeDuration", "timeDate", "timeCycle"))

# An ISO 8601 duration, date-time or repeating interval written without quotes, e.g. PT4H,
# 2026-12-01T09:00:00+08:00, R3/PT1H. Such text would otherwise be evaluated as Python.
_ISO_PART = r"(?:P[0-9YMWDTHS.,]+|\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)"
_BARE_ISO = re.compile(rf"^(?:R\d*/)?{_ISO_PART}(?:/{_ISO_PART})?$")


class CreditFlowParser(SpiffBpmnParser):
    """SpiffBpmnParser with connector-backed service tasks and rule-engine business-rule tasks.

    The override table is copied, never mutated: the base class dict is shared process-wide.
    """

    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type, type]]] = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ServiceTaskParser, ConnectorServiceTask),
        full_tag("businessRuleTask"): (DecisionTaskParser, DecisionTask),
    }

    def add_bpmn_xml(self, bpmn: etree._Element, filename: str | None = None) -> None:
        quote_bare_timer_literals(bpmn)
        super().add_bpmn_xml(bpmn, filename)


def quote_bare_timer_literals(root: etree._Element) -> None:
    """Accept ``PT4H`` as well as ``"PT4H"``: spiff evaluates timer text as an expression."""
    for element in root.iter(*TIMER_TAGS):
        text = (element.text or "").strip()
        if _BARE_ISO.match(text):
            element.text = f'"{text}"'
