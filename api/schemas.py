"""Request and response schemas (marshmallow): the API's contract, rendered into OpenAPI."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.integers import Integer
from engine.inbox.queries import LEVELS, SORTS, VIEWS
from engine.inbox.queries import STATUSES as TASK_STATUSES
from engine.masking import mask_text
from engine.services.instances import STATUSES
from engine.services.tasks import MAX_BULK


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = Integer()
    detail = fields.String()
    errors = fields.List(fields.Dict(), metadata={"description": "one entry per problem, naming the field"})


class TokenRequestSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200))


class TokenSchema(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = Integer()
    password_change_required = fields.Boolean(
        metadata={
            "description": "signed in with a temporary password: this token may only change it (POST "
            "/auth/password), read /auth/me and sign out; everything else answers 403"
        }
    )


class PageQuerySchema(Schema):
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = Integer(load_default=0, validate=validate.Range(min=0))


class DefinitionSchema(Schema):
    id = Integer()
    key = fields.String()
    version = Integer()
    name = fields.String(allow_none=True)
    sha256 = fields.String()
    deployment_id = Integer()
    created_at = fields.DateTime()


class DefinitionListSchema(Schema):
    items = fields.List(fields.Nested(DefinitionSchema))
    total = Integer()


class DefinitionQuerySchema(PageQuerySchema):
    key = fields.String()
    latest = fields.Boolean(load_default=False)


class DeployFilesSchema(Schema):
    files = fields.Raw(
        required=True,
        metadata={
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "one or more .bpmn/.dmn files",
        },
    )


class DeployResultSchema(Schema):
    created = fields.Boolean(metadata={"description": "false when identical content was already deployed"})
    definitions = fields.List(fields.Nested(DefinitionSchema))


class MaskedText(fields.String):
    """Free text shown in a list: ID and card numbers someone typed into it are masked on the way out
    (the archived loan file keeps the text as written)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        text = super()._serialize(value, attr, obj, **kwargs)
        return None if text is None else mask_text(text)


class TaskSchema(Schema):
    id = fields.String()
    instance_id = fields.String()
    bpmn_id = fields.String(metadata={"description": "the step"})
    name = fields.String(allow_none=True)
    lane = fields.String(allow_none=True, metadata={"description": "the BPMN lane"})
    role = fields.String(allow_none=True, metadata={"description": "the role the task is offered to"})
    org_unit_id = Integer(allow_none=True, metadata={"description": "the unit whose role holders are offered it"})
    form = fields.String(allow_none=True)
    status = fields.String()
    priority = Integer()
    assignee_id = Integer(allow_none=True)
    owner_id = Integer(allow_none=True, metadata={"description": "keeps a delegated task"})
    delegation = fields.String(allow_none=True, metadata={"description": "pending or resolved"})
    paused_at = fields.DateTime(allow_none=True, metadata={"description": "the step clock is stopped since"})
    pause_reason = fields.String(allow_none=True)
    completed_by_id = Integer(allow_none=True)
    created_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    warn_at = fields.DateTime(allow_none=True, metadata={"description": "turns yellow (80 % of the step's limit)"})
    due_at = fields.DateTime(allow_none=True, metadata={"description": "the step's time limit, in working time"})
    escalate_at = fields.DateTime(allow_none=True, metadata={"description": "turns red (150 %)"})
    level = fields.String(metadata={"description": "SLA colour now: none, yellow, orange or red"})
    returned_by_id = Integer(
        allow_none=True, metadata={"description": "this round was reopened by a return (退回) from this user"}
    )
    returned_from = fields.String(allow_none=True, metadata={"description": "the step (BPMN id) that returned it"})
    return_reason = MaskedText(allow_none=True, metadata={"description": "why it was returned (ID numbers masked)"})


class ApplicationLabelSchema(Schema):
    """What a list shows of the application behind a row: product and requested amount."""

    product_code = fields.String(allow_none=True)
    product_name = fields.String(allow_none=True)
    amount = fields.String(allow_none=True, metadata={"description": 'requested amount in yuan, e.g. "50000.00"'})


