"""What a notification says to the person in whose notification centre it is (Chinese, one line).

The payloads stay the machine's (webhooks read them); this is the line a loan officer reads.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

LEVEL_NAMES = {"none": "正常", "yellow": "提醒", "orange": "超时", "red": "严重超时"}
APPLICATION_EVENTS = {
    "approved": "已批准",
    "rejected": "已拒绝",
    "aborted": "已终止",
    "withdrawn": "已撤回",
    "cancelled": "已取消",
    "completed": "已办结",
    "error": "处理出错，待处理",
    "disbursed": "已放款",
    "renewed": "已续贷",
    "payout_unconfirmed": "结束时放款结果未确认（合同保留，请与核心系统核实）",
}


# the other topics' lines: ``who`` is the applicant (or the application's key), ``step`` the step's
# name; the rest are the payload's own fields
LINES = {
    "task.returned": "「{step}」被退回：{who}（{reason}）",
    "task.assigned": "「{step}」已分派给您：{who}",
    "task.delegated": "「{step}」委托您办理：{who}",
    "absence.substitute": "{absent_name}休假期间（{period}）由您代理其待办任务",
    "calendar.missing": "{year}年工作日历尚未维护，相关时限未能计算",
    "lpr.stale": "LPR报价表已过期（最新报价日{lpr_effective}），请省联社管理员补录",
    "product.template_retired": "省联社模板「{template_name}」已下架（{reason}），贵行{product}仍在售，请决定是否下架",
    "product.template_published": (
        "省联社模板「{template_name}」发布第{version}版，贵行{product}基于第{based_on}版，请比对后变基"
    ),
    "product.publication_submitted": "{submitted_by_name}提交了产品「{product_name}」的发布申请，请复核",
    "product.publication_approved": (
        "产品「{product_name}」的发布申请已由{decided_by_name}复核通过，已发布第{version}版"
    ),
    "product.publication_rejected": "产品「{product_name}」的发布申请被{decided_by_name}驳回：{reason}",
    "product.publication_withdrawn": "{submitted_by_name}已撤回产品「{product_name}」的发布申请，无需复核",
    "product.publication_superseded": (
        "{submitted_by_name}提交的产品「{product_name}」发布申请已作废（{why}），须重新提交"
    ),
}


def summary(topic: str, payload: dict[str, Any]) -> str:
    """The line for ``topic``; a topic without one of its own shows as itself."""
    who = payload.get("applicant_name") or payload.get("business_key") or payload.get("instance_id") or ""
    step = payload.get("step_name") or payload.get("step") or ""
    kind, _, rest = topic.partition(".")
    if kind == "escalation":
        scope, _, level = rest.partition(".")
        name = LEVEL_NAMES.get(level, level)
        return f"「{step}」{name}：{who}" if scope == "task" else f"申请整体办理{name}：{who}"
    if kind == "application":
        return f"申请{APPLICATION_EVENTS.get(rest, rest)}：{who}"
    fields = defaultdict(str, {k: "" if v is None else v for k, v in payload.items()}, who=who, step=step)
    return LINES[topic].format_map(fields) if topic in LINES else topic
