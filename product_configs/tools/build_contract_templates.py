"""Write ``product_configs/contracts/<name>.docx``: the loan-contract templates the product catalog names.

The legal team would normally author these in Word; building them from the tables below keeps the
seven contracts consistent (one builder, shared articles, a few articles per contract type) and lets
a reviewer read the text in one place. The tags are docxtpl (Jinja) names from the contract field
vocabulary in ``engine/documents/contract_fields.py``. The output is deterministic and committed;
``--check`` fails when the committed files differ from what this script produces.

    python product_configs/tools/build_contract_templates.py [--check]
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.shared import Cm, Pt
from docx.styles.style import BaseStyle
from docx.table import Table, _Row
from docx.text.paragraph import Paragraph

from engine.documents.sealing import ANCHOR_BOOKMARK, DEFAULT_ANCHOR

CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
# Fixed dates keep the files byte-identical between runs (core properties and zip entry times).
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
ZIP_TIME = AS_OF.timetuple()[:6]

LATIN_FONT = "Times New Roman"
BODY_FONT = "宋体"
HEADING_FONT = "黑体"
BODY_SIZE = Pt(12)  # 小四
TITLE_STYLE = "Contract Title"
HEADING_STYLE = "Article Heading"
TABLE_STYLE = "Schedule Text"
# The seal is placed over this phrase, so it appears exactly once, in the signature block; a bookmark
# on it becomes a named destination in the PDF, where the sealer finds it without reading the text.
SEAL_ANCHOR = DEFAULT_ANCHOR


@dataclass(frozen=True)
class Article:
    heading: str
    text: str
    schedule_table: bool = False


@dataclass(frozen=True)
class ContractKind:
    """One contract template: the shared contract plus this type's parties, articles and signers."""

    name: str
    title: str
    parties: tuple[str, ...] = ()
    articles: tuple[Article, ...] = ()
    signers: tuple[str, ...] = ()


PREAMBLE = (
    "乙方因{{ purpose }}需要，向甲方申请借款，经甲方审查同意发放。为明确双方的权利义务，根据《中华人民共和国民法典》"
    "《中华人民共和国商业银行法》等法律法规，甲乙双方经平等协商，订立本合同，共同遵守。"
)

LEADING_ARTICLES = (
    Article(
        "借款金额",
        "甲方同意向乙方发放{{ product.name }}，借款金额为人民币（大写）{{ amount_cn }}（小写：¥{{ amount }}）。",
    ),
    Article(
        "借款期限",
        "借款期限为{{ term_months }}个月，自{{ start_date }}起至{{ end_date }}止。实际放款日与上述起始日不一致的，"
        "借款期限自实际放款日起算，以借款借据记载为准。",
    ),
    Article(
        "借款利率",
        "本合同项下借款年利率为{{ rate.annual }}%，即本合同签订日适用的{{ rate.benchmark }}{{ rate.lpr }}%"
        "{{ rate.spread }}（1个基点为0.01%），在借款期限内固定不变。利息按月计收，月利率＝年利率÷12。",
    ),
    Article(
        "还款方式",
        "本合同项下借款采用{{ repayment_method }}方式还款。乙方应于每期还款日前将当期应还款项足额存入本合同约定的"
        "还款账户，并授权甲方按期扣收。",
    ),
    Article(
        "放款账户",
        "甲方将借款发放至乙方在甲方开立的账户（账号：{{ account }}），该账户同时作为还款账户。借款期间乙方应保持该账户"
        "状态正常，不得销户或变更。",
    ),
    Article(
        "借款用途",
        "本合同项下借款用于{{ purpose }}。未经甲方书面同意，乙方不得改变借款用途；除上述约定用途外，不得将借款用于"
        "购房、股票、债券、期货、金融衍生产品、股本权益性投资及国家法律法规禁止的其他用途。",
    ),
    Article(
        "还款计划",
        "乙方按下表还款（金额单位：人民币元）。实际放款日与起始日不一致的，以甲方按相同规则重新计算的还款计划为准。",
        schedule_table=True,
    ),
)