class InboxRowSchema(TaskSchema, ApplicationLabelSchema):
    business_key = fields.String(allow_none=True)
    applicant_name = fields.String(allow_none=True)
    applicant_id_masked = fields.String(allow_none=True, metadata={"description": "the ID number, masked"})
    application_org_unit_id = Integer(allow_none=True)
    covering_for = fields.String(
        allow_none=True,
        metadata={"description": "the username of the colleague on leave whose task you cover (休假代理)"},
    )


class TaskListSchema(Schema):
    items = fields.List(fields.Nested(InboxRowSchema))
    total = Integer(metadata={"description": "tasks of the view that match the filters"})
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as `cursor` for the next page"})


class TaskFilterSchema(Schema):
    """The filters of an inbox query (also what a saved filter stores)."""

    view = fields.String(validate=validate.OneOf(VIEWS))
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    product = fields.String(validate=validate.Length(max=64), metadata={"description": "product code"})
    step = fields.String(validate=validate.Length(max=255), metadata={"description": "BPMN id of the step"})
    role = fields.String(validate=validate.Length(max=64))
    due_before = fields.AwareDateTime()
    level = fields.String(validate=validate.OneOf(LEVELS))
    business_key = fields.String(validate=validate.Length(max=255))
    applicant = fields.String(validate=validate.Length(max=200), metadata={"description": "name, prefix match"})
    org_unit = fields.String(validate=validate.Length(max=64), metadata={"description": "unit code, with its subtree"})
    instance_id = fields.String(validate=validate.Length(max=36))
    returned = fields.Boolean(metadata={"description": "only steps reopened by a return (true), or none of them"})
    sort = fields.String(validate=validate.OneOf(SORTS), metadata={"description": "due (default), priority, created"})


class TaskQuerySchema(TaskFilterSchema):
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=1000))
    filter = Integer(metadata={"description": "a saved filter's id; explicit parameters win over it"})


class TaskCountsSchema(Schema):
    counts = fields.Dict(keys=fields.String(), values=Integer(), metadata={"description": "open tasks per view"})


class SavedFilterSchema(Schema):
    id = Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    query = fields.Nested(TaskFilterSchema, required=True)
    created_at = fields.DateTime(dump_only=True)


class SavedFilterListSchema(Schema):
    items = fields.List(fields.Nested(SavedFilterSchema))


class AssignSchema(Schema):
    user_id = Integer(required=True)


class ResolveSchema(Schema):
    comment = fields.String(validate=validate.Length(max=2000))


class PauseSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "who the task waits for, e.g. 等待客户补充材料"},
    )


