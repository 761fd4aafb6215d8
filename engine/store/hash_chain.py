"""Hash chains: what makes an append-only trail tamper-evident (an instance's audit trail, the catalog's changes).

Each record's hash covers the previous record's hash and the record's canonical JSON, and a head
kept elsewhere names the newest record. Editing a record breaks its hash, deleting one breaks the
links, and cutting off the newest ones no longer matches the head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of a chain's first record


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON value hashes as: sorted keys, no spaces, UTF-8 text (not escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(prev_hash: str, body: Any) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class Link:
    """A stored record as the chain sees it: its place, its links, and the hash its content gives now."""

    seq: int
    prev_hash: str
    hash: str
    recomputed: str
    label: str  # what the record is, for a problem: "task_completed"


def chain_problems(
    links: Iterable[Link], head_seq: int, head_hash: str, noun: str, keeper: str
) -> tuple[int, list[str]]:
    """Walk the links from the first (in ``seq`` order) against the head; returns (records, problems).

    ``noun`` names a record ("event") and ``keeper`` what holds the head ("the instance recorded").
    """
    problems: list[str] = []
    head, expected_seq, count = GENESIS, 1, 0
    for link in links:
        count += 1
        if link.seq != expected_seq:
            problems.append(f"{noun} {expected_seq} is missing (next stored {noun} is {link.seq})")
        if link.prev_hash != head:
            problems.append(f"{noun} {link.seq} does not link to the {noun} before it")
        if link.recomputed != link.hash:
            problems.append(f"{noun} {link.seq} ({link.label}) was altered")
        head, expected_seq = link.hash, link.seq + 1
    if expected_seq - 1 != head_seq or head != head_hash:
        problems.append(f"the trail ends at {noun} {expected_seq - 1} but {keeper} {noun} {head_seq}")
    return count, problems
