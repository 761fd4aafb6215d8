"""The rule templates in ``product_configs/rules/``, each read again only when its file changes.

Every publish reads each bound rule for its placeholders, its input schema (the product's choices
are checked against it) and fills in its parameters; the access rule's file is some 380 KB of JSON,
and parsing it for each of the 95 standard products took a tenth of ``catalog load``. Applications
are checked against the decisions their product version froze (``Binding.rule_inputs``), not these.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.rules.jdm import input_schema
from engine.rules.parameters import placeholders


@dataclass(frozen=True)
class RuleTemplate:
    content: dict[str, Any]  # shared: read it, never change it (apply_parameters makes a copy)
    placeholders: frozenset[str]
    input_schema: dict[str, Any] | None  # None: the rule has none (the rule lint says why)


class RuleTemplates:
    def __init__(self, rules_dir: Path) -> None:
        self.rules_dir = rules_dir
        self._read: dict[str, tuple[int, RuleTemplate]] = {}  # rule -> (file mtime, template)
        self._lock = threading.Lock()

    def get(self, rule: str) -> RuleTemplate:
        """The rule's template; FileNotFoundError when there is no such rule."""
        path = self.rules_dir / f"{rule}.json"
        changed = path.stat().st_mtime_ns
        with self._lock:
            cached = self._read.get(rule)
        if cached is not None and cached[0] == changed:
            return cached[1]
        content = json.loads(path.read_text(encoding="utf-8"))
        try:
            schema: dict[str, Any] | None = input_schema(content)
        except ValueError:
            schema = None
        template = RuleTemplate(content, frozenset(placeholders(content)), schema)
        with self._lock:
            self._read[rule] = (changed, template)
        return template