TRAILING_ARTICLES = (
    Article(
        "违约责任",
        "乙方未按期足额偿还借款本息的，甲方有权对逾期本金按本合同约定利率加收50%计收罚息，对应付未付利息计收复利。"
        "乙方擅自改变借款用途、提供虚假材料或出现其他严重影响还款能力情形的，甲方有权停止发放借款、宣布借款提前到期，"
        "并要求乙方立即偿还全部借款本息。",
    ),
    Article(
        "争议解决",
        "因本合同引起的或与本合同有关的争议，双方应协商解决；协商不成的，任何一方均可向甲方住所地有管辖权的人民法院"
        "提起诉讼。",
    ),
    Article(
        "其他",
        "本合同以电子数据形式订立，自甲方加盖电子合同专用章、乙方签字（含电子签名）之日起生效，与纸质合同具有同等"
        "法律效力。借款借据是本合同的组成部分。本合同未尽事宜，按有关法律法规及甲方业务规定执行。",
    ),
)

SECURED_SCOPE = "担保范围包括借款本金、利息、罚息、复利、违约金、损害赔偿金及实现债权的费用"
# Every guarantor the application lists: 李四（身份证号码：…）、王五（身份证号码：…）.
GUARANTOR_LIST = (
    "{% for g in guarantors %}{{ g.name }}（身份证号码：{{ g.id_number }}）"
    "{% if not loop.last %}、{% endif %}{% endfor %}"
)

