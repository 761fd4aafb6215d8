"""Apply a bank's electronic seal to a contract PDF: a PAdES certification signature with a visible red stamp.

The signature is a PAdES baseline signature (sha256) with an RFC 3161 signature timestamp, certifying the
document with DocMDP "fill forms" so a borrower may still sign later while any other change shows up as a
modification. The stamp is image-only (no fonts enter the PDF), centred over the anchor text in the
signature block, like a wet seal pressed over "贷款人（盖章）".
"""

from __future__ import annotations

import html
import logging
import re
import subprocess
import threading
import unicodedata
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import NamedTuple

from asn1crypto import cms
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import VENDOR
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, Signer, SimpleSigner, constants
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext

from engine.documents.pki import Pki
from engine.documents.seal_image import seal_png
from engine.errors import InvalidInput

FIELD_NAME = "BankSeal"
DEFAULT_ANCHOR = "贷款人（盖章）"
SEAL_POINTS = 120  # ≈42 mm, the size of a real company seal
_MARGIN_POINTS = 56  # default placement: bottom right of the last page, inside a ~2 cm margin
# The contract templates put a Word bookmark of this name on the anchor and the converter exports
# bookmarks as named destinations: the seal's place is read from the PDF's catalog in microseconds,
# where extracting the text of a CJK page takes poppler ~0.1 s (most of a seal's time).
ANCHOR_BOOKMARK = "CreditFlowSeal"
_ANCHOR_FONT_POINTS = 12  # the templates' body size (小四): estimates the anchor's width from its length
_OFFLINE_NOTICE = "fetching is not allowed"
_LINE = re.compile(r"<line [^>]*>(.*?)</line>", re.S)
_WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


