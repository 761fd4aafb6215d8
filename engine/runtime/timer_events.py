"""Timer start events of a process spec: what deploy schedules and a manual start refuses."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent


def timer_start_events(spec: Any) -> list[StartEvent]:
    return [
        s
        for s in spec.task_specs.values()
        if isinstance(s, StartEvent) and isinstance(s.event_definition, TimerEventDefinition)
    ]


def starts_on_timer_only(spec: Any) -> bool:
    """Every start event is a timer: started by hand, the instance would wait for its own timer."""
    starts = [s for s in spec.task_specs.values() if isinstance(s, StartEvent)]
    return bool(starts) and all(isinstance(s.event_definition, TimerEventDefinition) for s in starts)