KINDS = (
    ContractKind("personal-credit", "个人信用借款合同"),
    ContractKind(
        "personal-guaranteed",
        "个人保证借款合同",
        parties=(f"保证人：{GUARANTOR_LIST}",),
        articles=(
            Article(
                "保证担保",
                f"保证人{GUARANTOR_LIST}自愿为乙方在本合同项下的全部债务提供连带责任保证，{SECURED_SCOPE}。保证人为"
                "二人以上的，各保证人对全部债务承担连带责任。保证期间为主债务履行期限届满之日起三年。保证人与甲方另行"
                "签订保证合同的，以保证合同为准。",
            ),
        ),
        # One signature line per guarantor, in the cell below the borrower's.
        signers=(
            "{% for g in guarantors %}保证人（签字）：{{ g.name }}{% if not loop.last %}\n{% endif %}{% endfor %}",
        ),
    ),
    ContractKind(
        "business-credit",
        "流动资金借款合同",
        articles=(
            Article(
                "贷款资金支付",
                "本合同项下借款资金采用甲方受托支付与乙方自主支付相结合的方式。单笔支付金额超过人民币伍拾万元（含）的，"
                "由甲方根据乙方的提款申请和支付委托，将借款资金支付给符合合同约定用途的乙方交易对象；乙方自主支付的，"
                "应按月向甲方汇总报告借款资金支付情况。",
            ),
            Article(
                "经营信息",
                "借款期间，乙方应按甲方要求提供经营及财务资料；乙方经营状况、主要股东或实际控制人发生重大变化的，应在"
                "变化发生之日起五个工作日内书面通知甲方。",
            ),
        ),
    ),
    ContractKind(
        "mortgage",
        "个人抵押借款合同",
        parties=("抵押人：{{ collateral.owner_name }}",),
        articles=(
            Article(
                "抵押担保",
                "抵押人{{ collateral.owner_name }}以其名下{{ collateral.type }}（权属证书编号："
                "{{ collateral.certificate_no }}，评估价值人民币{{ collateral.appraised_value }}元）为乙方在本合同项下"
                "的全部债务提供抵押担保，"
                f"{SECURED_SCOPE}。甲方与抵押人应于本合同签订之日起十个工作日内办理抵押登记，抵押权自登记时设立。",
            ),
            Article(
                "抵押物管理",
                "抵押期间，未经甲方书面同意，抵押人不得转让、出租、重复抵押或以其他方式处分抵押物。抵押物价值明显减少的，"
                "甲方有权要求抵押人恢复抵押物价值或提供与减少的价值相应的担保。",
            ),
        ),
        signers=("抵押人（签字）：{{ collateral.owner_name }}",),
    ),
    ContractKind(
        "pledge",
        "质押借款合同",
        parties=("出质人：{{ collateral.owner_name }}",),
        articles=(
            Article(
                "质押担保",
                # No collateral.type here: the appraisal form's types (房产、土地经营权、农业设施) do not name
                # pledged property such as deposit certificates or receivables.
                "出质人{{ collateral.owner_name }}以其名下财产（权属凭证编号：{{ collateral.certificate_no }}，评估价值"
                f"人民币{{{{ collateral.appraised_value }}}}元）出质，为乙方在本合同项下的全部债务提供质押担保，"
                f"{SECURED_SCOPE}。质押财产应于本合同签订当日交付甲方占有或办理出质登记，质权自交付或登记时设立。质押"
                "期间，出质人不得挂失、提前支取或以其他方式处分质押财产。",
            ),
        ),
        signers=("出质人（签字）：{{ collateral.owner_name }}",),
    ),
    ContractKind(
        "policy-guaranteed",
        "政策性担保贷款借款合同",
        articles=(
            Article(
                "政策性担保",
                "本合同项下借款为{{ policy }}，由政府性融资担保机构为乙方在本合同项下的债务提供保证担保（担保编号："
                "{{ guarantee.guarantee_no }}），担保比例为{{ guarantee.guarantee_ratio }}，担保范围及期间以担保机构"
                "出具的担保函或签订的保证合同为准。乙方应配合甲方及担保机构开展贷后管理。",
            ),
            Article(
                "财政贴息",
                "乙方符合{{ policy }}财政贴息条件的，贴息资金按有关政策规定拨付；贴息资金到位前，乙方应按本合同约定利率"
                "足额支付利息。乙方不再符合贴息条件的，自不符合之日起不再享受贴息。",
            ),
        ),
    ),
    ContractKind(
        "renewal",
        "续贷借款合同",
        articles=(
            Article(
                "放款账户",
                "本合同项下借款资金不发放至乙方账户，按本合同“续贷安排”条款直接归还原借款。"
                "乙方在甲方开立的账户（账号：{{ account }}）作为本合同项下的还款账户，"
                "借款期间乙方应保持该账户状态正常，不得销户或变更。",
            ),
            Article(
                "续贷安排",
                "本合同项下借款专项用于归还乙方在甲方的原借款（借据编号：{{ existing_loan.loan_id }}，原借款本金人民币"
                "{{ existing_loan.principal }}元，原到期日{{ existing_loan.maturity_date }}），甲方于原借款到期时以"
                "本合同项下借款资金直接归还原借款，不向乙方另行支付。原借款的担保措施经担保人书面同意后继续为本合同项下"
                "债务提供担保。",
            ),
        ),
    ),
)

SCHEDULE_COLUMNS = (
    ("期数", "period"),
    ("还款日期", "due_date"),
    ("应还本金", "principal"),
    ("应还利息", "interest"),
    ("本期合计", "payment"),
    ("剩余本金", "balance_after"),
)


def build(kind: ContractKind) -> bytes:
    """The template of one contract type as deterministic .docx bytes."""
    document = Document()
    _set_up_page_and_styles(document)
    document.add_paragraph(kind.title, style=TITLE_STYLE)
    number = document.add_paragraph("合同编号：{{ contract_no }}")
    number.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    for line in (
        "贷款人（甲方）：{{ bank.name }}",
        "借款人（乙方）：{{ borrower.name }}",
        "身份证号码：{{ borrower.id_number }}　　联系电话：{{ borrower.mobile }}",
        *kind.parties,
    ):
        document.add_paragraph(line)
    _add_body_paragraph(document, PREAMBLE)
    # an article of the type with a shared article's heading takes its place (a renewal pays no one)
    own = {article.heading: article for article in kind.articles}
    leading = tuple(own.get(article.heading, article) for article in LEADING_ARTICLES)
    added = tuple(article for article in kind.articles if article not in leading)
    articles = (*leading, *added, *TRAILING_ARTICLES)
    for number_in_contract, article in enumerate(articles, start=1):
        paragraph = _add_body_paragraph(document, "")
        paragraph.add_run(f"第{_chinese_number(number_in_contract)}条　{article.heading}　", style=HEADING_STYLE)
        paragraph.add_run(article.text)
        if article.schedule_table:
            _add_schedule_table(document)
    document.add_paragraph("（以下无正文）").paragraph_format.keep_with_next = True
    _add_signature_block(document, kind)
    _set_core_properties(document, kind.title)
    saved = io.BytesIO()
    document.save(saved)
    return _with_fixed_zip_times(saved.getvalue())