class ReturnSchema(Schema):
    step = fields.String(required=True, validate=validate.Length(min=1, max=255), metadata={"description": "BPMN id"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class CommentSchema(Schema):
    id = Integer(dump_only=True)
    task_id = fields.String(dump_only=True, allow_none=True)
    author_id = Integer(dump_only=True, allow_none=True)
    body = MaskedText(required=True, validate=validate.Length(min=1, max=4000))
    created_at = fields.DateTime(dump_only=True)


class CommentListSchema(Schema):
    items = fields.List(fields.Nested(CommentSchema))


class AttachmentSchema(Schema):
    id = fields.String()
    task_id = fields.String(allow_none=True)
    filename = fields.String()
    content_type = fields.String()
    size = Integer()
    sha256 = fields.String()
    uploaded_by_id = Integer(allow_none=True)
    created_at = fields.DateTime()


class AttachmentListSchema(Schema):
    items = fields.List(fields.Nested(AttachmentSchema))


class BulkSchema(Schema):
    task_ids = fields.List(
        fields.String(validate=validate.Length(max=36)), required=True, validate=validate.Length(min=1, max=MAX_BULK)
    )


class BulkAssignSchema(BulkSchema):
    user_id = Integer(required=True)


class BulkResultSchema(Schema):
    results = fields.List(fields.Dict(), metadata={"description": "per task: task_id, status (HTTP code), detail"})


class FormSchema(Schema):
    name = fields.String()
    sha256 = fields.String(
        metadata={"description": "the form's content (schema and UI schema) as the application's version froze it"}
    )
    schema = fields.Dict(metadata={"description": "JSON Schema 2020-12, bundled: shared files it uses under $defs"})
    ui_schema = fields.Dict(allow_none=True)


class FrozenFormSchema(Schema):
    name = fields.String(metadata={"description": "the form, or archetype/start_data for what applications start with"})
    sha256 = fields.String(metadata={"description": "as the published version froze it"})
    current_sha256 = fields.String(
        allow_none=True,
        metadata={"description": "as publishing again would freeze it from the form files now (null: gone)"},
    )
    changed = fields.Boolean(metadata={"description": "the form files changed since: publish again to use them"})


class ReturnStepSchema(Schema):
    bpmn_id = fields.String(metadata={"description": "pass as `step` to return here"})
    name = fields.String(allow_none=True)
    completed_by_id = Integer(allow_none=True, metadata={"description": "who did it, and gets it back"})
    ended_at = fields.DateTime()


class ActorSchema(Schema):
    id = Integer()
    username = fields.String(allow_none=True)
    name = fields.String(allow_none=True, metadata={"description": "the display name"})
    role = fields.String(allow_none=True, metadata={"description": "the role they acted in"})
    role_name = fields.String(allow_none=True, metadata={"description": "that role's Chinese name, e.g. 审批岗"})


class OpinionSchema(Schema):
    seq = Integer(metadata={"description": "the audit event it is read from (GET …/history)"})
    kind = fields.String(
        metadata={
            "description": "decision (a step done), return (退回), delegation (a delegate's finding, handed back), "
            "comment, cancellation"
        }
    )
    at = fields.DateTime()
    actor = fields.Nested(ActorSchema, allow_none=True, metadata={"description": "null: the system"})
    step = fields.String(allow_none=True, metadata={"description": "the step (BPMN id)"})
    step_name = fields.String(allow_none=True, metadata={"description": "e.g. 审查, 贷审会表决"})
    round = Integer(allow_none=True, metadata={"description": "1, 2, … each time the step is done again"})
    task_id = fields.String(allow_none=True)
    opened_at = fields.DateTime(allow_none=True, metadata={"description": "when the round's task opened"})
    decision = fields.String(
        allow_none=True, metadata={"description": "the form's value: approve, reject, return, agree, …"}
    )
    decision_label = fields.String(allow_none=True, metadata={"description": "as the form shows it: 同意, 反对, …"})
    proposed_amount = fields.String(allow_none=True, metadata={"description": 'yuan, e.g. "800000.00" (建议金额)'})
    approved_amount = fields.String(allow_none=True, metadata={"description": "yuan (批准金额)"})
    term_months = Integer(allow_none=True)
    rate_bp = Integer(allow_none=True, metadata={"description": "spread over the product's benchmark rate"})
    comment = fields.String(allow_none=True, metadata={"description": "ID and card numbers masked"})
    conditions = fields.String(allow_none=True, metadata={"description": "a committee member's 附加条件"})
    returned_to = fields.String(allow_none=True, metadata={"description": "a return's step (BPMN id)"})
    returned_to_name = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "of a return or a cancellation"})


class OpinionListSchema(Schema):
    items = fields.List(fields.Nested(OpinionSchema), metadata={"description": "in the order they were given"})


class TaskDetailSchema(InboxRowSchema):
    remaining_working_minutes = Integer(
        allow_none=True, metadata={"description": "working time left until the step is due; negative once overdue"}
    )
    data = fields.Dict(
        allow_none=True,
        metadata={"description": "the data the form opens with; a returned step's with what was entered before"},
    )
    form_definition = fields.Nested(FormSchema, allow_none=True)
    return_steps = fields.List(
        fields.Nested(ReturnStepSchema),
        metadata={"description": "the completed earlier steps this task may be returned to (退回), latest first"},
    )
    opinions = fields.List(
        fields.Nested(OpinionSchema),
        metadata={"description": "the application's opinion record so far (GET /process-instances/{id}/opinions)"},
    )


