"""DOCX → PDF/A-2b with the real LibreOffice: warm pool, one-shot fallback, CJK fonts, recovery.

One warm converter serves the module (its start is the slow part); the Chinese contract snippet
is built here with python-docx the way contract templates are written: 黑体 title, 宋体 body,
Times New Roman for Latin, East-Asian fonts and zh-CN set on every run.
"""

from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docx import Document
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from docx.text.paragraph import Paragraph
from lxml import etree
from PIL import Image

from engine.documents.pdf import (
    INSTALL_COMMAND,
    ConversionError,
    ConverterUnavailable,
    PdfConverter,
    missing_tools,
    shared_converter,
)

TITLE = "个人借款合同"
AMOUNT = "人民币（大写）叁拾万元整"
TABLE = [
    ("期数", "还款日", "应还金额"),
    ("第1期", "2025年2月20日", "13,074.68"),
    ("第2期", "2025年3月20日", "13,074.68"),
]


def _run(paragraph: Paragraph, text: str, east_asian: str, latin: str, *, bold: bool = False) -> None:
    run = paragraph.add_run(text)
    run.bold = bold
    run.font.name = latin  # python-docx sets only the Latin slots...
    rpr = run._element.get_or_add_rPr()
    rpr.rFonts.set(qn("w:eastAsia"), east_asian)  # ...the Chinese face needs w:eastAsia
    lang = OxmlElement("w:lang")
    lang.set(qn("w:val"), "en-US")
    lang.set(qn("w:eastAsia"), "zh-CN")
    rpr.append(lang)


def _contract_docx() -> bytes:
    document = Document()
    for lang in document.styles.element.iter(qn("w:lang")):
        lang.set(qn("w:eastAsia"), "zh-CN")  # the default template says ja-JP
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    title = document.add_paragraph()
    _run(title, TITLE, "黑体", "Arial", bold=True)
    title.runs[0].font.size = Pt(18)
    body = document.add_paragraph()
    _run(body, f"第一条 借款金额：{AMOUNT}（小写：", "宋体", "Times New Roman")
    _run(body, "RMB 300,000.00", "宋体", "Times New Roman")
    _run(body, "），借款期限二十四个月。", "宋体", "Times New Roman")
    table = document.add_table(rows=len(TABLE), cols=len(TABLE[0]))
    table.style = "Table Grid"
    for row, values in zip(table.rows, TABLE, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            _run(cell.paragraphs[0], value, "宋体", "Times New Roman")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _process_group_members(pgid: int) -> list[str]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[2]) == pgid:
            members.append(text)
    return members


def _pdfa_id(pdf: bytes) -> tuple[str, str]:
    """(part, conformance) from the XMP packet, element or attribute form."""
    xmp = etree.fromstring(pdf[pdf.index(b"<x:xmpmeta") : pdf.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")])
    ns = {"pdfaid": "http://www.aiim.org/pdfa/ns/id/"}
    part = xmp.xpath("string((//pdfaid:part | //@pdfaid:part)[1])", namespaces=ns)
    conformance = xmp.xpath("string((//pdfaid:conformance | //@pdfaid:conformance)[1])", namespaces=ns)
    return part, conformance


def _assert_pdfa2b(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-")
    assert _pdfa_id(pdf) == ("2", "B")


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "text.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def docx() -> bytes:
    return _contract_docx()


@pytest.fixture(scope="module")
def long_docx() -> bytes:
    """~300 pages: LibreOffice needs well over 3 s for it, the small contract ~0.3 s."""
    document = Document()
    for number in range(6000):
        document.add_paragraph(f"第{number}条 借款人应按期足额归还借款本息。" * 3)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdfConverter]:
    pdf_converter = PdfConverter(tmp_path_factory.mktemp("pdf-data"), workers=1)
    pdf_converter.start()
    yield pdf_converter
    groups = pdf_converter.worker_pids()
    pdf_converter.close()
    assert groups, "the warm worker should still be running at the end of the module"
    assert all(_process_group_members(pgid) == [] for pgid in groups), "close() left LibreOffice processes"


@pytest.fixture(scope="module")
def pdf(converter: PdfConverter, docx: bytes) -> bytes:
    return converter.convert(docx)


def test_all_tools_are_installed() -> None:
    assert missing_tools() == []


def test_warm_conversion_is_pdfa_2b(converter: PdfConverter, pdf: bytes) -> None:
    assert converter.mode == "warm"
    _assert_pdfa2b(pdf)


def test_chinese_text_is_extractable(pdf: bytes, tmp_path: Path) -> None:
    text = _pdftotext(pdf, tmp_path)
    assert TITLE in text
    assert AMOUNT in text
    compact = "".join(text.split())  # pdftotext puts spaces between Chinese and digits: "2025 年 2 月"
    assert all(value in compact for row in TABLE for value in row)


def test_first_page_is_not_blank(pdf: bytes, tmp_path: Path) -> None:
    (tmp_path / "out.pdf").write_bytes(pdf)
    pdftoppm = ["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", "-singlefile"]
    subprocess.run([*pdftoppm, str(tmp_path / "out.pdf"), str(tmp_path / "page")], check=True)
    image = Image.open(tmp_path / "page.png").convert("L")
    histogram = image.histogram()
    dark_share = sum(histogram[:128]) / (image.width * image.height)
    assert image.getextrema()[0] < 64  # real ink, not only anti-aliasing grey
    assert 0.001 < dark_share < 0.3, dark_share


def test_contract_fonts_map_to_noto_cjk_and_liberation(pdf: bytes, tmp_path: Path) -> None:
    (tmp_path / "fonts.pdf").write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(tmp_path / "fonts.pdf")], capture_output=True, text=True, check=True).stdout
    assert "NotoSerifCJK" in fonts  # 宋体 body; named ...CJKjp... because the TTC shares one CFF table
    assert "NotoSansCJK" in fonts and "Bold" in fonts  # 黑体 title, bold
    assert "LiberationSerif" in fonts  # Times New Roman
    assert "DejaVu" not in fonts and "WenQuanYi" not in fonts and "WQY" not in fonts
    rows = fonts.splitlines()[2:]
    assert rows and all(" yes yes " in row for row in rows), "every font must be embedded and subset"