def _set_up_page_and_styles(document: DocxDocument) -> None:
    """A4 in Chinese: python-docx's default template is US Letter with en-US/ja-JP languages."""
    section = document.sections[0]
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.5)
    section.top_margin = section.bottom_margin = Cm(2.2)
    defaults = document.styles.element.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
    _set_fonts(defaults, BODY_FONT)
    language = defaults.find(qn("w:lang"))
    language.set(qn("w:val"), "zh-CN")
    language.set(qn("w:eastAsia"), "zh-CN")
    for theme_language in document.settings.element.iter(qn("w:themeFontLang")):
        theme_language.set(qn("w:eastAsia"), "zh-CN")

    styles = document.styles
    normal = styles["Normal"]
    normal.font.size = BODY_SIZE
    _set_style_fonts(normal, BODY_FONT)
    normal.paragraph_format.space_after = Pt(3)
    normal.paragraph_format.line_spacing = 1.25

    title = styles.add_style(TITLE_STYLE, WD_STYLE_TYPE.PARAGRAPH)
    title.base_style = normal
    title.font.size, title.font.bold = Pt(18), True
    _set_style_fonts(title, HEADING_FONT)
    title.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.CENTER
    title.paragraph_format.space_after = Pt(12)

    heading = styles.add_style(HEADING_STYLE, WD_STYLE_TYPE.CHARACTER)
    heading.font.bold = True
    _set_style_fonts(heading, HEADING_FONT)

    table_text = styles.add_style(TABLE_STYLE, WD_STYLE_TYPE.PARAGRAPH)
    table_text.base_style = normal
    table_text.font.size = Pt(9)
    table_text.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.CENTER
    table_text.paragraph_format.space_after = Pt(0)
    table_text.paragraph_format.line_spacing = 1.0


def _set_style_fonts(style: BaseStyle, east_asian: str) -> None:
    _set_fonts(style.element.get_or_add_rPr(), east_asian)


def _set_fonts(run_properties: BaseOxmlElement, east_asian: str) -> None:
    """Explicit fonts without theme references, which would win over them; ``font.name`` alone leaves
    Chinese text (w:eastAsia) in the theme's Japanese-leaning font."""
    fonts = run_properties.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        run_properties.insert(0, fonts)
    for attribute in list(fonts.attrib):
        del fonts.attrib[attribute]
    fonts.set(qn("w:ascii"), LATIN_FONT)
    fonts.set(qn("w:hAnsi"), LATIN_FONT)
    fonts.set(qn("w:eastAsia"), east_asian)


def _add_body_paragraph(document: DocxDocument, text: str) -> Paragraph:
    """Body text indented by two characters, as Chinese contracts set it."""
    paragraph = document.add_paragraph(text)
    paragraph.paragraph_format.first_line_indent = BODY_SIZE * 2
    return paragraph


