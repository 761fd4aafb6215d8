"""Renewing an archive's timestamp before its TSA certificate expires (the idea of RFC 4998 evidence records).

A timestamp proves that the tag manifest existed at a time, but only while the TSA's certificate can be
checked: once it has expired, ``openssl ts -verify`` refuses the token, and with it the whole loan file.
Loan files are kept for 30 years and TSA certificates last a few. So before the newest token's certificate
expires, the archive takes a new token over a manifest of all the evidence so far: the tag manifest, the
seal, and every earlier token and renewal manifest. Each older token is then checked as of the time of the
next one, which proves it existed while its certificate was still valid.

A renewal appends files under ``timestamp-renewals/`` to the zip. It never changes the bag's earlier bytes,
and the tag manifest does not list these files (BagIt allows that for tag files).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date

from engine.archive.bag import RENEWALS_DIR, SIGNATURE, TAG_MANIFEST, TIMESTAMP, sha256_manifest, write_entries

RENEWALS_README = f"{RENEWALS_DIR}/README.txt"

# The auditor's check, run with bash inside the bag folder: every line must say OK.
CMD_RENEWALS = (
    "data=tagmanifest-sha256.txt; token=tagmanifest-sha256.txt.tsr\n"
    "for next in timestamp-renewals/*-manifest-sha256.txt; do\n"
    '  sha256sum -c "$next"\n'
    '  at=$(date -d "$(openssl ts -reply -in "$next.tsr" -text | sed -n \'s/^Time stamp: //p\')" +%s)\n'
    '  openssl ts -verify -data "$data" -in "$token" -CAfile ca.pem -attime "$at"\n'
    "  data=$next; token=$next.tsr\n"
    "done\n"
    'openssl ts -verify -data "$data" -in "$token" -CAfile ca.pem'
)


@dataclass(frozen=True)
class Link:
    """One timestamp of the chain: ``token`` is an RFC 3161 reply over the file ``data``."""

    data: str
    token: str


def renewal_manifest(number: int) -> str:
    return f"{RENEWALS_DIR}/{number:04d}-manifest-sha256.txt"


def evidence_chain(paths: Collection[str]) -> list[Link]:
    """The original timestamp, then renewals 1, 2, … for as long as they follow without a gap."""
    chain = [Link(TAG_MANIFEST, TIMESTAMP)]
    while renewal_manifest(len(chain)) in paths:
        manifest = renewal_manifest(len(chain))
        chain.append(Link(manifest, f"{manifest}.tsr"))
    return chain


def covered_paths(earlier: list[Link]) -> list[str]:
    """What a renewal's manifest lists: the tag manifest, the seal and every earlier link's two files."""
    return sorted({SIGNATURE, *(path for link in earlier for path in (link.data, link.token))})


def renew_bag(zip_bytes: bytes, timestamp: Callable[[bytes], bytes], day: date) -> bytes:
    """The bag with one more renewal appended: a manifest of the evidence so far, and a token over it.

    ``timestamp`` turns data into a DER RFC 3161 reply over its SHA-256 (the platform's TSA). The caller
    checks the bag before (a renewal must not extend evidence that no longer holds) and after.
    """
    buffer = io.BytesIO(zip_bytes)
    with zipfile.ZipFile(buffer) as archive:
        names = [entry.filename for entry in archive.infolist() if not entry.is_dir()]
        bag_name = names[0].split("/", 1)[0]
        paths = {name.split("/", 1)[1] for name in names}
        chain = evidence_chain(paths)
        wanted = covered_paths(chain)
        if not set(wanted) <= paths:
            raise ValueError(f"the bag lacks evidence to renew: {', '.join(sorted(set(wanted) - paths))}")
        manifest = sha256_manifest({path: archive.read(f"{bag_name}/{path}") for path in wanted})
    path = renewal_manifest(len(chain))
    added = {path: manifest, f"{path}.tsr": timestamp(manifest)}
    if RENEWALS_README not in paths:
        added[RENEWALS_README] = renewals_readme().encode()
    with zipfile.ZipFile(buffer, "a") as archive:
        write_entries(archive, bag_name, added, day)
    return buffer.getvalue()


def renewals_readme() -> str:
    """What the folder is and how to check it with standard tools (Chinese + English)."""
    return f"""时间戳续期 Timestamp renewals

时间戳服务（TSA）证书到期后，原时间戳（tagmanifest-sha256.txt.tsr）将无法再验证。为在保管期内持续证明
档案的形成时间，本行在证书到期前对既有证据加盖新的时间戳：NNNN-manifest-sha256.txt 列出当时的全部证据
（标签清单、电子印章、此前各时间戳及续期清单）的 SHA-256，NNNN-manifest-sha256.txt.tsr 为其时间戳。
每个较早的时间戳均按下一个时间戳的时间验证，最新的时间戳按当前时间验证。

A timestamp can no longer be verified once its TSA certificate has expired. Before that happens the
bank time-stamps the evidence again: NNNN-manifest-sha256.txt lists the SHA-256 of all the evidence at
that time (the tag manifest, the seal, every earlier token and renewal manifest), and
NNNN-manifest-sha256.txt.tsr is a timestamp over it. Each older timestamp is checked as of the next
one's time; the newest is checked as of now.

请在档案根目录（本目录的上一级）中使用 bash 执行，每行均应显示 OK：
Run in bash in the bag's folder (the parent of this one); every line must say OK:

{CMD_RENEWALS}

这些检查取代原说明第 3 步（按当前时间验证原时间戳）；第 4 步（电子印章）不变。
They replace step 3 of README.txt (the original timestamp checked as of now); step 4 (the seal) stands.
"""
