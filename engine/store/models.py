"""The relational model: tenants and users, deployed definitions, instances and their projections.

Instance state is the SpiffWorkflow serialization *without* the spec (specs are cached per
definition). Human tasks are a projection of READY manual tasks so that inboxes are plain queries.
The audit trail is append-only and hash-chained per instance.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from engine.store.types import JsonDocument, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    """The province (省联社) or one of its rural banks; every business row belongs to one."""

    __tablename__ = "tenant"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # province | bank
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OrgUnit(Base):
    """A node of a tenant's organisation tree: head office → branch → sub-branch → grid.

    ``path`` is the chain of ids from the root ("/1/4/9/"), so a subtree is one prefix match.
    """

    __tablename__ = "org_unit"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # head_office | branch | sub_branch | grid
    path: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class User(Base):
    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"), index=True)  # home unit
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # a service account (integrations) logs in with API keys only, never with a password
    is_service: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # tokens issued before this moment are void ("sign out everywhere", password reset, revocation)
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # set while the password is a temporary one (an administrator's reset): it stops working at this
    # moment, and a session signed in with it may do nothing but change it
    temporary_password_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UserRole(Base):
    """A role held in an org unit (and the units below it for supervisors); no unit = the whole tenant."""

    __tablename__ = "user_role"
    __table_args__ = (
        UniqueConstraint("user_id", "role", "org_unit_id"),
        Index("ix_user_role_role_org_unit_id", "role", "org_unit_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))


class UserAbsence(Base):
    """A person's leave (休假、培训、出差) with the colleague who covers their personal work meanwhile
    (``engine.inbox.absences``); one per user, replaced when set again, deleted when ended early."""

    __tablename__ = "user_absence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), unique=True)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str] = mapped_column(String(200), default="")
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UserGroup(Base):
    """A named set of users that tasks can be offered to (candidate groups), e.g. 贷审会委员."""

    __tablename__ = "user_group"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UserGroupMember(Base):
    __tablename__ = "user_group_member"
    group_id: Mapped[int] = mapped_column(ForeignKey("user_group.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True, index=True)


class ApiKey(Base):
    """An integration's credential: it acts as its (service) user. Only a hash of the secret is kept."""

    __tablename__ = "api_key"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # the public part, shown in lists
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RevokedToken(Base):
    """A bearer token signed out before its expiry; kept until it would have expired anyway."""

    __tablename__ = "revoked_token"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class Deployment(Base):
    """One upload of BPMN/DMN files; the unit that is parsed together."""

    __tablename__ = "deployment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class DeploymentResource(Base):
    __tablename__ = "deployment_resource"
    __table_args__ = (UniqueConstraint("deployment_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))  # bpmn | dmn
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)


class ProcessDefinition(Base):
    """An executable process at one version; immutable once written."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("key", "version"), Index("ix_process_definition_key_sha", "key", "sha256"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    # Definitions of other deployments that this one's call activities resolved to at deploy time.
    called_definition_ids: Mapped[list[int]] = mapped_column(JsonDocument, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Product(Base):
    """A credit product: a province template (``template_id`` null) or a bank's local variant.

    ``draft`` is the editable config: the full document for a template, a JSON Merge Patch over
    the template for a local product. Publishing freezes it into a ``ProductVersion``.
    """

    __tablename__ = "product"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), index=True)
    # for a local product: the template version its overrides apply to (moved by rebase)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("product_version.id", use_alter=True))
    name: Mapped[str] = mapped_column(String(200))
    system: Mapped[str] = mapped_column(String(16))
    series: Mapped[str] = mapped_column(String(64), index=True)
    archetype: Mapped[str] = mapped_column(String(64), index=True)
    draft: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # withdrawn from sale (下架): no new applications or variants; running applications go on
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    retired_reason: Mapped[str | None] = mapped_column(String(200))


class ProductVersion(Base):
    """An immutable, content-hashed published version: the resolved config and what it runs."""

    __tablename__ = "product_version"
    __table_args__ = (UniqueConstraint("product_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    # decision slot -> content-hashed rule decision key
    decisions: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("product_version.id"))
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class RuleDecision(Base):
    """A rule decision with the bank's parameters written in; the key carries its content hash."""

    __tablename__ = "rule_decision"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    content: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


REQUEST_SUBMITTED = "submitted"  # the only open state of a publication request; the others are final
REQUEST_STATUSES = (REQUEST_SUBMITTED, "approved", "rejected", "withdrawn", "superseded")


class PublicationRequest(Base):
    """A product manager's request to publish one draft (双人复核): another product manager approves it.

    ``sha256`` pins the draft and the template version it applies to; an approval publishes ``draft``
    only while the product's own draft still hashes the same and it would still publish onto the
    process, rules and forms of ``publishes``, so nothing the checker did not see is ever published.
    ``tenant_id`` is the owner acting: the bank, or the province for a template."""

    __tablename__ = "publication_request"
    __table_args__ = (
        # at most one open request per product: a second submission names the open one (409)
        Index(
            "uq_publication_request_open",
            "product_id",
            unique=True,
            postgresql_where=text("status = 'submitted'"),
            sqlite_where=text("status = 'submitted'"),
        ),
        Index("ix_publication_request_product_id_id", "product_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # submitted | approved | rejected | withdrawn | superseded
    sha256: Mapped[str] = mapped_column(String(64))
    draft: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("product_version.id"))
    # what it changes against the version on sale when it was submitted (null: none was)
    compared_to_version: Mapped[int | None] = mapped_column(Integer)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    note: Mapped[str | None] = mapped_column(String(500))
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # who approved, rejected or withdrew it, or changed the draft it pinned (null: the system)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))  # why it was rejected
    published_version: Mapped[int | None] = mapped_column(Integer)  # what its approval published
    # what approving it would publish, as submitted: the process version, the rule decisions with their
    # content hashes and the forms' (null: submitted before this was recorded)
    publishes: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)


class FormSnapshot(Base):
    """A form as a deploy or publish froze it: its bundled (self-contained) JSON Schema and UI schema,
    stored once per content however many definitions and product versions use it. Plain JSON, not
    PostgreSQL's jsonb: jsonb reorders keys, and the order of a form's fields is how it is laid out."""

    __tablename__ = "form_snapshot"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # engine.forms.definition.form_sha256
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    ui_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class FrozenForm(Base):
    """Which snapshot a process definition's or a product version's user tasks use, by form name:
    what its running instances validate against and show, whatever ``forms/`` holds later."""

    __tablename__ = "frozen_form"
    __table_args__ = (
        UniqueConstraint("definition_id", "name"),
        UniqueConstraint("product_version_id", "name"),
        CheckConstraint("(definition_id IS NULL) <> (product_version_id IS NULL)", name="one_owner"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int | None] = mapped_column(ForeignKey("process_definition.id"))
    product_version_id: Mapped[int | None] = mapped_column(ForeignKey("product_version.id"))
    name: Mapped[str] = mapped_column(String(255))  # form name (``review``), or the start form
    sha256: Mapped[str] = mapped_column(ForeignKey("form_snapshot.sha256"))


OPEN_STATUSES = ("running", "error")  # an instance that has not ended: a failed one still waits for a fix
_OPEN = text("status IN ('running', 'error')")


class ProcessInstance(Base):
    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_process_instance_tenant_status", "tenant_id", "status"),
        # the application list, newest first (a sort of the whole table per page at 300,000 rows)
        Index("ix_process_instance_tenant_created", "tenant_id", "created_at", "id"),
        # one open application per borrower and product in a bank: five parallel submissions by one
        # borrower were five loans
        Index(
            "uq_process_instance_open_application",
            "tenant_id",
            "application_key",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    product_version_id: Mapped[int | None] = mapped_column(ForeignKey("product_version.id"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16))  # running | completed | cancelled | error
    state: Mapped[str] = mapped_column(Text)
    serializer_version: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)  # optimistic lock, checked by fast_rows.update_instance
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    next_timer_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    # the product's process time limit: yellow, orange (= due) and red times
    warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalate_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str] = mapped_column(String(64))
    # the branch or grid the application belongs to: tasks are offered within its org scope
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"), index=True)
    applicant_name: Mapped[str | None] = mapped_column(String(200), index=True)
    applicant_id_masked: Mapped[str | None] = mapped_column(String(32))  # never the full ID number
    # an application's borrower and product, hashed (``engine.inbox.applicant``); None for other processes
    application_key: Mapped[str | None] = mapped_column(String(64))
    # the requested amount in fen (分): what inbox rows and application lists show
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)