def test_two_threads_convert_at_once(converter: PdfConverter, docx: bytes) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def convert() -> None:
        try:
            results.append(converter.convert(docx))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 2
    for result in results:
        _assert_pdfa2b(result)


def test_input_that_is_not_docx_raises(converter: PdfConverter) -> None:
    with pytest.raises(ConversionError, match="not a DOCX"):
        converter.convert(b"%PDF-1.7 definitely not a Word document")


def test_broken_docx_raises_and_worker_survives(converter: PdfConverter, docx: bytes) -> None:
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("word/document.xml", "<w:document>truncated")
    pids = converter.worker_pids()
    started = time.monotonic()
    with pytest.raises(ConversionError, match="could not convert"):
        converter.convert(broken.getvalue())
    assert time.monotonic() - started < 10
    assert converter.worker_pids() == pids  # a bad document is not a reason to restart LibreOffice
    _assert_pdfa2b(converter.convert(docx))


def test_killed_worker_is_restarted(converter: PdfConverter, docx: bytes) -> None:
    [pgid] = converter.worker_pids()
    os.killpg(pgid, signal.SIGKILL)
    _assert_pdfa2b(converter.convert(docx))
    [new_pgid] = converter.worker_pids()
    assert new_pgid != pgid


def test_worn_worker_is_recycled_and_a_slow_document_times_out(docx: bytes, long_docx: bytes, tmp_path: Path) -> None:
    with PdfConverter(tmp_path, workers=1, conversion_timeout=3, recycle_after=2) as converter:
        converter.convert(docx)
        converter.convert(docx)
        [first] = converter.worker_pids()
        converter.convert(docx)  # its third conversion: on a fresh LibreOffice
        [second] = converter.worker_pids()
        assert second != first
        started = time.monotonic()
        with pytest.raises(ConversionError, match="did not finish within 3 s"):
            converter.convert(long_docx)
        assert time.monotonic() - started < 10
    assert _process_group_members(first) == _process_group_members(second) == []


def test_one_shot_timeout_raises(long_docx: bytes, tmp_path: Path) -> None:
    started = time.monotonic()
    with (
        PdfConverter(tmp_path, workers=0, conversion_timeout=3) as converter,
        pytest.raises(ConversionError, match="did not finish within 3 s"),
    ):
        converter.convert(long_docx)
    assert time.monotonic() - started < 10


def test_workers_die_with_the_platform_process(tmp_path: Path) -> None:
    """A SIGKILLed platform runs no atexit: its LibreOffice must still go away by itself."""
    script = (
        "import sys\nfrom engine.documents.pdf import PdfConverter\n"
        f"converter = PdfConverter({str(tmp_path)!r})\nconverter.start()\n"
        "print(converter.worker_pids()[0], flush=True)\nsys.stdin.read()\n"
    )
    platform = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert platform.stdout is not None
    pgid = int(platform.stdout.readline())
    members = [int(line.split()[0]) for line in _process_group_members(pgid)]
    assert len(members) >= 3  # unoserver, oosplash, soffice.bin
    exits = [os.pidfd_open(pid) for pid in members]
    try:
        platform.kill()
        platform.wait()
        deadline = time.monotonic() + 10
        pending = list(exits)
        while pending and time.monotonic() < deadline:  # select() blocks until a process exits
            ready, _, _ = select.select(pending, [], [], deadline - time.monotonic())
            pending = [fd for fd in pending if fd not in ready]
        assert pending == [], "LibreOffice outlived the platform process"
    finally:
        for fd in exits:
            os.close(fd)


def test_one_shot_fallback_is_pdfa_2b(docx: bytes, tmp_path: Path) -> None:
    with PdfConverter(tmp_path, workers=0) as one_shot:
        assert one_shot.mode == "one-shot"
        pdf = one_shot.convert(docx)
    _assert_pdfa2b(pdf)
    assert AMOUNT in _pdftotext(pdf, tmp_path)
    with pytest.raises(ConversionError, match="closed"):
        one_shot.convert(docx)


def test_missing_libreoffice_names_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a system without LibreOffice or poppler on PATH
    with pytest.raises(ConverterUnavailable) as raised:
        PdfConverter(tmp_path).start()
    assert INSTALL_COMMAND in str(raised.value)
    assert {"soffice", "fc-match with Noto CJK", "pdftotext", "pdftoppm", "pdfsig"} <= set(missing_tools())


def test_shared_converter_is_one_per_work_dir(tmp_path: Path) -> None:
    first = shared_converter(tmp_path / "office", workers=2)
    assert shared_converter(tmp_path / "office") is first
    assert shared_converter(tmp_path / "other") is not first
    first.close()  # never started: nothing to stop, but a closed converter is replaced
    assert shared_converter(tmp_path / "office") is not first
