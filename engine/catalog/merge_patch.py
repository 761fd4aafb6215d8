"""JSON Merge Patch (RFC 7396): how a bank's local product is stored as changes to a template."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to a copy of ``target``: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def leaves(document: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, value) where the value is not an object; lists count as values, as in a merge patch."""
    if isinstance(document, dict) and document:
        for key, value in document.items():
            yield from leaves(value, (*prefix, key))
    else:
        yield prefix, document


def value_at(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)
