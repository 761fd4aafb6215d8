"""Which context fields a zen expression reads, so the lint can check them against the data dictionary.

zen compiles ``> agee`` happily and the row then never matches; the names must be checked by us. This
is a tokenizer over expressions that already compiled, not a parser: it needs only to tell a field
read (``age``, ``applicant.age`` → ``applicant``) from a member access (``#.level``, ``$.score``), a
function name (``len(``), a keyword, a string literal or an object-literal key (``{limit: 1}``).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
      \s+
    | (?P<string>"[^"]*"|'[^']*')       # zen string literals have no escapes
    | (?P<template>`[^`]*`)
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_$\#][A-Za-z0-9_]*)
    | (?P<punct>\.\.|\?\?|\S)
    """,
    re.VERBOSE,
)
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})


def referenced_names(expression: str) -> set[str]:
    """Root names read from the context; ``$`` (current value / node output) and ``#`` (closure item) excluded."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expression) if m.lastgroup]
    names: set[str] = set()
    brackets: list[str] = []
    for index, (kind, text) in enumerate(tokens):
        if kind == "template":
            for part in _INTERPOLATION.findall(text):
                names |= referenced_names(part)
        elif kind == "punct":
            if text in "([{":
                brackets.append(text)
            elif text in ")]}" and brackets:
                brackets.pop()
        elif kind == "name" and _is_read(tokens, index, brackets):
            names.add(text)
    return names


def _is_read(tokens: list[tuple[str | None, str]], index: int, brackets: list[str]) -> bool:
    text = tokens[index][1]
    before = tokens[index - 1][1] if index else ""
    after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
    object_key = after == ":" and before in ("{", ",") and brackets[-1:] == ["{"]
    return not (text in _KEYWORDS or text[0] in "$#" or before == "." or after == "(" or object_key)
