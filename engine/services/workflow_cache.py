"""Workflows kept in memory between the steps of an instance, keyed by (instance id, row version).

Loading an instance means deserializing its state, which costs as much as running a step. After a
committed step the in-memory workflow *is* the stored state at the new row version, so the next
step on this node can take it instead. The database stays the only truth: a workflow is used only
when the locked row still has the version it was saved at, it is taken out while a step runs (no
one else can see it half-changed), and it is put back only after the commit succeeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow


class WorkflowCache:
    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, instance_id: str, version: int) -> BpmnWorkflow | None:
        with self._lock:
            item = self._items.pop(instance_id, None)
        if item is None or item[0] != version:
            return None
        return item[1]

    def put(self, instance_id: str, version: int, workflow: BpmnWorkflow) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[instance_id] = (version, workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
