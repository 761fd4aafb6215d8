"""Reading the parts of a GoRules JSON Decision Model (JDM) that both the engine and the lint rely on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import json_documents


def input_schema(content: Mapping[str, Any]) -> dict[str, Any]:
    """The input node's JSON Schema, parsed.

    zen lets a row silently not match when a field is missing or ill-typed; only a schema with
    ``required`` fields on the input node makes it fail instead. ValueError says why there is none.
    """
    nodes = content.get("nodes")
    inputs = (
        [n for n in nodes if isinstance(n, Mapping) and n.get("type") == "inputNode"] if isinstance(nodes, list) else []
    )
    if len(inputs) != 1:
        raise ValueError(f"a decision needs exactly one input node, found {len(inputs)}")
    node_content = inputs[0].get("content")
    raw = node_content.get("schema") if isinstance(node_content, Mapping) else None
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("the input node has no JSON Schema, so a missing field would silently not match")
    try:
        schema = json_documents.loads(raw)
    except ValueError as exc:
        raise ValueError(f"the input node's JSON Schema is not valid JSON: {exc}") from None
    required = schema.get("required") if isinstance(schema, dict) else None
    if not (isinstance(required, list) and required and all(isinstance(name, str) for name in required)):
        raise ValueError("the input node's JSON Schema lists no required fields, so it cannot fail closed")
    return schema
