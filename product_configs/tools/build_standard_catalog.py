"""Write ``product_configs/standard/<CODE>.json``: the province's 95 standard credit products.

The 95 documents share most of their shape (rule bindings, data dictionary, time limits and channel
per archetype, sources), so they are generated from the tables below: a reviewer reads one row per
product instead of 95 JSON files, and a shared change is made once. The output is deterministic and
committed; ``--check`` fails when the committed files differ from what the tables produce.

Figures are illustrations unless a row says otherwise (see ``published``): the seed document names
the series and some products but publishes no amounts, terms or rates for them.

    python product_configs/tools/build_standard_catalog.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STANDARD_DIR = Path(__file__).resolve().parents[1] / "standard"
AS_OF = "2026-12-01"

# Repayment methods: 等额本息, 等额本金, 按月付息到期还本, 利随本清, 随借随还, 分期还本.
EI, EP, IM, BL, FX, IP = (
    "equal_installment",
    "equal_principal",
    "interest_monthly_principal_at_maturity",
    "bullet",
    "flexible",
    "installment_principal",
)
# Guarantee types: 信用, 保证, 抵押, 质押, 政策性担保, 联保.
CR, GU, MO, PL, PG, JG = ("credit", "guarantee", "mortgage", "pledge", "policy_guarantee", "joint_guarantee")

A1, A2, A3, A4, A5, A6, A7 = (
    "a1_instant_online",
    "a2_batch_preapproval",
    "a3_online_light",
    "a4_standard_offline",
    "a5_guaranteed_policy",
    "a6_collateral",
    "a7_renewal",
)

# Channel and process clock (working time) per archetype, from the default limits in domain.md §5:
# A1 has a 2-working-hour grey-zone review, so its process clock is one working day, not minutes.
ARCHETYPE_DEFAULTS: dict[str, tuple[str, str]] = {
    A1: ("online", "P1D"),
    A2: ("online_offline", "P10D"),
    A3: ("online_offline", "P3D"),
    A4: ("offline", "P10D"),
    A5: ("online_offline", "P5D"),
    A6: ("offline", "P10D"),
    A7: ("online_offline", "P15D"),
}

# Decision slot -> rule file. A product binds the slots its archetype has (bpmn/archetypes.json); the
# rule files are shared by all products until a product gets its own.
DECISIONS = {"access": "xed-access", "scorecard": "segment-scorecard", "pricing": "pricing"}
ARCHETYPE_MANIFEST = Path(__file__).resolve().parents[2] / "bpmn" / "archetypes.json"

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"

SEED = (
    "山东省农村信用社联合社冯勇《打造数字信贷服务能力 提升普惠金融服务质效》（金科创新社，2024年，数据截至2024年9月末）"
)
LABELS = {
    "name": "产品名称",
    "amount": "额度",
    "term_months": "期限",
    "rate": "利率",
    "repayment_methods": "还款方式",
    "guarantee_types": "担保方式",
    "time_limits": "办理时限",
    "rule_parameters": "规则参数",
}


@dataclass(frozen=True)
class Product:
    """One row of the catalog; amounts in whole yuan, rate spreads in basis points over ``benchmark``."""

    code: str
    name: str
    system: str
    series: str
    archetype: str
    segments: tuple[str, ...]
    amount: tuple[int, int]
    term: tuple[int, int]
    spread: tuple[int, int]
    repayment: tuple[str, ...]
    guarantees: tuple[str, ...]
    template: str
    description: str
    benchmark: str = "LPR_1Y"
    channel: str | None = None
    process: str | None = None
    name_in_seed: bool = False
    published: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    # Appended to source.note: what the product document should say beyond the illustrative figures.
    note: str = ""


def series_product(series: str, system: str, code: str, short_name: str, archetype: str, **kwargs: Any) -> Product:
    """A product of one of the five rural-revitalisation series: ``<series>·<short name>``."""
    return Product(
        code=code, name=f"{series}·{short_name}", system=system, series=series, archetype=archetype, **kwargs
    )


def xnd(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return series_product("兴农贷", system, f"XND-{code}", name, archetype, **kwargs)


def yjd(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return series_product("宜居贷", system, f"YJD-{code}", name, archetype, **kwargs)


def xfwm(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return series_product("乡风文明贷", system, f"XFWM-{code}", name, archetype, **kwargs)


def zlyx(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return series_product("治理有效贷", system, f"ZLYX-{code}", name, archetype, **kwargs)


def fnd(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return series_product("富农贷", system, f"FND-{code}", name, archetype, **kwargs)


def policy(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return Product(code=f"ZC-{code}", name=name, system=system, series="政策性产品", archetype=archetype, **kwargs)


def xekd(system: str, code: str, name: str, archetype: str, **kwargs: Any) -> Product:
    return Product(
        code=f"XEKD-{code}",
        name=name,
        system=system,
        series="信e快贷",
        archetype=archetype,
        name_in_seed=True,
        **kwargs,
    )


# fmt: off
PRODUCTS: tuple[Product, ...] = (
    # ── 兴农贷 (22): industry and production ──────────────────────────────────────────────
    xnd("支农", "ZHONGZHI", "种植贷", A3, segments=("farmer", "new_agri_entity"), amount=(10_000, 500_000),
        term=(3, 36), spread=(50, 250), repayment=(IM, FX, IP), guarantees=(CR, GU), template="personal-credit",
        description="面向从事粮食、蔬菜、经济作物种植的农户和种植大户，用于购买种子、化肥、农药及支付土地流转费等生产经营周转。"),
    xnd("支农", "YANGZHI", "养殖贷", A3, segments=("farmer", "new_agri_entity"), amount=(10_000, 500_000),
        term=(3, 36), spread=(50, 250), repayment=(IM, FX, IP), guarantees=(CR, GU), template="personal-credit",
        description="面向畜禽、水产养殖户，用于购买种苗、饲料、防疫物资及圈舍维护等养殖环节资金需求。"),
    xnd("支农", "LINGUO", "林果贷", A3, segments=("farmer", "new_agri_entity"), amount=(10_000, 500_000),
        term=(6, 36), spread=(50, 250), repayment=(IM, IP, FX), guarantees=(CR, GU), template="personal-credit",
        description="面向果树、苗木及林下经济经营户，按果园挂果周期匹配贷款期限，用于管护、采摘、储藏等资金需求。"),
    xnd("支农", "YUYE", "渔业贷", A3, segments=("farmer", "new_agri_entity"), amount=(10_000, 500_000),
        term=(6, 36), spread=(50, 250), repayment=(IM, FX), guarantees=(CR, GU), template="personal-credit",
        description="面向近海捕捞、水产养殖及渔船经营户，用于渔具购置、苗种投放、燃油及渔船维修等支出。"),
    xnd("支农", "ZHENGCUN", "整村授信贷", A2, segments=("farmer",), amount=(3_000, 300_000),
        term=(12, 36), spread=(50, 300), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
        description="依托网格化整村授信，对评议合格的农户批量预授信，农户激活后随借随还、循环使用，满足日常生产经营资金需求。"),
    xnd("支农", "JIATINGNONGCHANG", "家庭农场贷", A4, segments=("new_agri_entity",), amount=(100_000, 3_000_000),
        term=(12, 60), spread=(0, 200), repayment=(IM, IP, EP), guarantees=(CR, GU), template="personal-guaranteed",
        description="面向示范家庭农场及规模经营农户，用于土地流转、农资采购、农机购置和生产基础设施投入。"),
    xnd("支农", "HEZUOSHE", "农民专业合作社贷", A4, segments=("new_agri_entity",), amount=(100_000, 5_000_000),
        term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(GU, CR), template="business-credit",
        description="面向依法登记、运营规范的农民专业合作社及联合社，用于统一采购农资、收购社员农产品及加工储运等资金需求。"),
    xnd("支农", "TUDIJINGYINGQUAN", "土地经营权抵押贷", A6, segments=("new_agri_entity", "farmer"),
        amount=(50_000, 3_000_000), term=(12, 60), spread=(0, 200), repayment=(IM, IP, EP), guarantees=(MO,),
        template="mortgage",
        description="以依法流转取得的农村土地经营权作抵押，经评估并办理抵押登记后发放，盘活农村土地资源，支持适度规模经营。"),
    xnd("支农", "NONGJI", "农机具贷", A6, segments=("farmer", "new_agri_entity"), amount=(20_000, 1_000_000),
        term=(12, 36), spread=(50, 250), repayment=(EP, EI, IP), guarantees=(MO, GU), template="mortgage",
        description="用于购置拖拉机、收割机、植保无人机等农业机械，以所购农机办理动产抵押登记，按作业收入分期还款。"),
    xnd("支农", "HUOTI", "畜禽活体抵押贷", A6, segments=("farmer", "new_agri_entity"), amount=(50_000, 2_000_000),
        term=(6, 36), spread=(50, 250), repayment=(IM, IP), guarantees=(MO,), template="mortgage",
        description="以存栏生猪、肉牛、奶牛等活体畜禽作抵押，结合耳标识别与养殖保险管理押品，缓解养殖户抵押物不足问题。"),
    xnd("支农", "SHEHUIHUAFUWU", "农业社会化服务贷", A3, segments=("new_agri_entity",), amount=(50_000, 1_000_000),
        term=(12, 36), spread=(50, 250), repayment=(IM, IP, FX), guarantees=(CR, GU), template="personal-credit",
        description="面向提供代耕代种、统防统治、烘干仓储等服务的农业社会化服务组织，用于设备购置与作业周转。"),
    xnd("支农", "DINGDAN", "订单农业贷", A4, segments=("new_agri_entity", "farmer"), amount=(50_000, 3_000_000),
        term=(6, 24), spread=(0, 200), repayment=(IM, BL), guarantees=(GU, CR), template="personal-guaranteed",
        description="依据农户、合作社与龙头企业签订的农产品购销订单发放，以订单回款作为主要还款来源。"),
    xnd("支农", "ZHONGYE", "种业贷", A4, segments=("new_agri_entity", "small_business"), amount=(200_000, 5_000_000),
        term=(6, 24), spread=(0, 200), repayment=(IM, IP), guarantees=(GU, CR), template="business-credit",
        description="面向育繁推一体化种业企业和制种大户，用于制种基地建设、种子收购与加工周转。"),
    xnd("兴商", "SHOUGOU", "农产品收购贷", A4, segments=("merchant", "new_agri_entity"), amount=(100_000, 3_000_000),
        term=(3, 12), spread=(50, 250), repayment=(IM, BL, FX), guarantees=(GU, MO), template="personal-guaranteed",
        description="面向农产品经纪人和收购商，用于季节性集中收购粮食、果蔬等农产品的短期周转资金需求。"),
    xnd("兴商", "NONGZI", "农资经营贷", A3, segments=("merchant",), amount=(50_000, 1_000_000),
        term=(6, 12), spread=(100, 300), repayment=(IM, FX), guarantees=(CR, GU), template="personal-credit",
        description="面向种子、化肥、农药等农资经销商户，用于旺季备货和赊销周转，额度随经营流水动态调整。"),
    xnd("兴商", "XIANGCUNLVYOU", "乡村旅游贷", A3, segments=("merchant", "farmer"), amount=(30_000, 1_000_000),
        term=(12, 60), spread=(50, 250), repayment=(EI, IM, IP), guarantees=(CR, GU), template="personal-credit",
        description="面向农家乐、乡村民宿、休闲采摘园经营者，用于客房改造、设施配套和经营周转。"),
    xnd("兴商", "DIANSHANG", "农村电商贷", A3, segments=("merchant", "farmer"), amount=(10_000, 500_000),
        term=(6, 36), spread=(100, 300), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
        description="面向开展农产品网络销售、直播带货的农户和商户，依据网店流水核定额度，用于备货和物流周转。"),
    xnd("助企", "LONGTOU", "农业产业化龙头企业贷", A4, segments=("small_business", "new_agri_entity"),
        amount=(500_000, 10_000_000), term=(12, 36), spread=(0, 150), repayment=(IM, IP), guarantees=(GU, MO),
        template="business-credit",
        description="面向市级以上农业产业化龙头企业，用于原料收购、加工生产和带动农户增收的流动资金需求。"),
    xnd("助企", "SHENONGXIAOWEI", "涉农小微企业贷", A4, segments=("small_business",), amount=(100_000, 5_000_000),
        term=(12, 36), spread=(50, 250), repayment=(IM, IP), guarantees=(GU, MO, CR), template="business-credit",
        description="面向从事农产品加工、农业服务等涉农领域的小微企业，满足日常生产经营流动资金需求。"),
    xnd("助企", "LENGLIAN", "冷链仓储贷", A6, segments=("small_business", "new_agri_entity"),
        amount=(500_000, 10_000_000), term=(12, 60), spread=(0, 200), repayment=(IP, EP), guarantees=(MO,),
        template="mortgage",
        description="用于产地冷藏保鲜、冷链物流和仓储设施建设，以所建设施或其他房地产办理抵押。"),
    xnd("助企", "YINGSHOU", "应收账款质押贷", A6, segments=("small_business", "new_agri_entity"),
        amount=(100_000, 5_000_000), term=(3, 12), spread=(50, 250), repayment=(IM, BL), guarantees=(PL,),
        template="pledge",
        description="以对核心企业的应收账款作质押，在人民银行征信中心动产融资统一登记公示系统办理质押登记后发放。"),
    xnd("支农", "WUHUANBEN", "无还本续贷", A7, segments=("new_agri_entity", "farmer"), amount=(100_000, 3_000_000),
        term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(CR, GU, MO), template="renewal",
        description="对经营正常、到期仍有融资需求但临时资金周转困难的农户和新型农业经营主体，在贷款到期前办理续贷，无需先还本金。",
        references=("金规〔2024〕13号《关于做好续贷工作 加强小微企业融资服务的通知》",)),
    # ── 宜居贷 (12): housing and living environment ───────────────────────────────────────
    yjd("惠民", "NONGFANGGAIZAO", "农房改造贷", A3, segments=("farmer",), amount=(10_000, 300_000),
        term=(12, 60), spread=(50, 250), repayment=(EI, EP), guarantees=(CR, GU), template="personal-credit",
        description="用于农村住房翻建、危房改造、抗震加固及节能改造，贷款资金受托支付给施工方或建材商。"),
    yjd("惠民", "NONGFANGJIANSHE", "农房建设贷", A3, segments=("farmer",), amount=(30_000, 500_000),
        term=(12, 60), spread=(50, 250), repayment=(EI, EP), guarantees=(GU, CR), template="personal-guaranteed",
        description="面向在宅基地上依法新建自住房的农户，按建设进度分次放款并受托支付。"),
    yjd("惠民", "NONGFANGDIYA", "农民住房抵押贷", A6, segments=("farmer",), amount=(50_000, 1_000_000),
        term=(12, 60), spread=(50, 200), repayment=(EI, IM, IP), guarantees=(MO,), template="mortgage",
        description="在农民住房财产权抵押试点地区，以农民住房所有权及所占宅基地使用权作抵押，用于生产经营和消费。"),
    yjd("惠民", "GOUFANG", "城乡购房贷", A6, segments=("new_citizen", "farmer", "salaried"),
        amount=(50_000, 2_000_000), term=(12, 360), benchmark="LPR_5Y", spread=(-50, 50), repayment=(EI, EP),
        guarantees=(MO,), template="mortgage",
        description="支持农民进城和新市民在县域购买首套自住商品房，以所购房产抵押，首付比例和利率执行当地住房信贷政策。"),
    yjd("惠民", "JIAZHUANG", "家装贷", A3, segments=("salaried", "farmer", "general"), amount=(10_000, 300_000),
        term=(12, 60), spread=(100, 300), repayment=(EI,), guarantees=(CR, GU), template="personal-credit",
        description="用于住房装修、家具家电购置，装修款项受托支付给装修公司或商户。"),
    yjd("惠民", "QINGJIEQUNUAN", "清洁取暖贷", A2, segments=("farmer",), amount=(3_000, 50_000),
        term=(12, 36), spread=(50, 200), repayment=(EI, FX), guarantees=(CR,), template="personal-credit",
        description="配合农村清洁取暖改造，对村内改造农户批量授信，用于空气源热泵、燃气壁挂炉等设备的购置和安装。"),
    yjd("支农", "GUANGFU", "户用光伏贷", A3, segments=("farmer",), amount=(10_000, 200_000),
        term=(12, 120), benchmark="LPR_5Y", spread=(0, 150), repayment=(EI, EP), guarantees=(GU, PL),
        template="personal-guaranteed",
        description="支持农户在自有屋顶安装分布式光伏发电设备，以发电收益作为主要还款来源，可办理电费收益权质押。"),
    yjd("惠民", "MEILITINGYUAN", "美丽庭院贷", A2, segments=("farmer",), amount=(3_000, 200_000),
        term=(12, 36), spread=(50, 250), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
        description="对评为“美丽庭院”示范户的农户优先授信并给予利率优惠，用于庭院整治、绿化美化和庭院经济发展。"),
    yjd("助企", "RENJUHUANJING", "人居环境整治贷", A4, segments=("small_business",), amount=(500_000, 10_000_000),
        term=(12, 60), spread=(0, 200), repayment=(IP, EP), guarantees=(GU, MO), template="business-credit",
        description="面向承接农村污水处理、垃圾清运、村容村貌整治等项目的企业，用于项目建设和运营资金需求。"),
    yjd("兴商", "GONGJIANG", "乡村建设工匠贷", A3, segments=("merchant", "farmer"), amount=(30_000, 500_000),
        term=(6, 36), spread=(100, 300), repayment=(IM, FX, EI), guarantees=(CR, GU), template="personal-credit",
        description="面向取得乡村建设工匠培训合格证明的个体工匠和施工队负责人，用于购置施工机具和垫付材料款。"),
    yjd("惠民", "QICHE", "汽车消费贷", A3, segments=("farmer", "salaried", "general"), amount=(30_000, 300_000),
        term=(12, 60), spread=(100, 300), repayment=(EI,), guarantees=(CR, GU), template="personal-credit",
        description="支持县域居民购买家用汽车及新能源汽车，购车款受托支付给经销商。"),
    yjd("惠民", "SHILAOHUA", "适老化改造贷", A3, segments=("farmer", "general"), amount=(10_000, 200_000),
        term=(12, 60), spread=(50, 250), repayment=(EI, EP), guarantees=(CR, GU), template="personal-credit",
        description="用于老年人家庭加装无障碍设施、防滑扶手、智能看护设备等居家适老化改造。"),
    # ── 乡风文明贷 (12): credit tied to civility and credit ratings ──────────────────────────
    xfwm("支农", "XINYONGHU", "信用户贷", A2, segments=("farmer",), amount=(3_000, 300_000),
         term=(12, 36), spread=(50, 250), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
         description="对经评定的信用户批量授信，按信用等级给予额度和利率优惠，一次核定、随用随贷、余额控制、周转使用。"),
    xfwm("支农", "XINYONGCUN", "信用村贷", A2, segments=("farmer",), amount=(3_000, 300_000),
         term=(12, 36), spread=(50, 250), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
         description="对评定为信用村的行政村整村批量授信，村内农户在基准额度上适当上浮、利率适当下调。"),
    xfwm("惠民", "WENMINGJIATING", "文明家庭贷", A2, segments=("farmer",), amount=(3_000, 200_000),
         term=(12, 36), spread=(30, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="对获评各级文明家庭、星级文明户的农户给予信用贷款和利率优惠，以信贷激励文明乡风。"),
    xfwm("惠民", "XIAOSHAN", "孝善贷", A2, segments=("farmer",), amount=(3_000, 200_000),
         term=(12, 36), spread=(30, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="对积极参与孝善基金、赡养老人表现突出的家庭给予批量授信和利率优惠。"),
    xfwm("惠民", "DAODEMOFAN", "道德模范贷", A3, segments=("farmer", "general"), amount=(10_000, 300_000),
         term=(12, 36), spread=(0, 150), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="面向各级道德模范、“山东好人”等先进个人，给予纯信用贷款和优惠利率。"),
    xfwm("惠民", "ZHIYUANZHE", "志愿者贷", A2, segments=("farmer", "general"), amount=(3_000, 200_000),
         term=(12, 36), spread=(50, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="依据志愿服务时长和星级认定对注册志愿者批量授信，服务积分越高额度越高、利率越低。"),
    xfwm("支农", "JIFEN", "积分贷", A2, segments=("farmer",), amount=(3_000, 300_000),
         term=(12, 36), spread=(50, 250), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
         description="对接村级乡风文明积分制管理，将积分折算为信用额度和利率优惠档次。"),
    xfwm("兴商", "CHENGXINGETIHU", "诚信个体户贷", A3, segments=("merchant",), amount=(30_000, 1_000_000),
         term=(6, 36), spread=(50, 250), repayment=(FX, IM), guarantees=(CR, GU), template="personal-credit",
         description="面向守合同重信用、诚信经营示范的个体工商户，依据经营流水和纳税记录核定额度。"),
    xfwm("助企", "CHENGXINQIYE", "诚信小微企业贷", A4, segments=("small_business",), amount=(200_000, 5_000_000),
         term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(CR, GU), template="business-credit",
         description="面向纳税信用A级、守合同重信用的小微企业，提供信用或保证方式的流动资金贷款。"),
    xfwm("兴商", "WENHUACHANYE", "文化产业贷", A3, segments=("merchant",), amount=(30_000, 1_000_000),
         term=(12, 36), spread=(50, 250), repayment=(IM, EI, FX), guarantees=(CR, GU), template="personal-credit",
         description="面向非遗传承人、乡村手工艺作坊及文化演艺团体，用于传统技艺传承、文创产品开发和经营周转。"),
    xfwm("惠民", "JIAOSHI", "乡村教师贷", A1, segments=("salaried",), amount=(10_000, 200_000),
         term=(1, 36), spread=(50, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="面向在乡镇及村级学校任教的在编教师，依据代发工资和公积金数据线上自动审批、随借随还。"),
    xfwm("惠民", "YISHENG", "乡村医生贷", A3, segments=("salaried", "farmer"), amount=(10_000, 300_000),
         term=(12, 36), spread=(50, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="面向乡村医生和村卫生室经营者，用于个人消费及卫生室设备购置、药品采购等资金需求。"),
    # ── 治理有效贷 (10): village cadres, collective organisations, governance ───────────────
    zlyx("支农", "CUNGANBU", "村干部贷", A3, segments=("farmer",), amount=(30_000, 500_000),
         term=(12, 36), spread=(0, 200), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
         description="面向村“两委”成员，支持其发展产业、带头致富，以信用方式为主，额度参考任职表现和家庭经营情况核定。"),
    zlyx("助企", "JITIJINGJI", "村集体经济组织贷", A4, segments=("small_business",), amount=(100_000, 5_000_000),
         term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(CR, GU), template="business-credit",
         description="面向村股份经济合作社等农村集体经济组织，用于发展集体产业、物业经营和农业社会化服务。"),
    zlyx("兴商", "DANGYUANCHUANGYE", "党员创业贷", A3, segments=("farmer", "merchant"), amount=(30_000, 500_000),
         term=(12, 36), spread=(0, 200), repayment=(IM, FX, EI), guarantees=(CR, GU), template="personal-credit",
         description="面向农村党员创业带富，支持其兴办家庭农场、合作社和个体经营，发挥示范带动作用。"),
    zlyx("惠民", "WANGGEYUAN", "网格员贷", A3, segments=("salaried", "farmer"), amount=(10_000, 200_000),
         term=(12, 36), spread=(50, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="面向参与基层社会治理的专兼职网格员，依据履职考核和家庭收入核定信用额度。"),
    zlyx("助企", "XIANGXIAN", "乡贤贷", A4, segments=("small_business", "merchant"), amount=(200_000, 5_000_000),
         term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(GU, MO, CR), template="business-credit",
         description="面向返乡投资兴业的新乡贤及其创办的企业，用于乡村产业项目建设和经营周转。"),
    zlyx("支农", "ZHIFUDAITOUREN", "致富带头人贷", A3, segments=("new_agri_entity", "farmer"),
         amount=(50_000, 1_000_000), term=(12, 36), spread=(0, 200), repayment=(IM, IP, FX), guarantees=(CR, GU),
         template="personal-credit",
         description="面向经认定的农村致富带头人，支持其扩大生产经营规模并带动周边农户就业增收。"),
    zlyx("助企", "JITIXIANGMU", "村集体项目贷", A6, segments=("small_business",), amount=(500_000, 10_000_000),
         term=(12, 60), spread=(0, 200), repayment=(IP, EP), guarantees=(MO, GU), template="mortgage",
         description="面向村集体经济组织实施的厂房、仓储、冷库等经营性项目，以集体经营性建设用地使用权或地上建筑物抵押。"),
    zlyx("支农", "TUDIGUFEN", "土地股份合作社贷", A4, segments=("new_agri_entity",), amount=(100_000, 3_000_000),
         term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(GU, CR), template="business-credit",
         description="面向以土地经营权入股组建的土地股份合作社，用于统一经营所需的农资采购、农机作业和田间管理。"),
    zlyx("助企", "WUHUANBEN", "集体经济组织无还本续贷", A7, segments=("small_business",),
         amount=(100_000, 5_000_000), term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(CR, GU, MO),
         template="renewal",
         description="对经营正常、贷款即将到期仍有资金需求的村集体经济组织，到期前办理续贷，避免“先还后贷”的资金断档。",
         references=("金规〔2024〕13号《关于做好续贷工作 加强小微企业融资服务的通知》",)),
    zlyx("惠民", "PINGANJIATING", "平安家庭贷", A2, segments=("farmer",), amount=(3_000, 200_000),
         term=(12, 36), spread=(50, 200), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="对评为平安家庭、无讼家庭的农户批量授信，以基层治理成果作为信用增信依据。"),
    # ── 富农贷 (17): farmer income, entrepreneurship and consumption ───────────────────────
    fnd("兴商", "FANXIANGCHUANGYE", "返乡创业贷", A3, segments=("farmer", "merchant"), amount=(30_000, 500_000),
        term=(12, 36), spread=(50, 250), repayment=(IM, EI, FX), guarantees=(CR, GU), template="personal-credit",
        description="面向返乡入乡创业的农民工等群体，用于创办小微实体、购置设备和经营周转。"),
    fnd("惠民", "NONGHUXIAOFEI", "农户消费贷", A3, segments=("farmer",), amount=(10_000, 300_000),
        term=(6, 36), spread=(100, 300), repayment=(EI, FX), guarantees=(CR, GU), template="personal-credit",
        description="满足农户购置家电、教育、医疗、婚嫁等合理消费需求，额度内随借随还。"),
    fnd("支农", "NONGHUJINGYING", "农户经营贷", A3, segments=("farmer",), amount=(10_000, 500_000),
        term=(6, 36), spread=(50, 250), repayment=(IM, FX, IP), guarantees=(CR, GU), template="personal-credit",
        description="满足农户从事种养殖及农村二三产业的日常经营资金需求，按经营周期灵活确定还款方式。"),
    fnd("惠民", "ZHUXUE", "助学贷", A3, segments=("farmer", "general"), amount=(5_000, 200_000),
        term=(12, 60), spread=(0, 150), repayment=(EI, IM), guarantees=(CR, GU), template="personal-credit",
        description="用于农户家庭子女就读高等院校、职业院校的学费和生活费支出，在读期间可按月付息、到期还本。"),
    fnd("惠民", "SAOMAFENQI", "扫码分期贷", A1, segments=("farmer", "general"), amount=(1_000, 50_000),
        term=(3, 24), spread=(100, 300), repayment=(EI,), guarantees=(CR,), template="personal-credit",
        name_in_seed=True,
        description="客户在合作商户扫码即可在线申请、秒批分期，用于县域日常消费，贷款资金直接支付给商户。"),
    fnd("兴商", "GETIGONGSHANGHU", "个体工商户贷", A3, segments=("merchant",), amount=(30_000, 1_000_000),
        term=(6, 36), spread=(100, 300), repayment=(FX, IM), guarantees=(CR, GU), template="personal-credit",
        description="面向县域和乡镇个体工商户，依据经营流水、纳税和收单数据核定额度，满足备货和经营周转需求。"),
    fnd("兴商", "SHANGHULIANBAO", "商户联保贷", A4, segments=("merchant",), amount=(50_000, 1_000_000),
        term=(6, 24), spread=(100, 300), repayment=(IM, FX), guarantees=(JG,), template="personal-guaranteed",
        description="由三至五户经营商户自愿组成联保小组、相互承担连带保证责任，解决商户缺少抵押担保的问题。"),
    fnd("支农", "NONGHULIANBAO", "农户联保贷", A3, segments=("farmer",), amount=(10_000, 300_000),
        term=(6, 36), spread=(50, 250), repayment=(IM, FX, IP), guarantees=(JG,), template="personal-guaranteed",
        description="由农户自愿组成联保小组相互担保，适用于缺乏抵押物的种养殖农户。"),
    fnd("兴商", "JINGUO", "巾帼创业贷", A3, segments=("farmer", "merchant"), amount=(30_000, 500_000),
        term=(12, 36), spread=(0, 200), repayment=(IM, EI, FX), guarantees=(CR, GU), template="personal-credit",
        description="面向农村妇女创业就业，联合妇联推荐优质客户，支持发展家庭手工业、电商和特色种养。"),
    fnd("兴商", "DAXUESHENG", "大学生创业贷", A3, segments=("merchant", "general"), amount=(30_000, 500_000),
        term=(12, 36), spread=(0, 200), repayment=(IM, EI), guarantees=(CR, GU), template="personal-credit",
        description="面向毕业五年内返乡入乡创业的高校毕业生，支持其创办农业项目和小微实体。"),
    fnd("兴商", "JISHISHANGHU", "集市商户贷", A3, segments=("merchant",), amount=(10_000, 300_000),
        term=(3, 12), spread=(100, 300), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
        description="面向农村大集、批发市场的固定摊位商户，依据摊位经营年限和收单流水核定额度，随借随还。"),
    fnd("助企", "DAINONG", "带农增收企业贷", A4, segments=("small_business",), amount=(500_000, 5_000_000),
        term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(GU, MO), template="business-credit",
        description="面向吸纳农民就业、与农户建立利益联结机制的小微企业，额度与带农人数和联农效果挂钩。"),
    fnd("助企", "XIAOWEIDIYA", "小微企业抵押贷", A6, segments=("small_business",), amount=(500_000, 10_000_000),
        term=(12, 60), spread=(0, 200), repayment=(IM, IP, EP), guarantees=(MO,), template="mortgage",
        description="以企业或实际控制人名下房产、土地作抵押，满足县域小微企业生产经营资金需求，可采用最高额抵押循环使用。"),
    fnd("助企", "XIAOWEIXUDAI", "小微企业无还本续贷", A7, segments=("small_business",),
        amount=(100_000, 10_000_000), term=(12, 36), spread=(0, 200), repayment=(IM, IP), guarantees=(CR, GU, MO),
        template="renewal",
        description="对符合条件的小微企业在流动资金贷款到期前办理无还本续贷，支持线上一键续贷，实现转贷“零成本”“无缝隙”。",
        references=("金规〔2024〕13号《关于做好续贷工作 加强小微企业融资服务的通知》",)),
    fnd("兴商", "GETIXUDAI", "个体工商户无还本续贷", A7, segments=("merchant",), amount=(50_000, 3_000_000),
        term=(12, 36), spread=(50, 250), repayment=(IM, IP), guarantees=(CR, GU, MO), template="renewal",
        description="对经营正常、还款意愿良好的个体工商户，在经营性贷款到期前办理无还本续贷。",
        references=("金规〔2024〕13号《关于做好续贷工作 加强小微企业融资服务的通知》",)),
    fnd("惠民", "CUNDANZHIYA", "存单质押贷", A6, segments=("general", "farmer", "merchant"),
        amount=(1_000, 10_000_000), term=(1, 36), spread=(0, 100), repayment=(BL, IM), guarantees=(PL,),
        template="pledge",
        description="以本行或他行定期存单、凭证式国债作质押，质押率不超过质物价值的九成，手续简便、利率优惠。"),
    fnd("兴商", "FANGCHANDIYA", "房产抵押经营贷", A6, segments=("farmer", "merchant"), amount=(100_000, 3_000_000),
        term=(12, 120), benchmark="LPR_5Y", spread=(0, 150), repayment=(IM, IP, EP), guarantees=(MO,),
        template="mortgage",
        description="以借款人或第三人名下城镇房产作抵押，用于农户及个体工商户生产经营，期限最长十年。"),
    # ── 政策性产品 (10) ───────────────────────────────────────────────────────────────────
    policy("兴商", "CHUANGYEDANBAO", "创业担保贷", A5, segments=("merchant", "small_business", "new_citizen"),
           amount=(10_000, 3_000_000), term=(6, 36), spread=(0, 50), repayment=(IM, IP), guarantees=(PG,),
           template="policy-guaranteed", name_in_seed=True,
           published=("amount", "term_months", "guarantee_types"),
           references=("创业担保贷款政策：个人最高20万元、小微企业最高300万元，个人期限不超过3年、小微企业不超过2年，"
                       "借款人承担利率不超过LPR−150BP（公开转载页面，待核对财政部等部门原文）",),
           description="面向人社部门认定的创业人员和小微企业，由创业担保基金提供担保、财政按规定贴息，借款人承担的利率不超过LPR减150个基点。"),
    policy("支农", "LUDANHUINONG", "鲁担惠农贷", A5, segments=("new_agri_entity", "farmer"),
           amount=(100_000, 3_000_000), term=(12, 60), spread=(0, 100), repayment=(IM, IP), guarantees=(PG,),
           template="policy-guaranteed", process="P3D", name_in_seed=True,
           published=("amount", "term_months", "guarantee_types", "time_limits"),
           references=("同一报告：鲁担惠农贷业务办理时间由线下10天缩短到线上3天",
                       "2026年新型农业经营主体金融支持措施：农担担保10万–300万元，担保费率不超过0.8%，"
                       "个人贷款期限最长5年（公开转载页面，待核对原文）"),
           description="与山东省农业融资担保公司合作，面向家庭农场、种养大户、农民合作社等适度规模经营主体，由省农担提供担保，线上办理时限3个工作日。"),
    policy("助企", "RENCAI", "人才贷", A5, segments=("small_business",), amount=(100_000, 10_000_000),
           term=(12, 36), spread=(0, 100), repayment=(IM, IP), guarantees=(CR, GU), template="business-credit",
           name_in_seed=True,
           description="面向经认定的高层次人才及其创办或领办的企业，以信用方式为主，政府风险补偿资金分担损失。"),
    policy("支农", "NONGYEBAOXIAN", "农业保险贷", A5, segments=("farmer", "new_agri_entity"),
           amount=(10_000, 500_000), term=(6, 12), spread=(0, 100), repayment=(BL, IM), guarantees=(CR,),
           template="personal-credit", name_in_seed=True,
           description="与保险机构合作，面向已投保农业保险的农户和新型农业经营主体，以保单增信并约定保险赔款优先偿还贷款。"),
    policy("支农", "HAIYANGMUCHANG", "海洋牧场财补贷", A5, segments=("new_agri_entity", "small_business"),
           amount=(500_000, 10_000_000), term=(12, 36), spread=(0, 100), repayment=(IP, IM), guarantees=(PL, GU),
           template="policy-guaranteed", name_in_seed=True,
           note="收益权质押信息由核心系统质押登记提供，审批流程不采集质押物数据，合同采用政策性担保贷款借款合同文本",
           description="面向海洋牧场建设经营主体，以已获批的财政补助资金作为还款来源之一并办理收益权质押，支持人工鱼礁和深远海养殖设施建设。"),
    policy("支农", "LIANGSHIGUIMO", "粮食规模种植贷", A5, segments=("new_agri_entity", "farmer"),
           amount=(100_000, 3_000_000), term=(6, 12), spread=(0, 100), repayment=(IM, BL), guarantees=(PG, CR),
           template="policy-guaranteed", name_in_seed=True,
           description="面向流转土地规模种植小麦、玉米等粮食作物的种粮大户、家庭农场和合作社，结合农业保险和农担担保，按种植面积核定额度。"),
    policy("支农", "SHESHINONGYE", "设施农业贷", A6, segments=("new_agri_entity", "farmer"),
           amount=(100_000, 3_000_000), term=(12, 60), spread=(0, 100), repayment=(IP, EP, IM), guarantees=(MO, PG),
           template="mortgage", name_in_seed=True,
           description="用于蔬菜大棚、畜禽圈舍、育苗工厂等设施农业建设，以设施所有权或土地经营权抵押，并可叠加农担担保。"),
    policy("兴商", "TUIYIJUNREN", "退役军人创业贷", A5, segments=("merchant", "small_business"),
           amount=(30_000, 500_000), term=(12, 36), spread=(0, 50), repayment=(IM, IP), guarantees=(PG, CR),
           template="policy-guaranteed",
           description="联合退役军人事务部门，面向自主就业退役军人创办的个体工商户和小微企业，享受创业担保和贴息政策。"),
    policy("助企", "RONGZIDANBAO", "政府性融资担保贷", A5, segments=("small_business",),
           amount=(100_000, 10_000_000), term=(12, 36), spread=(0, 150), repayment=(IM, IP), guarantees=(PG,),
           template="policy-guaranteed",
           description="与省担保集团及市级政府性融资担保机构合作，对缺少抵押物的小微企业提供批量担保，担保费率执行降费政策。"),
    policy("支农", "NONGJIGOUZHI", "农机购置补贴贷", A5, segments=("farmer", "new_agri_entity"),
           amount=(10_000, 1_000_000), term=(12, 36), spread=(0, 100), repayment=(EP, IP), guarantees=(PG, MO),
           template="policy-guaranteed",
           description="面向购置补贴目录内农业机械的农户和农机合作社，以农机购置补贴和农担担保增信。"),
    # ── 信e快贷 (11): instant online ─────────────────────────────────────────────────────────
    xekd("惠民", "XIN", "薪e贷", A1, segments=("salaried",), amount=(1_000, 200_000), term=(1, 36),
         spread=(50, 250), repayment=(FX, EI), guarantees=(CR,), template="personal-credit",
         description="面向在本行代发工资的单位职工，依据代发工资数据自动测算额度，线上秒批秒贷、零人工干预。"),
    xekd("惠民", "ZHIYA", "质押e贷", A1, segments=("general", "merchant"), amount=(1_000, 3_000_000), term=(1, 36),
         spread=(0, 100), repayment=(FX, BL), guarantees=(PL,), template="personal-credit",
         note="质押物信息由核心系统质押登记提供，线上流程不采集质押物数据，线上合同暂用个人信用借款合同文本",
         description="以本人在本行的存单、理财产品线上质押，质押率不超过质物价值的九成，期限不超过质物到期日。"),
    xekd("惠民", "ANJIE", "按揭e贷", A1, segments=("general", "salaried"), amount=(1_000, 200_000), term=(1, 36),
         spread=(50, 200), repayment=(EI,), guarantees=(CR,), template="personal-credit",
         description="面向在本行按揭贷款还款记录良好的客户，以按揭还款数据为依据线上发放消费贷款。"),
    xekd("惠民", "BEIYONGJIN", "备用金e贷", A1, segments=("general",), amount=(1_000, 200_000), term=(1, 12),
         spread=(100, 300), repayment=(FX,), guarantees=(CR,), template="personal-credit",
         description="面向本行存量优质客户的线上循环额度，一年内随借随还、按日计息。"),
    xekd("兴商", "SHANG", "商e贷", A1, segments=("merchant",), amount=(10_000, 1_000_000), term=(1, 12),
         spread=(100, 300), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
         description="面向本行收单商户，依据收单流水自动核定额度；超出自动审批额度的申请转线下轻调查办理。"),
    xekd("惠民", "SHEBAO", "社保e贷", A1, segments=("salaried", "general"), amount=(1_000, 200_000), term=(1, 36),
         spread=(50, 250), repayment=(EI, FX), guarantees=(CR,), template="personal-credit",
         description="依据客户授权查询的社会保险缴纳数据自动核定额度，线上申请、自动审批。"),
    xekd("惠民", "XINSHIMIN", "新市民e贷", A1, segments=("new_citizen",), amount=(1_000, 200_000), term=(1, 36),
         spread=(50, 250), repayment=(EI, FX), guarantees=(CR,), template="personal-credit",
         description="面向进城务工、创业及新就业的新市民，依据社保、居住和就业数据线上授信。"),
    xekd("助企", "SHUI", "税e贷", A1, segments=("small_business",), amount=(10_000, 3_000_000), term=(1, 12),
         spread=(50, 200), repayment=(IM, FX), guarantees=(CR,), template="business-credit",
         description="银税互动产品，依据企业授权的纳税数据自动核定额度，满足小微企业短期流动资金需求。"),
    xekd("惠民", "GONGJIJIN", "公积金e贷", A1, segments=("salaried",), amount=(1_000, 200_000), term=(1, 36),
         spread=(50, 250), repayment=(EI, FX), guarantees=(CR,), template="personal-credit",
         description="依据客户授权查询的住房公积金缴存数据自动核定额度，线上秒批秒贷。"),
    xekd("兴商", "FANGDI", "房抵e贷", A6, segments=("merchant", "small_business", "general"),
         amount=(100_000, 10_000_000), term=(12, 120), benchmark="LPR_5Y", spread=(50, 150), repayment=(FX, IM, IP),
         guarantees=(MO,), template="mortgage", channel="online_offline",
         description="线上申请并自动预评估房产价值，线下办理抵押登记，可采用最高额抵押，额度内循环使用。"),
    xekd("支农", "NONGGENG", "农耕e贷", A1, segments=("farmer", "new_agri_entity"), amount=(1_000, 500_000),
         term=(1, 36), spread=(0, 150), repayment=(FX, IM), guarantees=(CR,), template="personal-credit",
         description="依据土地确权、农业补贴、种植保险等外部数据对种植户线上授信，整村授信白名单客户可一键激活。"),
    # ── 信e贷 (1): online application, offline light investigation ───────────────────────────
    Product(code="XED", name="信e贷", system="支农", series="信e贷", archetype=A3,
            segments=("farmer", "new_agri_entity", "merchant", "salaried", "general"), amount=(1_000, 300_000),
            term=(1, 36), spread=(50, 300), repayment=(FX, EI, IM), guarantees=(CR, GU), template="personal-credit",
            name_in_seed=True,
            description="线上线下相结合的标准化信用贷款：人工采集与自动采集相结合，基于1018个风控指标、12类客群打分卡和8类风控模型生成授信，客户自助申贷、签约、放款、还款，支持农商行自主调整。"),
)
# fmt: on


def _amount(yuan: int) -> str:
    return f"{yuan}.00"


def _bindings_and_rules() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, set[str]]]:
    """Per archetype its decision bindings; per rule file its data dictionary and placeholder names.

    A rule whose ``<rule>.fields.json`` or ``<rule>.params.json`` is not written yet contributes
    nothing; once it is, ``--check`` reports the catalog out of date until the script is run again.
    """
    fields: dict[str, dict[str, str]] = {}
    placeholders: dict[str, set[str]] = {}
    for rule in DECISIONS.values():
        fields_file, params_file = RULES_DIR / f"{rule}.fields.json", RULES_DIR / f"{rule}.params.json"
        fields[rule] = json.loads(fields_file.read_text("utf-8")) if fields_file.is_file() else {}
        placeholders[rule] = set(json.loads(params_file.read_text("utf-8"))) if params_file.is_file() else set()
    manifest = json.loads(ARCHETYPE_MANIFEST.read_text("utf-8"))
    bindings = {
        archetype["key"]: {slot["slot"]: DECISIONS[slot["slot"]] for slot in archetype["decision_slots"]}
        for archetype in manifest["archetypes"]
    }
    return bindings, fields, placeholders


def _data_dictionary(decisions: dict[str, str], fields: dict[str, dict[str, str]]) -> dict[str, str]:
    """The fields the bound rules read: the union of their data dictionaries."""
    merged: dict[str, str] = {}
    for rule in sorted(decisions.values()):
        for name, kind in fields[rule].items():
            if merged.setdefault(name, kind) != kind:
                raise SystemExit(f"{rule}.fields.json: field {name} is {kind} here and {merged[name]} in another rule")
    return dict(sorted(merged.items()))


def _rule_parameters(product: Product, decisions: dict[str, str], placeholders: dict[str, set[str]]) -> dict[str, int]:
    """Values for the bound rules' placeholders that follow from the product's own ranges.

    Consumer products stop at 60 at application, the others at 65 (age + term is the rule's business).
    Placeholders not set here (``min_monthly_income``, ``home_province``) keep the rule's default.
    """
    consumer = product.system == "惠民" and product.series != "政策性产品"
    values = {
        "min_age": 18,
        "max_age": 60 if consumer else 65,
        "max_amount": product.amount[1],
        "min_rate_bp": product.spread[0],
        "max_rate_bp": product.spread[1],
    }
    used = set().union(*(placeholders[rule] for rule in decisions.values()))
    return {name: value for name, value in values.items() if name in used}


def _source(product: Product, parts: set[str]) -> dict[str, Any]:
    """Where the figures come from; ``parts`` are the parts of LABELS the document has."""
    illustrative = [
        part
        for part in LABELS
        if part in parts and part not in product.published and (part != "name" or not product.name_in_seed)
    ]
    report = "省联社2024年报告（references第一项）"
    if product.series in ("兴农贷", "宜居贷", "乡风文明贷", "治理有效贷", "富农贷"):
        basis = f"“{product.series}”系列及五大系列73款产品见{report}；"
        basis += (
            "产品名称亦见该报告，归入本系列为本项目拟定"
            if product.name_in_seed
            else "本产品名称与参数为本项目参照同类农商银行公开产品拟定"
        )
    elif product.name_in_seed:
        basis = f"产品名称见{report}；"
        published = "、".join(LABELS[part] for part in product.published)
        basis += f"{published}依据所列公开资料，其余参照同类产品拟定" if published else "参数参照同类产品公开信息拟定"
    else:
        basis = f"“10款政策性信贷产品”见{report}；本产品名称与参数为本项目参照同类政策性产品拟定"
    source: dict[str, Any] = {"basis": basis, "references": [SEED, *product.references]}
    if illustrative:
        source["illustrative"] = illustrative
        labels = "、".join(LABELS[part] for part in illustrative)
        source["note"] = f"{labels}参照同类产品公开信息拟定，仅为示例，上线前须经省联社产品管理部门确认"
    if product.note:
        source["note"] = "；".join(part for part in (source.get("note"), product.note) if part)
    source["as_of"] = AS_OF
    return source


def build(
    product: Product,
    bindings: dict[str, dict[str, str]],
    fields: dict[str, dict[str, str]],
    placeholders: dict[str, set[str]],
) -> dict[str, Any]:
    """The product's resolved configuration document."""
    channel, process = ARCHETYPE_DEFAULTS[product.archetype]
    decisions = bindings[product.archetype]
    rule_parameters = _rule_parameters(product, decisions, placeholders)
    document: dict[str, Any] = {
        "code": product.code,
        "name": product.name,
        "system": product.system,
        "series": product.series,
        "archetype": product.archetype,
        "channel": product.channel or channel,
        "segments": list(product.segments),
        "description": product.description,
        "parameters": {
            "amount": {"min": _amount(product.amount[0]), "max": _amount(product.amount[1])},
            "term_months": {"min": product.term[0], "max": product.term[1]},
            "rate": {"benchmark": product.benchmark, "min_bp": product.spread[0], "max_bp": product.spread[1]},
            "repayment_methods": list(product.repayment),
            "guarantee_types": list(product.guarantees),
        },
        "bindings": {"decisions": decisions},
        "rule_parameters": rule_parameters,
        "time_limits": {"process": product.process or process},
        "contract_template": product.template,
        "data_dictionary": _data_dictionary(decisions, fields),
    }
    if not rule_parameters:  # optional, and an empty object says nothing
        del document["rule_parameters"]
    document["source"] = _source(product, set(document) | set(document["parameters"]))
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> content for every standard product; duplicate codes are a table error."""
    context = _bindings_and_rules()
    files = {f"{product.code}.json": render(build(product, *context)) for product in PRODUCTS}
    if len(files) != len(PRODUCTS):
        raise SystemExit("duplicate product codes in PRODUCTS")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the standard product catalog from its tables.")
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)
    expected = expected_files()
    present = {path.name: path for path in STANDARD_DIR.glob("*.json")}
    if args.check:
        stale = sorted(name for name, path in present.items() if expected.get(name) != path.read_text("utf-8"))
        missing = sorted(expected.keys() - present.keys())
        for name in [*stale, *missing]:
            print(f"out of date: {name}", file=sys.stderr)
        return 1 if stale or missing else 0
    STANDARD_DIR.mkdir(parents=True, exist_ok=True)
    for name in sorted(present.keys() - expected.keys()):  # the folder is generated: drop renamed products
        present[name].unlink()
    for name, content in expected.items():
        (STANDARD_DIR / name).write_text(content, encoding="utf-8")
    print(f"wrote {len(expected)} products to {STANDARD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