class _DropOfflineNotice(logging.Filter):
    """pyHanko warns on every seal that revocation data will not be fetched; offline is our configured choice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _OFFLINE_NOTICE not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_DropOfflineNotice())


class SealingError(InvalidInput):
    """The document cannot be sealed (not a PDF, already signed, encrypted)."""

    title = "Cannot seal document"


@dataclass(frozen=True)
class SealResult:
    """The sealed PDF and where the seal went; ``anchor_found`` is False when the default position was used."""

    pdf: bytes
    signed_at: datetime  # the TSA's time, the one a verifier trusts
    signer_subject: str
    field_name: str
    page: int  # 1-based
    box: tuple[int, int, int, int]  # PDF user space, points, origin bottom left
    anchor_found: bool


class _Hit(NamedTuple):
    page_index: int
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class _Placement:
    page_index: int
    box: tuple[int, int, int, int]
    anchor_found: bool


class Sealer:
    """Seals PDFs for any bank of the PKI; safe to share between web threads.

    Signing state (writer, PdfSigner, stamp image) is per call; the cached signers and the timestamper are
    shared. A PKCS#11 session allows one operation at a time, so non-local signers are serialised per bank.
    """

    def __init__(self, pki: Pki, timestamper: TimeStamper) -> None:
        self._pki = pki
        self._timestamper = timestamper
        self._token_locks: dict[str, threading.Lock] = {}

    def seal(
        self,
        pdf: bytes,
        *,
        bank_code: str,
        bank_name: str,
        anchor: str = DEFAULT_ANCHOR,
        reason: str = "贷款人确认合同内容并加盖电子合同专用章",
        location: str | None = None,
    ) -> SealResult:
        signer = self._pki.seal_signer(bank_code)
        try:
            writer = _PdfAWriter(BytesIO(pdf))
            if writer.prev.encrypted:
                raise SealingError("encrypted PDFs are not sealed")
            if writer.prev.embedded_signatures:
                raise SealingError("the document is already signed; the bank's seal must certify it first")
            placement = _place(pdf, writer.prev, anchor)
        except (PdfError, ValueError) as exc:
            raise SealingError(f"not a readable PDF: {exc}") from exc
        metadata = PdfSignatureMetadata(
            field_name=FIELD_NAME,
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            certify=True,
            docmdp_permissions=MDPPerm.FILL_FORMS,
            reason=reason,
            location=location,
            # B-LT: the certificates and CRL of the seal and of the timestamp go into the DSS, so the file
            # verifies on its own years later; pyHanko validates the seal's chain before it signs.
            embed_validation_info=True,
            validation_context=ValidationContext(
                trust_roots=self._pki.trust_roots,
                crls=[self._pki.crl_der],
                allow_fetching=self._pki.config.fetch_revocation,
            ),
        )
        image = Image.open(BytesIO(seal_png(bank_name)))
        # 0.85 opacity lets the text under the seal show through like red ink (needs PDF/A-2 or later)
        style = StaticStampStyle(background=PdfImage(image), border_width=0, background_opacity=0.85)
        pdf_signer = _Pdf17Signer(
            metadata,
            signer=signer,
            timestamper=self._timestamper,
            stamp_style=style,
            new_field_spec=SigFieldSpec(FIELD_NAME, on_page=placement.page_index, box=placement.box),
        )
        output = BytesIO()
        with self._serialised(bank_code, signer):
            pdf_signer.sign_pdf(writer, output=output)
        signed_cms = _last_signature(output)
        return SealResult(
            pdf=output.getvalue(),
            signed_at=_timestamp_time(signed_cms),
            signer_subject=signer.signing_cert.subject.human_friendly,
            field_name=FIELD_NAME,
            page=placement.page_index + 1,
            box=placement.box,
            anchor_found=placement.anchor_found,
        )

    def _serialised(self, bank_code: str, signer: Signer) -> AbstractContextManager[object]:
        if isinstance(signer, SimpleSigner):
            return nullcontext()
        return self._token_locks.setdefault(bank_code, threading.Lock())  # setdefault is atomic, [] is not


def _last_signature(output: BytesIO) -> cms.ContentInfo:
    reader = PdfFileReader(output)
    return cms.ContentInfo.load(reader.embedded_signatures[-1].pkcs7_content)


def _timestamp_time(signed_cms: cms.ContentInfo) -> datetime:
    for attribute in signed_cms["content"]["signer_infos"][0]["unsigned_attrs"]:
        if attribute["type"].native == "signature_time_stamp_token":
            token = attribute["values"][0]
            return token["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    raise SealingError("the timestamp authority's token is missing from the signature")


# ---------------------------------------------------------------------------------------------- placement


def _place(pdf: bytes, reader: PdfFileReader, anchor: str) -> _Placement:
    """Centre the seal on the anchor's last occurrence, searching the last page first (where it almost always is)."""
    marked = _bookmarked(reader, anchor)
    if marked is not None:
        return marked
    pages = int(reader.root["/Pages"]["/Count"])
    last = pages - 1
    found = _find_anchor(pdf, anchor, first=last, last=last)
    if found is None and pages > 1:
        found = _find_anchor(pdf, anchor, first=0, last=last - 1)
    page_index = found.page_index if found else last
    x0, y0, x1, y1 = _page_box(reader, page_index)
    if found is None:
        centre_x, centre_y = x1 - _MARGIN_POINTS - SEAL_POINTS / 2, y0 + _MARGIN_POINTS + SEAL_POINTS / 2
    else:
        centre_x, centre_y = x0 + (found.left + found.right) / 2, y1 - (found.top + found.bottom) / 2
    half = SEAL_POINTS / 2
    box = (round(centre_x - half), round(centre_y - half), round(centre_x + half), round(centre_y + half))
    return _Placement(page_index=page_index, box=box, anchor_found=found is not None)


def _bookmarked(reader: PdfFileReader, anchor: str) -> _Placement | None:
    """The seal centred on the anchor's bookmark (an /XYZ destination: the text's left edge and top)."""
    dests = reader.root.get("/Dests")
    target = dests.get_object().get(f"/{ANCHOR_BOOKMARK}") if dests is not None else None
    if target is None or len(target) < 4 or target[1] != "/XYZ":
        return None
    page = target.raw_get(0)
    pages = int(reader.root["/Pages"]["/Count"])
    index = next((i for i in range(pages) if reader.find_page_for_modification(i)[0] == page), None)
    if index is None:
        return None
    centre_x = float(target[2]) + len(anchor) * _ANCHOR_FONT_POINTS / 2
    centre_y = float(target[3]) - _ANCHOR_FONT_POINTS / 2
    half = SEAL_POINTS / 2
    box = (round(centre_x - half), round(centre_y - half), round(centre_x + half), round(centre_y + half))
    return _Placement(page_index=index, box=box, anchor_found=True)