class HumanTask(Base):
    """Projection of a READY user/manual task (kept after completion as history)."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_tenant_status", "tenant_id", "status"),
        Index("ix_human_task_tenant_status_ended", "tenant_id", "status", "ended_at"),  # on-time rates by period
        # the inbox: "mine" and "candidate" pages sorted by due time read these in index order
        Index(
            "ix_human_task_inbox_mine",
            "assignee_id",
            "due_at",
            "id",
            postgresql_where=text("status = 'ready'"),
            sqlite_where=text("status = 'ready'"),
        ),
        Index(
            "ix_human_task_inbox_offer",
            "org_unit_id",
            "role",
            "due_at",
            "id",
            postgresql_where=text("status = 'ready' AND assignee_id IS NULL"),
            sqlite_where=text("status = 'ready' AND assignee_id IS NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the SpiffWorkflow task id
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    bpmn_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))  # the BPMN lane
    form: Mapped[str | None] = mapped_column(String(255))  # its UI schema comes with the form
    status: Mapped[str] = mapped_column(String(16))  # ready | completed | cancelled | returned
    # who is offered the task: a role in an org unit (no unit: anywhere in the tenant), plus any
    # explicit candidates in task_candidate
    role: Mapped[str | None] = mapped_column(String(64))
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    duty: Mapped[str | None] = mapped_column(String(32))  # investigate | review | approve | ... (审贷分离)
    priority: Mapped[int] = mapped_column(Integer, default=50, server_default=text("50"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))  # keeps a delegated task
    delegation: Mapped[str | None] = mapped_column(String(16))  # pending | resolved
    # the step clock stops while the task waits for the customer or an outside party
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    pause_reason: Mapped[str | None] = mapped_column(String(200))
    pauses: Mapped[list[list[str]] | None] = mapped_column(JsonDocument)  # ended pauses: [[begin, end], ...] UTC
    # the step's time limit in working time, computed once when the task opens (yellow/orange/red)
    warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    escalate_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # a round reopened by a return (退回): who sent it back, from which step, and why
    returned_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    returned_from: Mapped[str | None] = mapped_column(String(255))
    return_reason: Mapped[str | None] = mapped_column(String(2000))


class TaskCandidate(Base):
    """An explicit candidate user or group of a task (beside the role offer)."""

    __tablename__ = "task_candidate"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("user_group.id"), index=True)


class InstanceDuty(Base):
    """Who did which duty on an application: the record segregation of duties is checked against."""

    __tablename__ = "instance_duty"
    __table_args__ = (Index("ix_instance_duty_instance_user", "instance_id", "user_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    duty: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TaskExclusion(Base):
    """A user barred from a task by segregation of duties, written when the conflict arises so that
    inbox queries exclude them with one indexed anti-join."""

    __tablename__ = "task_exclusion"
    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True, index=True)


class Comment(Base):
    __tablename__ = "comment"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("human_task.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Attachment(Base):
    """A file attached to an application (and the task it was added at); the content is kept here,
    bounded in size, and its SHA-256 is in the audit trail."""

    __tablename__ = "attachment"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("human_task.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SavedFilter(Base):
    """A user's named inbox query."""

    __tablename__ = "saved_filter"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEvent(Base):
    """Append-only, hash-chained: ``hash = sha256(prev_hash + canonical(event))``."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("instance_id", "seq"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"))
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    task_id: Mapped[str | None] = mapped_column(String(36))
    bpmn_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChangeRecord:
    """The columns of a change trail's record (变更留痕): who changed what of an owner, when, from what to
    what. Append-only (triggers) and hash-chained per owner (``engine.store.change_trail``)."""

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        table = cls.__tablename__  # type: ignore[attr-defined]
        return (
            Index(f"ix_{table}_chain", "tenant_id", "seq"),
            Index(f"ix_{table}_at", "at", "id"),  # the list, newest first
        )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # the owner of what changed: a bank, or null for what the province shares with every bank
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    seq: Mapped[int] = mapped_column(Integer)  # place in the owner's chain, from 1
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))  # null: the system or the command line
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    action: Mapped[str] = mapped_column(String(32))  # product.published, role.granted, ...
    subject: Mapped[str] = mapped_column(String(255), index=True)  # product code, username, ...
    version: Mapped[int | None] = mapped_column(Integer)  # the version published or deployed (the catalog's)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChangeHead:
    """The newest link of each owner's chain in a change trail: cutting off the newest records no
    longer matches it, and the writers of one chain queue on its row."""

    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # tenant id; 0: no tenant
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class CatalogChange(ChangeRecord, Base):
    """One change of the product catalog: who changed which product or process (the subject), when,
    from what to what (``engine.catalog.changes``)."""

    __tablename__ = "catalog_change"


class CatalogChangeHead(ChangeHead, Base):
    __tablename__ = "catalog_change_head"


class OrgChange(ChangeRecord, Base):
    """One change of a tenant's organisation or configuration: who created, changed or handed out a
    unit, user, role, group, API key, webhook or calendar setting, when (``engine.org.changes``)."""

    __tablename__ = "org_change"


class OrgChangeHead(ChangeHead, Base):
    __tablename__ = "org_change_head"


class CalendarDay(Base):
    """An admin's word on one day (a holiday, a make-up workday, a typhoon closure); it wins over the
    holiday package. ``tenant_id`` null: province-wide; a bank's own row wins over the province's."""

    __tablename__ = "calendar_day"
    __table_args__ = (UniqueConstraint("tenant_id", "day"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    day: Mapped[date] = mapped_column(Date, index=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(200), default="")


class CalendarYear(Base):
    """A year whose arrangement an admin has entered completely (needed beyond the package's years)."""

    __tablename__ = "calendar_year"
    __table_args__ = (UniqueConstraint("tenant_id", "year"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    year: Mapped[int] = mapped_column(Integer)


class LprQuoteEntry(Base):
    """An LPR announcement entered by the province's administrators (the shipped table ends where the
    release was made); on the same day it wins over the shipped quote. Rates in basis points."""

    __tablename__ = "lpr_quote"
    effective: Mapped[date] = mapped_column(Date, primary_key=True)
    lpr_1y_bp: Mapped[int] = mapped_column(Integer)
    lpr_5y_bp: Mapped[int] = mapped_column(Integer)
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CalendarHours(Base):
    """A tenant's working hours (``tenant_id`` null: the province's default for every bank)."""

    __tablename__ = "calendar_hours"
    __table_args__ = (UniqueConstraint("tenant_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    periods: Mapped[list[list[str]]] = mapped_column(JsonDocument)  # [["08:30", "12:00"], ["13:30", "17:30"]]


class Job(Base):
    """Work the scheduler does when it is due: fire a timer, escalate a clock, deliver a notification.

    The database is the only arbiter: a node acquires due jobs by writing its lease (``lock_owner``,
    ``lock_expires_at``) with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL or under ``BEGIN IMMEDIATE``
    on SQLite, and its result commits only while ``version`` still matches its acquisition.
    """

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_due", "due_at", postgresql_where=text("retries_left > 0"), sqlite_where=text("retries_left > 0")),
        Index("ix_job_subject", "kind", "instance_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # timer | start_timer | escalate | deliver | archive | archive_renew
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    instance_id: Mapped[str | None] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(36), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    retries_left: Mapped[int] = mapped_column(Integer, default=3)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lock_owner: Mapped[str | None] = mapped_column(String(128))
    lock_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Incident(Base):
    """A job that failed its last retry: visible in the API until someone retries or resolves it."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigId, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class Escalation(Base):
    """One level reached by one clock (a task's or a process's): unique, so it happens exactly once."""

    __tablename__ = "escalation"
    __table_args__ = (UniqueConstraint("scope", "subject_id", "level"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # task | process
    subject_id: Mapped[str] = mapped_column(String(36))  # the task's or the instance's id
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"))
    level: Mapped[str] = mapped_column(String(16))  # yellow | orange | red
    due_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)  # when the level was reached (the log's order)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())  # when the scheduler handled it
    actions: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` on a request that starts an instance (an application): the same
    key with the same request answers with the instance the first one started, never a second loan."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_sha256: Mapped[str] = mapped_column(String(64))  # method, path and canonical JSON body
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OutboxMessage(Base):
    """A notification written in the same transaction as what caused it; delivered by jobs."""

    __tablename__ = "outbox_message"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    topic: Mapped[str] = mapped_column(String(64))  # e.g. escalation.orange
    recipients: Mapped[list[int]] = mapped_column(JsonDocument, default=list)  # user ids
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Notification(Base):
    """An outbox message in one recipient's notification centre (消息中心), read or not."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_user_id_id", "user_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_message.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Webhook(Base):
    """A bank's (or the province's) HTTP endpoint for notifications, signed with its own secret."""

    __tablename__ = "webhook"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(200))  # HMAC-SHA256 key; never returned or logged
    topics: Mapped[list[str]] = mapped_column(JsonDocument, default=list)  # prefixes; empty: every topic
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Delivery(Base):
    """One message to one channel (the log, or one webhook): its state, attempts and last error."""

    __tablename__ = "delivery"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_message.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # log | webhook
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("webhook.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed | dropped (webhook deactivated)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# The kinds of document, made by the signing step in this order
CONTRACT_DOCX, CONTRACT_PDF, CONTRACT_SEALED = "contract_docx", "contract_pdf", "contract_sealed"


class Document(Base):
    """A file the platform made for an instance (a contract as Word, as PDF, sealed). The bytes sit
    in blob storage under ``storage_key``; the row keeps what proves them: size and SHA-256.

    A contract of an application that ended without the money moving is void (作废): its seal still
    verifies, so the row says so (``voided_at``, ``void_reason``) for nobody to present it as binding."""

    __tablename__ = "document"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # contract_docx | contract_pdf | contract_sealed
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # a copy handed in is found by its hash
    storage_key: Mapped[str] = mapped_column(String(512))
    contract_no: Mapped[str | None] = mapped_column(String(64), index=True)
    template: Mapped[str | None] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(ForeignKey("document.id"))  # what it was made from
    bpmn_id: Mapped[str | None] = mapped_column(String(255))  # the service task that made it
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)  # e.g. the seal's signer and time
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    void_reason: Mapped[str | None] = mapped_column(String(255))  # the outcome, e.g. "withdrawn: 逾期未签约"


class ArchivePackage(Base):
    """The archived loan file of an ended instance: one BagIt zip, written once, kept until
    ``retention_until``; its SHA-256 here lets anyone check the stored copy."""

    __tablename__ = "archive_package"
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(32))  # approved | rejected | aborted | cancelled | completed
    name: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    file_count: Mapped[int] = mapped_column(Integer)
    timestamped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the TSA's time on the manifest
    retention_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # When the newest timestamp's TSA certificate expires; a renewal job runs ahead of it (None: not yet read).
    evidence_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    renewals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    renewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
