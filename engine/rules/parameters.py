"""Writing a bank's parameter values into a rule template as literals, at publish time.

Templates carry ``{{param_name}}`` where an expression expects a value (``> {{max_age}}``,
``{{base_rate_bp}}``, ``!= {{home_province}}``). Reading ``params.max_age`` at run time works too but is
~3x slower than a literal (research/rules.md §3), so each bank's published version gets literals.
A placeholder stands for a whole value, never for part of a string literal or of a reason text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.rules.errors import ParameterError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(content: Any) -> set[str]:
    """Names of every ``{{name}}`` in ``content``, a JSON document.

    Read off its JSON text: walking the access rule's 380 KB in Python took 9 ms a time, and every
    publish reads each bound rule twice."""
    return set(PLACEHOLDER.findall(_text(content)))


def apply_parameters(content: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``content`` with every placeholder replaced by its value as a zen literal.

    Raises ParameterError listing every placeholder without a value, every parameter no placeholder
    uses and every value that has no literal form, all at once.
    """
    wanted = placeholders(content)
    problems = [
        {"field": name, "message": "no value given for this placeholder"} for name in sorted(wanted - set(params))
    ]
    problems += [
        {"field": name, "message": "unknown parameter: no placeholder uses it"} for name in sorted(set(params) - wanted)
    ]
    literals: dict[str, str] = {}
    for name in sorted(wanted & set(params)):
        try:
            literals[name] = literal(params[name])
        except ValueError as exc:
            problems.append({"field": name, "message": str(exc)})
    if problems:
        raise ParameterError(f"{len(problems)} rule parameter problem(s)", problems)
    # a literal goes inside a JSON string: its quotes are escaped there, and come back on loading
    escaped = {name: json.dumps(value, ensure_ascii=False)[1:-1] for name, value in literals.items()}
    return json.loads(PLACEHOLDER.sub(lambda match: escaped[match[1]], _text(content)))


def literal(value: Any) -> str:
    """``value`` as zen expression source: numbers as numbers, strings quoted, lists of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise ValueError(f"{value} is not a finite number")
        return format(number, "f")  # plain digits: never 1E+2
    if isinstance(value, str):
        if '"' not in value:  # zen string literals have no escapes: use a quote the text lacks
            return f'"{value}"'
        if "'" not in value:
            return f"'{value}'"
        raise ValueError("a text value cannot contain both ' and \"")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise ValueError(f"{type(value).__name__} values have no rule literal")


def _text(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False)
