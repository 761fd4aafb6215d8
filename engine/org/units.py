"""Org-unit paths: each unit keeps the ids from its root ("/3/7/12/"), so a subtree is a prefix."""

from __future__ import annotations


def unit_path(parent_path: str | None, unit_id: int) -> str:
    return f"{parent_path or '/'}{unit_id}/"


def unit_ids(path: str) -> list[int]:
    """The ids on a unit's path, root first."""
    return [int(part) for part in path.strip("/").split("/") if part]