class CompleteTaskSchema(Schema):
    data = fields.Dict(load_default=dict, metadata={"description": "the form data"})


class InstanceSummarySchema(ApplicationLabelSchema):
    id = fields.String()
    definition_key = fields.String()
    definition_version = Integer()
    business_key = fields.String(allow_none=True)
    status = fields.String()
    version = Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    warn_at = fields.DateTime(allow_none=True, metadata={"description": "the process clock turns yellow"})
    due_at = fields.DateTime(allow_none=True, metadata={"description": "the product's process time limit"})
    escalate_at = fields.DateTime(allow_none=True, metadata={"description": "the process clock turns red"})
    level = fields.String(metadata={"description": "the process clock's SLA colour now"})
    remaining_working_minutes = Integer(
        allow_none=True, metadata={"description": "working time left on the process clock (GET of one instance)"}
    )
    org_unit_id = Integer(allow_none=True, metadata={"description": "the branch or grid of the application"})
    applicant_name = fields.String(allow_none=True)
    applicant_id_masked = fields.String(allow_none=True)


class InstanceSchema(InstanceSummarySchema):
    outcome = fields.String(
        allow_none=True,
        metadata={
            "description": "how it ended: approved, rejected, aborted, withdrawn (an application's end event), "
            "cancelled; for another process, its status; null while it runs"
        },
    )
    data = fields.Dict()
    error = fields.Dict(allow_none=True)
    tasks = fields.List(fields.Nested(TaskSchema), metadata={"description": "READY user tasks"})


class InstanceListSchema(Schema):
    items = fields.List(fields.Nested(InstanceSummarySchema))
    total = Integer(allow_none=True, metadata={"description": "all that match; null on the pages after a cursor"})
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as cursor for the next page"})


class InstanceQuerySchema(PageQuerySchema):
    cursor = fields.String(
        validate=validate.Length(min=1, max=500),
        metadata={"description": "a page's next_cursor: the page after it, steady while new applications arrive"},
    )
    status = fields.String(validate=validate.OneOf(STATUSES))
    definition_key = fields.String(validate=validate.Length(max=255))
    business_key = fields.String(validate=validate.Length(max=255))
    product = fields.String(validate=validate.Length(max=64), metadata={"description": "product code"})
    level = fields.String(
        validate=validate.OneOf(LEVELS),
        metadata={"description": "the process clock's SLA colour now (the application monitor's drill-down)"},
    )


class StartInstanceSchema(Schema):
    definition_key = fields.String(required=True, validate=validate.Length(min=1, max=255))
    version = Integer(strict=True, validate=validate.Range(min=1))
    business_key = fields.String(validate=validate.Length(min=1, max=255))
    data = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=200)), load_default=dict)
    org_unit = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "code of the branch or grid the application belongs to (default: your own unit)"},
    )


class CancelSchema(Schema):
    reason = fields.String(validate=validate.Length(max=1000))


class MessageSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    payload = fields.Dict(load_default=dict, metadata={"description": "stored in the waiting task's messageVariable"})


class RetrySchema(Schema):
    data = fields.Dict(load_default=dict, metadata={"description": "corrections applied to the failed task"})


class AuditEventSchema(Schema):
    seq = Integer()
    event_type = fields.String()
    actor_id = Integer(allow_none=True)
    task_id = fields.String(allow_none=True)
    bpmn_id = fields.String(allow_none=True)
    payload = fields.Dict()
    created_at = fields.DateTime()
    prev_hash = fields.String()
    hash = fields.String()


class HistorySchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema))


class HealthSchema(Schema):
    status = fields.String()
    database = fields.String()
    schema = fields.String(metadata={"description": "the migration the database is at (the code's newest)"})


