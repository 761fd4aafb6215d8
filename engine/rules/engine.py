"""Evaluating JDM decisions (access rules, scorecards, pricing) with one shared zen-engine.

Decisions are compiled once, at ``register``, into ``zen.ZenDecisionContent`` and handed to zen by a
loader that only looks them up. The alternatives measured in research/rules.md §3 are 2-50x slower:
a loader returning a dict or str recompiles on every call (~17 ms for 1,000 rows), and
``ZenDecision.evaluate`` builds a tokio runtime per call (multi-ms p99).

zen's engine and compiled decisions are Send + Sync, and its loader runs under the GIL, so one
``RuleEngine`` serves every thread of a process; ``register`` only adds entries, under a lock.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zen

from engine.rules.context import to_zen_context
from engine.rules.errors import RuleConflictError, RuleDefinitionError, RuleEvaluationError
from engine.rules.jdm import input_schema

_MISSING = re.compile(r'^(?:/(?P<path>[^:]*))?: "(?P<name>[^"]+)" is a required property')
_INVALID = re.compile(r"^/(?P<path>[^:]*): (?P<reason>.+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """A decision's output, its matched access rules (``id``, ``level``, ``action``, ``reason``) and wall time."""

    result: dict[str, Any]
    hits: list[dict[str, Any]]
    elapsed_ms: float


class RuleEngine:
    """Registry of immutable decision versions (``xed_access@3f2a…``) evaluated by key."""

    def __init__(self) -> None:
        self._compiled: dict[str, zen.ZenDecisionContent] = {}
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()
        self._zen = zen.ZenEngine({"loader": self._compiled.__getitem__})

    def register(self, key: str, content: dict[str, Any]) -> None:
        """Compile and store ``content``; the same content again is a no-op, different content raises."""
        try:
            text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise RuleDefinitionError(f"{key}: the decision is not JSON: {exc}") from None
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self._check_new(key, digest):
            compiled = self._compile(key, content, text)
            with self._lock:
                if self._check_new(key, digest):
                    self._compiled[key] = compiled
                    self._digests[key] = digest

    def __contains__(self, key: object) -> bool:
        return key in self._compiled

    def keys(self) -> list[str]:
        return list(self._compiled)

    def evaluate(self, key: str, context: Mapping[str, Any]) -> RuleResult:
        """Run decision ``key``; RuleEvaluationError (naming the field where there is one) on any failure."""
        started = time.perf_counter()
        if key not in self._compiled:
            raise RuleEvaluationError(f"no rule decision is registered under {key!r}")
        plain = to_zen_context(context)
        try:
            response = self._zen.evaluate(key, plain)
        except Exception as exc:  # zen raises RuntimeError, TypeError or a bare Exception
            raise _evaluation_error(key, exc) from exc
        result = response["result"]
        return RuleResult(result, _hits(result), (time.perf_counter() - started) * 1000)

    def _check_new(self, key: str, digest: str) -> bool:
        known = self._digests.get(key)
        if known is not None and known != digest:
            raise RuleConflictError(f"{key} is already registered with different content; publish a new version key")
        return known is None

    def _compile(self, key: str, content: dict[str, Any], text: str) -> zen.ZenDecisionContent:
        try:
            input_schema(content)
            compiled = zen.ZenDecisionContent(text)
            self._zen.create_decision(compiled).validate()  # cycles, dangling edges, input/output count
        except Exception as exc:  # ValueError from input_schema; zen's own errors are bare/RuntimeError
            raise RuleDefinitionError(f"{key}: {_first_line(exc)}") from exc
        return compiled


def _hits(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The decision's own ``hits`` list, not a copy: access decisions emit exactly id, level, action, reason."""
    hits = result.get("hits")
    return hits if isinstance(hits, list) else []


def _evaluation_error(key: str, exc: Exception) -> RuleEvaluationError:
    """zen's message is a JSON line (then a Rust backtrace when RUST_BACKTRACE is set); name the field."""
    line = _first_line(exc)
    try:
        info = json.loads(line)
    except ValueError:
        return RuleEvaluationError(f"{key}: {line}")
    source = info.get("source") if isinstance(info, dict) else None
    if not isinstance(source, str):
        return RuleEvaluationError(f"{key}: {line}")
    if missing := _MISSING.match(source):
        field = ".".join(filter(None, [*(missing["path"] or "").split("/"), missing["name"]]))
        return RuleEvaluationError(f"{key}: required input field {field!r} is missing", field=field)
    if invalid := _INVALID.match(source):
        field = invalid["path"].replace("/", ".")
        return RuleEvaluationError(f"{key}: input field {field!r} is invalid: {invalid['reason']}", field=field)
    return RuleEvaluationError(f"{key}: node {info.get('nodeId')!r} failed: {source}")


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0]