def _add_schedule_table(document: DocxDocument) -> None:
    """The repayment plan: a header repeated on every page, one docxtpl row loop and a totals row."""
    table = document.add_table(rows=0, cols=len(SCHEDULE_COLUMNS))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    header = _add_row(table, [label for label, _ in SCHEDULE_COLUMNS])
    header_properties = header._tr.get_or_add_trPr()
    header_properties.append(OxmlElement("w:tblHeader"))
    # docxtpl drops the rows holding {%tr %} tags and repeats the row between them per schedule entry.
    _add_row(table, ["{%tr for r in schedule %}"])
    _add_row(table, [f"{{{{ r.{key} }}}}" for _, key in SCHEDULE_COLUMNS])
    _add_row(table, ["{%tr endfor %}"])
    _add_row(
        table,
        [
            "合计",
            "",
            "{{ schedule_totals.principal }}",
            "{{ schedule_totals.interest }}",
            "{{ schedule_totals.payment }}",
            "",
        ],
    )
    document.add_paragraph()


def _add_row(table: Table, texts: list[str]) -> _Row:
    row = table.add_row()
    for cell, text in zip(row.cells, texts, strict=False):
        cell.paragraphs[0].style = TABLE_STYLE
        cell.paragraphs[0].add_run(text)
    for cell in row.cells[len(texts) :]:
        cell.paragraphs[0].style = TABLE_STYLE
    return row


def _add_signature_block(document: DocxDocument, kind: ContractKind) -> None:
    """Lender left, borrower (and any co-signers) right, kept on one page; the seal lands on the
    lender's anchor phrase."""
    lender = (f"{SEAL_ANCHOR}：{{{{ bank.name }}}}", "负责人或授权代理人（签字）：")
    borrower = ("借款人（签字）：{{ borrower.name }}", *kind.signers)
    lines = [*zip_longest(lender, borrower, fillvalue=""), ("签订日期：{{ signed_on }}",) * 2]
    table = document.add_table(rows=0, cols=2)
    for index, (left, right) in enumerate(lines, start=1):
        row = table.add_row()
        row.height = Cm(1.4)
        row.cells[0].text, row.cells[1].text = left, right
        for cell in row.cells:
            cell.paragraphs[0].paragraph_format.keep_with_next = index < len(lines)
    _bookmark(table.rows[0].cells[0].paragraphs[0], ANCHOR_BOOKMARK)


def _bookmark(paragraph: Paragraph, name: str) -> None:
    """A Word bookmark around the paragraph's text (LibreOffice exports it as a PDF destination)."""
    start, end = OxmlElement("w:bookmarkStart"), OxmlElement("w:bookmarkEnd")
    start.set(qn("w:id"), "1")
    start.set(qn("w:name"), name)
    end.set(qn("w:id"), "1")
    paragraph._p.insert(1 if paragraph._p.pPr is not None else 0, start)
    paragraph._p.append(end)


def _set_core_properties(document: DocxDocument, title: str) -> None:
    properties = document.core_properties
    properties.title = title
    properties.subject = "借款合同"
    properties.author = properties.last_modified_by = "CreditFlow"
    properties.comments = ""
    properties.language = "zh-CN"
    properties.created = properties.modified = AS_OF
    properties.revision = 1


def _with_fixed_zip_times(docx: bytes) -> bytes:
    """python-docx stamps zip entries with the current time; a fixed one makes the file reproducible."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            fixed = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIME)
            target.writestr(fixed, source.read(entry), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _chinese_number(number: int) -> str:
    """Article numbers 1–99 as contracts write them: 一, 十, 十一, 二十一."""
    if not 0 < number < 100:
        raise ValueError(f"article number {number} is out of range")
    digits = "零一二三四五六七八九"
    tens, units = divmod(number, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else f"{digits[tens]}十")
    return head + (digits[units] if units else "")


def expected_files() -> dict[str, bytes]:
    return {f"{kind.name}.docx": build(kind) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the contract templates the product catalog names.")
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)
    expected = expected_files()
    if args.check:
        stale = sorted(name for name, content in expected.items() if _read(CONTRACTS_DIR / name) != content)
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    CONTRACTS_DIR.mkdir(exist_ok=True)
    for name, content in expected.items():
        (CONTRACTS_DIR / name).write_bytes(content)
    print(f"wrote {len(expected)} templates to {CONTRACTS_DIR}")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