class ProductVersionSchema(Schema):
    id = Integer()
    version = Integer()
    sha256 = fields.String()
    definition_id = Integer()
    decisions = fields.Dict(metadata={"description": "decision slot -> content-hashed rule decision key"})
    published_at = fields.DateTime()


class ProductSchema(Schema):
    code = fields.String()
    name = fields.String()
    system = fields.String()
    series = fields.String()
    archetype = fields.String()
    tenant_id = Integer(allow_none=True)
    template_id = Integer(allow_none=True, metadata={"description": "set for a bank's local product"})
    current_version = Integer(allow_none=True)
    retired_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "withdrawn from sale (下架): no new applications or variants; running ones go on"},
    )
    retired_reason = fields.String(allow_none=True)


class RetireSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "why it is withdrawn, e.g. 政策到期停办"},
    )


class ProductDetailSchema(ProductSchema):
    config = fields.Dict(metadata={"description": "the config of the current published version"})
    forms = fields.List(
        fields.Nested(FrozenFormSchema),
        metadata={"description": "the forms the current published version froze, and whether the files changed"},
    )
    draft = fields.Dict(
        allow_none=True,
        metadata={
            "description": "the editable config (a merge patch for local products); null unless you edit products"
        },
    )


class ProductListSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema))
    total = Integer()


class ProductQuerySchema(PageQuerySchema):
    system = fields.String(validate=validate.OneOf(["支农", "兴商", "助企", "惠民"]))
    series = fields.String(validate=validate.Length(max=64))
    archetype = fields.String(validate=validate.Length(max=64))
    tenant = fields.String(
        validate=validate.Length(max=64), metadata={"description": "a bank's code, or the province's for templates"}
    )
    q = fields.String(
        validate=validate.Length(min=1, max=50),
        metadata={"description": "words of the code or name, e.g. 薪e贷 or dainong (case does not matter)"},
    )
    on_sale = fields.Boolean(metadata={"description": "true: only products on sale; false: only withdrawn ones"})
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=200))


class ProductVersionListSchema(Schema):
    items = fields.List(fields.Nested(ProductVersionSchema))


class ApplicationSchema(Schema):
    applicant = fields.Dict(required=True, metadata={"description": "the borrower: name, id_number, mobile …"})
    data = fields.Dict(load_default=dict, metadata={"description": "amount, term_months and what the rules read"})
    business_key = fields.String(validate=validate.Length(min=1, max=255))
    org_unit = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "code of the branch or grid the application belongs to (default: your own unit)"},
    )


class CloneSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Z][A-Z0-9-]{1,31}$"))
    name = fields.String(validate=validate.Length(min=1, max=200))
    overrides = fields.Dict(load_default=dict, metadata={"description": "JSON Merge Patch over the template"})


class DraftSchema(Schema):
    draft = fields.Dict(
        required=True,
        metadata={"description": "the full config of a template, or a local product's merge patch"},
    )


class DiffSchema(Schema):
    code = fields.String()
    template = fields.String()
    base_version = Integer()
    latest_template_version = Integer()
    changes = fields.List(fields.Dict())
    forms = fields.List(
        fields.Nested(FrozenFormSchema),
        metadata={"description": "the forms the product's published version froze, and whether the files changed"},
    )


class RebaseSchema(Schema):
    code = fields.String()
    from_version = Integer()
    to_version = Integer()
    conflicts = fields.List(fields.Dict(), metadata={"description": "overridden values the province also changed"})


class CalendarDaySchema(Schema):
    day = fields.Date(dump_only=True)
    workday = fields.Boolean(required=True, metadata={"description": "true: a working day; false: a day off"})
    note = fields.String(load_default="", validate=validate.Length(max=200), metadata={"description": "e.g. 台风停业"})
    tenant_id = Integer(dump_only=True, allow_none=True)


class CalendarDayListSchema(Schema):
    items = fields.List(fields.Nested(CalendarDaySchema))


class CalendarQuerySchema(Schema):
    year = Integer(required=True, validate=validate.Range(min=2000, max=2100))
