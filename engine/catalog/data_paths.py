"""The data an archetype's applications carry by the time they reach the signing step.

A contract template may only use fields the application can fill; publishing checks each tag
against these dotted paths (``applicant.name``, ``pricing.rate_bp``, ``guarantee.guarantee_no``).
They come from the archetype manifest (start data, messages, decision and connector outputs),
the forms the product binds to its user tasks, and the variables the model's scripts assign.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from engine.runtime.xml_safety import parse_xml

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_ASSIGNED = re.compile(r"^([A-Za-z_]\w*)\s*=(?!=)", re.MULTILINE)


def schema_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every property path of a JSON Schema object, nested objects included."""
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        yield path
        if isinstance(sub, Mapping) and sub.get("type") == "object":
            yield from schema_paths(sub, f"{path}.")


def script_variables(bpmn_xml: bytes) -> set[str]:
    """Top-level names the model's scripts (script tasks, pre- and post-scripts) assign."""
    root = parse_xml(bpmn_xml, "archetype model")
    scripts = root.iterfind(f".//{{{BPMN}}}script")
    extras = [e for tag in ("preScript", "postScript") for e in root.iterfind(f".//{{{SPIFF}}}{tag}")]
    return {m for e in (*scripts, *extras) for m in _ASSIGNED.findall(e.text or "")}


def archetype_data_paths(
    manifest: Mapping[str, Any],
    key: str,
    config: Mapping[str, Any],
    form_schema: Callable[[str], Mapping[str, Any]],
    bpmn_xml: bytes,
) -> set[str]:
    """What an application of product ``config`` (on archetype ``key``) may carry at signing."""
    entry = next(a for a in manifest["archetypes"] if a["key"] == key)
    conventions = manifest["conventions"]
    paths = set(schema_paths(entry["start_data"]))
    paths |= set(config.get("data_dictionary") or {})
    for message in entry["messages"]:
        paths.add(message["variable"])
        paths |= {f"{message['variable']}.{p}" for p in schema_paths(message["payload"]["schema"])}
    outputs = conventions["decision_slots"]["outputs"]
    for slot in entry["decision_slots"]:
        paths.add(slot["slot"])
        paths |= {f"{slot['slot']}.{o}" for o in outputs.get(slot["slot"], {})}
    for connector in entry["connectors"]:
        variable = connector["result_variable"]
        paths.add(variable)
        paths |= {f"{variable}.{r}" for r in conventions["connectors"][connector["connector"]].get("result", {})}
    bound = (config.get("bindings") or {}).get("forms") or {}
    for task in entry["user_tasks"]:
        paths |= set(schema_paths(form_schema(bound.get(task["id"], task["form"]))))
    return paths | script_variables(bpmn_xml)