def _page_box(reader: PdfFileReader, page_index: int) -> tuple[float, float, float, float]:
    """The crop box (pdftotext's coordinate frame; it defaults to the media box, both inheritable)."""
    node = reader.find_page_for_modification(page_index)[0].get_object()
    boxes: dict[str, list[float]] = {}
    while node is not None:
        for key in ("/CropBox", "/MediaBox"):
            if key in node and key not in boxes:
                boxes[key] = [float(v) for v in node[key]]
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    x0, y0, x1, y1 = boxes.get("/CropBox") or boxes["/MediaBox"]
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _find_anchor(pdf: bytes, anchor: str, *, first: int, last: int) -> _Hit | None:
    """The anchor's last occurrence on pages first..last (0-based), in pdftotext's top-left-origin frame.

    pdftotext reports words, not characters, and a CJK line is often one word ("贷款人（盖章）：陵源农商银行"),
    so each character's extent is estimated from the word box: full-width characters count double.
    """
    command = ["pdftotext", "-q", "-enc", "UTF-8", "-bbox-layout", "-f", str(first + 1), "-l", str(last + 1), "-", "-"]
    result = subprocess.run(command, input=pdf, capture_output=True, check=False, timeout=30)  # noqa: S603
    xml = result.stdout.decode("utf-8", "replace")
    needle = anchor.replace(" ", "")
    hit = None
    for page_offset, page in enumerate(xml.split("<page ")[1:]):
        for line in _LINE.findall(page):
            chars: list[tuple[str, float, float, float, float]] = []
            for match in _WORD.finditer(line):
                chars += _spread(html.unescape(match.group(5)), *map(float, match.group(1, 2, 3, 4)))
            text = "".join(c[0] for c in chars)
            start = text.rfind(needle)
            if start >= 0:
                span = chars[start : start + len(needle)]
                top, bottom = min(c[2] for c in span), max(c[4] for c in span)
                hit = _Hit(first + page_offset, span[0][1], top, span[-1][3], bottom)
    return hit


def _spread(
    word: str, left: float, top: float, right: float, bottom: float
) -> list[tuple[str, float, float, float, float]]:
    weights = [2.0 if unicodedata.east_asian_width(c) in "WF" else 1.0 for c in word]
    unit = (right - left) / (sum(weights) or 1.0)
    chars, x = [], left
    for char, weight in zip(word, weights, strict=True):
        chars.append((char, x, top, x + weight * unit, bottom))
        x += weight * unit
    return chars


class _PdfAWriter(IncrementalPdfFileWriter):
    """PDF/A wants the Info dictionary and the XMP metadata to agree. pyHanko appends itself to the Info
    producer ("LibreOffice 7.4; pyHanko 0.38.0") but writes only itself into the XMP, so the sealed
    contract names its producer as pyHanko does, in both. (pyHanko is pinned; a test checks the two.)"""

    def _update_meta(self) -> None:
        if self._info is not None:
            info = self._info.get_object()
            if info.get("/Producer") != VENDOR:
                info["/Producer"] = generic.TextStringObject(VENDOR)
                self.mark_update(self._info)
        super()._update_meta()


class _Pdf17Signer(PdfSigner):
    """A PAdES seal that keeps the file PDF 1.7, the base of PDF/A-2. For an ECDSA P-256 key pyHanko
    declares the ISO 32002 extension and makes the file PDF 2.0, which PDF/A-2b does not allow; PAdES
    (ETSI EN 319 142) takes ECDSA on PDF 1.7 with the ESIC extension alone."""

    def register_extensions(self, pdf_out: BasePdfFileWriter, *, md_algorithm: str) -> None:
        pdf_out.ensure_output_version(version=(1, 7))
        pdf_out.register_extension(constants.ESIC_EXTENSION_1)
