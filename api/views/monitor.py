"""The overdue monitor (超时监控): open tasks by SLA level per group, on-time rates per step, and the
escalation log (预警升级记录) of the levels clocks reached.

All answer JSON, or CSV for Excel with ``format=csv`` or ``Accept: text/csv``: UTF-8 with a byte order mark,
without which Excel reads the Chinese names as GBK and garbles them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Response, current_app, request
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.integers import Integer
from api.security import current_principal, requires
from engine.inbox.queries import LEVELS
from engine.org.roles import MONITOR_READ
from engine.services.monitor import APPLICATION_GROUPS, GROUPS, ZONE

ESCALATION_LEVELS = LEVELS[1:]  # a clock below yellow has not escalated

blp = Blueprint("monitor", __name__, url_prefix="/api/v1/monitor", description="Overdue monitor")
escalations_blp = Blueprint(
    "escalations", __name__, url_prefix="/api/v1/escalations", description="Escalation log (预警升级记录)"
)

FORMATS = ("json", "csv")
CSV_RESPONSE: dict[str, Any] = {
    "schema": {"type": "string", "format": "binary"},
    "content_type": "text/csv",
    "success": True,
    "description": "JSON, or CSV with format=csv or Accept: text/csv",
}
# A cell Excel would run as a formula (CSV injection): names come from admins and product managers.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class MonitorQuerySchema(Schema):
    bank = fields.String(validate=validate.Length(max=64), metadata={"description": "a bank's tenant code"})
    branch = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "unit code: applications of this unit and the units below it"},
    )
    product = fields.String(validate=validate.Length(max=64), metadata={"description": "product code"})
    format = fields.String(
        validate=validate.OneOf(FORMATS), metadata={"description": "csv: a spreadsheet (also with Accept: text/csv)"}
    )


class ApplicationsQuerySchema(MonitorQuerySchema):
    group_by = fields.String(load_default="level", validate=validate.OneOf(APPLICATION_GROUPS))
    level = fields.String(validate=validate.OneOf(LEVELS))


class OverdueQuerySchema(ApplicationsQuerySchema):
    group_by = fields.String(load_default="level", validate=validate.OneOf(GROUPS))
    step = fields.String(validate=validate.Length(max=255), metadata={"description": "BPMN id of the step"})


class OnTimeQuerySchema(MonitorQuerySchema):
    start = fields.Date(required=True, data_key="from", metadata={"description": "first day, Asia/Shanghai"})
    end = fields.Date(required=True, data_key="to", metadata={"description": "last day, included (at most 366 days)"})


class EscalationQuerySchema(MonitorQuerySchema):
    start = fields.Date(
        data_key="from", metadata={"description": "first day, Asia/Shanghai (default: 6 days before to)"}
    )
    end = fields.Date(data_key="to", metadata={"description": "last day, included (default: today; at most 366 days)"})
    level = fields.String(validate=validate.OneOf(ESCALATION_LEVELS))
    scope = fields.String(
        validate=validate.OneOf(("task", "process")), metadata={"description": "a step's clock or the application's"}
    )
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200), metadata={"description": "JSON only"})
    offset = Integer(load_default=0, validate=validate.Range(min=0), metadata={"description": "JSON only"})


class LevelCountsSchema(Schema):
    key = fields.String(
        allow_none=True,
        metadata={"description": "the level, tenant code, unit code, product code or step id; null: none"},
    )
    name = fields.String(allow_none=True)
    bank = fields.String(allow_none=True, metadata={"description": "branch rows: the branch's bank"})
    none = Integer(metadata={"description": "before the yellow threshold, or without a time limit"})
    yellow = Integer(metadata={"description": "提醒: past 80 % of the limit"})
    orange = Integer(metadata={"description": "超时: past the due time"})
    red = Integer(metadata={"description": "严重超时: past 150 % of the limit"})
    total = Integer()


class OverdueSchema(Schema):
    group_by = fields.String()
    as_of = fields.AwareDateTime(metadata={"description": "the levels are those at this moment"})
    items = fields.List(fields.Nested(LevelCountsSchema), metadata={"description": "groups, most overdue first"})


class StepRateSchema(Schema):
    step = fields.String(metadata={"description": "BPMN id of the step"})
    name = fields.String(allow_none=True)
    completed = Integer(metadata={"description": "completed in the period, with a due time"})
    on_time = Integer(metadata={"description": "completed by their due time"})
    overdue = Integer()
    rate = fields.Float(metadata={"description": "on_time / completed, 4 decimals"})


class EscalationSchema(Schema):
    id = Integer()
    scope = fields.String(metadata={"description": "task: a step's clock; process: the application's"})
    level = fields.String()
    level_name = fields.String(metadata={"description": "提醒, 超时 or 严重超时"})
    reached_at = fields.AwareDateTime(metadata={"description": "when the clock passed the level's threshold"})
    handled_at = fields.AwareDateTime(metadata={"description": "when the scheduler acted on it"})
    instance_id = fields.String()
    business_key = fields.String(allow_none=True)
    applicant_name = fields.String(allow_none=True)
    bank = fields.String(allow_none=True)
    unit = fields.String(allow_none=True, metadata={"description": "the application's unit code"})
    unit_name = fields.String(allow_none=True)
    product = fields.String(allow_none=True)
    product_name = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    step = fields.String(allow_none=True)
    step_name = fields.String(allow_none=True)
    notified = fields.List(fields.String(), metadata={"description": "usernames of the people told"})
    reassigned_to_role = fields.String(allow_none=True, metadata={"description": "red on a step: the task moved here"})


class EscalationPageSchema(Schema):
    start = fields.Date(data_key="from")
    end = fields.Date(data_key="to")
    total = Integer()
    items = fields.List(fields.Nested(EscalationSchema), metadata={"description": "newest first"})


class OnTimeSchema(Schema):
    start = fields.Date(data_key="from")
    end = fields.Date(data_key="to")
    items = fields.List(fields.Nested(StepRateSchema), metadata={"description": "steps, lowest rate first"})


def _service() -> Any:
    return current_app.extensions["creditflow"].monitor


def _wants_csv(query: dict[str, Any]) -> bool:
    if "format" in query:
        return query["format"] == "csv"
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _local_time(value: str | None) -> str | None:
    return None if value is None else f"{datetime.fromisoformat(value).astimezone(ZONE):%Y-%m-%d %H:%M:%S}"


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _csv(
    rows: Iterable[dict[str, Any]], columns: list[str], filename: str, local_times: Iterable[str] = ()
) -> Response:
    """A spreadsheet download: a header row of the JSON field names, then one row per item. Times
    (``local_times``) are Beijing wall-clock time, as Excel shows them: a UTC time put 02:00 on
    2 December on the 1st."""
    local = set(local_times)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(
        [_local_time(row[column]) if column in local else _cell(row[column]) for column in columns] for row in rows
    )
    response = Response(out.getvalue().encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


@blp.route("/overdue", methods=["GET"])
@blp.arguments(OverdueQuerySchema, location="query")
@blp.response(200, OverdueSchema)
@blp.alt_response(200, **CSV_RESPONSE)
@requires(MONITOR_READ)
def overdue(query: dict[str, Any]) -> Any:
    """Open tasks by SLA level now, per level, bank, branch (the application's), product or step."""
    filters = {name: query.get(name) for name in ("bank", "branch", "product", "step", "level")}
    return _level_answer(_service().overdue(current_principal(), query["group_by"], **filters), query, "overdue")


@blp.route("/applications", methods=["GET"])
@blp.arguments(ApplicationsQuerySchema, location="query")
@blp.response(200, OverdueSchema)
@blp.alt_response(200, **CSV_RESPONSE)
@requires(MONITOR_READ)
def applications(query: dict[str, Any]) -> Any:
    """Open applications by the SLA level of their process clock now, per level, bank, branch or
    product, those waiting outside the bank (for a signature, a guarantee) included."""
    filters = {name: query.get(name) for name in ("bank", "branch", "product", "level")}
    report = _service().applications(current_principal(), query["group_by"], **filters)
    return _level_answer(report, query, "applications")


def _level_answer(report: Any, query: dict[str, Any], subject: str) -> Any:
    """A level report as JSON, or as a spreadsheet named after it and its moment."""
    if not _wants_csv(query):
        return report
    columns = [name for name in LevelCountsSchema().fields if name != "bank" or report.group_by == "branch"]
    filename = f"{subject}-by-{report.group_by}-{report.as_of:%Y%m%dT%H%M%SZ}.csv"
    return _csv(LevelCountsSchema(many=True).dump(report.items), columns, filename)


@blp.route("/on-time", methods=["GET"])
@blp.arguments(OnTimeQuerySchema, location="query")
@blp.response(200, OnTimeSchema)
@blp.alt_response(200, **CSV_RESPONSE)
@requires(MONITOR_READ)
def on_time(query: dict[str, Any]) -> Any:
    """Per step, the share of tasks completed in the period (Asia/Shanghai days) that ended by their due time."""
    filters = {name: query.get(name) for name in ("bank", "branch", "product")}
    report = _service().on_time(current_principal(), query["start"], query["end"], **filters)
    if not _wants_csv(query):
        return report
    filename = f"on-time-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"
    return _csv(StepRateSchema(many=True).dump(report.items), list(StepRateSchema().fields), filename)


@escalations_blp.route("", methods=["GET"])
@escalations_blp.arguments(EscalationQuerySchema, location="query")
@escalations_blp.response(200, EscalationPageSchema)
@escalations_blp.alt_response(200, **CSV_RESPONSE)
@requires(MONITOR_READ)
def escalations(query: dict[str, Any]) -> Any:
    """Levels reached by step and application clocks in the period, newest first; CSV holds the whole period."""
    log = current_app.extensions["creditflow"].escalation_log
    filters = {name: query.get(name) for name in ("start", "end", "bank", "product", "level", "scope")}
    filters["unit"] = query.get("branch")
    if not _wants_csv(query):
        return log.list(current_principal(), **filters, limit=query["limit"], offset=query["offset"])
    page = log.export(current_principal(), **filters)
    filename = f"escalations-{page.start:%Y%m%d}-{page.end:%Y%m%d}.csv"
    columns = list(EscalationSchema().fields)
    return _csv(EscalationSchema(many=True).dump(page.items), columns, filename, ("reached_at", "handled_at"))
