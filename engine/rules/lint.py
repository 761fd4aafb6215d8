"""Publish-time lint of a JDM decision, reporting every problem at once.

zen loads content that then fails open: a cell with a syntax error or a misspelt field simply never
matches, and a missing input is "no hit" (research/rules.md §3). So a decision is published only when
this returns no problems. It walks the JDM graph (nodes and edges), not the JSON text:

* every decision-table cell compiles (``compile_unary_expression`` for cells of a column with a
  ``field``, ``compile_expression`` otherwise, for output cells, expressions and switch conditions);
  ``validate_unary_expression`` is not used because zen 2.1.3 rejects valid cells such as ``< 18``;
* every name read is in the data dictionary or produced by an upstream node;
* the input node has a JSON Schema whose ``required`` covers every dictionary field read, typed as the
  dictionary says, so a missing or ill-typed value fails instead of silently not matching;
* no function, custom or sub-decision nodes (no code, no loading by key) and no unknown node types.

Each problem is ``{"location": "<node name>/<rule id or row index>/<column>", "message": ...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import zen

from engine.rules.expressions import referenced_names
from engine.rules.jdm import input_schema
from engine.rules.parameters import PLACEHOLDER

Problem = dict[str, str]

_EVALUATED = frozenset({"inputNode", "outputNode", "decisionTableNode", "expressionNode", "switchNode"})
_REFUSED = {
    "functionNode": "function nodes run JavaScript; bank-authored decisions may not contain code",
    "customNode": "custom nodes run host code; bank-authored decisions may not contain code",
    "decisionNode": "sub-decision nodes load other decisions by key; chain decisions in the process instead",
}


def lint_decision(content: dict[str, Any], data_dictionary: Mapping[str, str]) -> list[Problem]:
    """Every problem of ``content`` against ``data_dictionary`` (``{"age": "integer", ...}``); [] means publishable."""
    nodes = content.get("nodes") if isinstance(content, Mapping) else None
    if not isinstance(nodes, list) or not all(isinstance(n, Mapping) and isinstance(n.get("id"), str) for n in nodes):
        return [{"location": "decision", "message": "a decision is an object with a list of nodes, each with an id"}]
    return _Linter(content, nodes, data_dictionary).run()


class _Linter:
    def __init__(self, content: Mapping[str, Any], nodes: list[Mapping[str, Any]], dictionary: Mapping[str, str]):
        self.content = content
        self.node_list = nodes
        self.nodes = {node["id"]: node for node in nodes}
        self.dictionary = dictionary
        self.problems: list[Problem] = []
        self.reads: set[str] = set()  # dictionary fields some rule reads
        self.parents: dict[str, set[str]] = {node_id: set() for node_id in self.nodes}

    def run(self) -> list[Problem]:
        self._edges()
        for node in self.node_list:  # not self.nodes: a node hiding behind a duplicate id is still checked
            if self.nodes[node["id"]] is not node:
                self.add(str(node.get("name") or node["id"]), f"node id {node['id']!r} is used twice")
            self._node(node)
        self._schema()
        return self.problems

    def add(self, location: str, message: str) -> None:
        self.problems.append({"location": location, "message": message})

    def _items(self, body: Mapping[str, Any], key: str, name: str) -> list[Mapping[str, Any]]:
        items = body.get(key)
        if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
            self.add(f"{name}/{key}", f"{key} must be a list of objects")
            return []
        return items

    def _edges(self) -> None:
        edges = self.content.get("edges", [])
        for index, edge in enumerate(edges if isinstance(edges, list) else []):
            source, target = (edge.get("sourceId"), edge.get("targetId")) if isinstance(edge, Mapping) else (None, None)
            if source in self.nodes and target in self.nodes:
                self.parents[target].add(source)
            else:
                edge_id = edge.get("id", index) if isinstance(edge, Mapping) else index
                self.add(f"edges/{edge_id}", "the edge does not connect two nodes of this decision")

    def _node(self, node: Mapping[str, Any]) -> None:
        name, kind = str(node.get("name") or node["id"]), node.get("type")
        if kind in _REFUSED:
            self.add(name, _REFUSED[kind])
            return
        if kind not in _EVALUATED:
            self.add(name, f"unknown node type {kind!r}")
            return
        body = node.get("content", {})
        if not isinstance(body, Mapping):
            self.add(name, "the node content must be an object")
            return
        if body.get("inputField"):
            self.add(name, "inputField (loop over a sub-list) is not supported: its fields cannot be checked")
        known = set(self.dictionary) | self._upstream_names(node["id"])
        if kind == "decisionTableNode":
            self._table(name, body, known)
        elif kind == "expressionNode":
            for index, item in enumerate(self._items(body, "expressions", name)):
                self._expression(f"{name}/{item.get('key', index)}/value", item.get("value"), known, unary=False)
        elif kind == "switchNode":
            for index, item in enumerate(self._items(body, "statements", name)):
                if item.get("condition"):
                    self._expression(f"{name}/{index}/condition", item["condition"], known, unary=False)

    def _table(self, name: str, body: Mapping[str, Any], known: set[str]) -> None:
        if body.get("hitPolicy") not in ("first", "collect"):
            self.add(f"{name}/hitPolicy", f"hit policy must be 'first' or 'collect', not {body.get('hitPolicy')!r}")
        inputs = self._items(body, "inputs", name)
        outputs = self._items(body, "outputs", name)
        for column in inputs:
            field = column.get("field")
            if field:
                self._read(f"{name}/inputs/{column.get('name')}", _root(str(field)), known)
        for index, rule in enumerate(self._items(body, "rules", name)):
            row = f"{name}/{rule.get('_id') or index}"
            for column in inputs:
                cell = rule.get(column.get("id"), "")
                if not isinstance(cell, str) or cell.strip():
                    self._expression(f"{row}/{column.get('name')}", cell, known, unary=bool(column.get("field")))
            for column in outputs:
                self._expression(f"{row}/{column.get('name')}", rule.get(column.get("id")), known, unary=False)

    def _expression(self, location: str, text: Any, known: set[str], *, unary: bool) -> None:
        if not isinstance(text, str) or not text.strip():
            self.add(location, "expected a non-empty expression string")
            return
        try:
            (zen.compile_unary_expression if unary else zen.compile_expression)(text)
        except Exception as exc:  # zen raises RuntimeError with a JSON description
            if PLACEHOLDER.search(text):
                self.add(location, f"unfilled parameter placeholder in {text!r}; apply the bank's parameters first")
            else:
                self.add(location, f"{text!r} does not compile: {_zen_message(exc)}")
            return
        for field in sorted(referenced_names(text)):
            self._read(location, field, known)

    def _read(self, location: str, field: str, known: set[str]) -> None:
        if field not in known:
            self.add(location, f"reads {field!r}, which is neither in the data dictionary nor produced upstream")
        elif field in self.dictionary:
            self.reads.add(field)

    def _upstream_names(self, node_id: str) -> set[str]:
        """Names written by the nodes this one runs after (table outputs, expression keys, outputPath)."""
        names: set[str] = set()
        seen: set[str] = set()
        pending = list(self.parents[node_id])
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            pending.extend(self.parents[current])
            body = self.nodes[current].get("content")
            if isinstance(body, Mapping):
                names |= _produced(self.nodes[current].get("type"), body)
        return names

    def _schema(self) -> None:
        location = next(
            (str(n.get("name") or n["id"]) for n in self.nodes.values() if n.get("type") == "inputNode"), "decision"
        )
        try:
            schema = input_schema(self.content)
        except ValueError as exc:
            self.add(location, str(exc))
            return
        required = _required(schema)
        properties = schema.get("properties")
        for field in sorted(self.reads):
            declared = properties.get(field) if isinstance(properties, Mapping) else None
            declared = declared.get("type") if isinstance(declared, Mapping) else None
            if field not in required:
                self.add(
                    f"{location}/schema/{field}", "read by a rule but not required: a missing value would not match"
                )
            elif declared != self.dictionary[field]:
                self.add(
                    f"{location}/schema/{field}",
                    f"typed {declared!r}, the data dictionary says {self.dictionary[field]!r}",
                )


def _required(schema: Mapping[str, Any]) -> set[str]:
    """Top-level ``required`` plus ``allOf: [{"if": …, "then": {"required": […]}}]`` (fields of one segment)."""
    names = list(schema["required"])
    branches = schema.get("allOf")
    for branch in branches if isinstance(branches, list) else []:
        then = branch.get("then") if isinstance(branch, Mapping) else None
        if isinstance(then, Mapping) and isinstance(then.get("required"), list):
            names.extend(then["required"])
    return {name for name in names if isinstance(name, str)}


def _produced(kind: Any, body: Mapping[str, Any]) -> set[str]:
    if body.get("outputPath"):
        return {_root(str(body["outputPath"]))}
    if kind == "decisionTableNode":
        return {_root(str(column.get("field"))) for column in body.get("outputs", []) if isinstance(column, Mapping)}
    if kind == "expressionNode":
        return {_root(str(item.get("key"))) for item in body.get("expressions", []) if isinstance(item, Mapping)}
    return set()


def _root(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _zen_message(exc: Exception) -> str:
    line = str(exc).split("\n", 1)[0]
    try:
        info = json.loads(line)
    except ValueError:
        return line
    return str(info.get("source", line)) if isinstance(info, dict) else line
