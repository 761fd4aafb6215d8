"""The application's opinion record (审批意见 / 流转意见): every person's decision, round by round.

Every later handler, the auditors and the loan file read who decided what at which step: 调查意见,
审查意见, 审批意见, each committee member's ballot, a return (退回) with its reason. The instance data
cannot say it: a step done again after a return overwrites its fields, so it keeps the last round only.
The record is read from the hash-chained audit trail instead, which keeps every round as it was
submitted and shows any later edit. A step's opinion is the fields its form marks with
``x-creditflow-opinion`` (``engine.forms.opinion_fields``), labelled as the form showed them.

A round is one opening of a step: it begins when a task of the step opens while none is open (a
committee's ballots open together: one round) and ends with its tasks. Names and roles are as of now
(like ``people.json`` in the loan file): the role the step was offered in, once escalation moved it, if
the person holds it, else the person's own first role (an administrator who stepped in).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Forbidden, NotFound
from engine.forms.opinion_fields import OpinionFields, opinion_fields
from engine.masking import mask_text
from engine.org.roles import ROLES, role_for_lane
from engine.services.instance_access import reads
from engine.services.principal import Principal
from engine.store.models import AuditEvent, HumanTask, ProcessInstance, User, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

DECISION, RETURN, DELEGATION, COMMENT, CANCELLATION = "decision", "return", "delegation", "comment", "cancellation"
RETURN_LABEL = "退回"
# the events the record is read from: what people did, and the task openings and moves that place it
EVENTS = (
    "started",
    "task_created",
    "escalated",
    "task_cancelled",
    "task_completed",
    "task_returned",
    "task_resolved",
    "comment_added",
    "cancelled",
)
_CENTS = Decimal("0.01")
_ROLE_ORDER = {code: index for index, code in enumerate(ROLES)}


@dataclass(frozen=True)
class Actor:
    id: int
    username: str | None
    name: str | None
    role: str | None
    role_name: str | None


@dataclass(frozen=True)
class Opinion:
    """One person's act on the application, as the audit event ``seq`` recorded it."""

    seq: int
    kind: str  # decision (a step done), return (退回), delegation (a delegate's finding), comment, cancellation
    at: datetime
    actor: Actor | None
    step: str | None = None
    step_name: str | None = None
    round: int | None = None
    task_id: str | None = None
    opened_at: datetime | None = None  # when the round's task opened
    decision: str | None = None  # the form's own value: approve, reject, return, agree, recommend, …
    decision_label: str | None = None  # as the form showed it: 同意, 反对, 退回补充, …
    proposed_amount: str | None = None  # yuan, two places: 建议金额
    approved_amount: str | None = None  # 批准金额
    term_months: int | None = None
    rate_bp: int | None = None  # spread over the product's benchmark, basis points
    comment: str | None = None
    conditions: str | None = None  # a committee member's 附加条件
    returned_to: str | None = None
    returned_to_name: str | None = None
    reason: str | None = None  # of a return or a cancellation

    def as_json(self) -> dict[str, Any]:
        """Plain JSON (the loan file's ``opinions.json``)."""
        found = asdict(self)
        found["at"] = self.at.isoformat()
        found["opened_at"] = self.opened_at.isoformat() if self.opened_at else None
        return found


@dataclass
class _Round:
    step: str | None
    number: int
    role: str | None
    opened_at: datetime | None


@dataclass
class _Walk:
    """The audit trail read in order: which round each task is, and what each person did."""

    forms: dict[str, OpinionFields]
    lane_roles: dict[str, str]
    rounds: dict[str, int] = field(default_factory=dict)  # step -> rounds opened so far
    open: dict[str, set[str]] = field(default_factory=dict)  # step -> its open task ids
    tasks: dict[str, _Round] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # step -> its Chinese name
    known: dict[str, Any] = field(default_factory=dict)  # each field's latest value (events before `submitted`)
    acts: list[tuple[AuditEvent, _Round | None, dict[str, Any]]] = field(default_factory=list)

    def read(self, event: AuditEvent) -> None:
        payload = event.payload or {}
        kind = event.event_type
        if kind == "started":
            self.known.update(payload.get("data") or {})
        elif kind == "task_created":
            self._opened(event, payload)
        elif kind == "escalated" and event.task_id in self.tasks and (moved := payload.get("reassigned")):
            self.tasks[event.task_id].role = moved.get("to_role")
        elif kind == "task_cancelled":
            self._closed(event)
        elif kind == "task_completed":
            self._act(event, self._decision(event, payload))
            self._closed(event)
        elif kind == "task_returned":
            to = payload.get("to")
            returned = {"decision": RETURN, "decision_label": RETURN_LABEL, "returned_to": to}
            returned |= {"returned_to_name": self.names.get(to), "reason": payload.get("reason")}
            self._act(event, {"kind": RETURN, **returned})
            self._closed(event)
        elif kind == "task_resolved":
            self._act(event, {"kind": DELEGATION, "comment": payload.get("comment")})
        elif kind == "comment_added":
            self._act(event, {"kind": COMMENT, "comment": payload.get("body")})
        elif kind == "cancelled" and event.actor_id is not None:
            self._act(event, {"kind": CANCELLATION, "reason": payload.get("reason")})

    def _act(self, event: AuditEvent, details: dict[str, Any]) -> None:
        """What a person did, placed in its task's round as it stood then (a returned-to task keeps its id)."""
        placed = self.tasks.get(event.task_id or "")
        self.acts.append((event, replace(placed) if placed else None, details))

    def _opened(self, event: AuditEvent, payload: dict[str, Any]) -> None:
        step = event.bpmn_id or ""
        if not self.open.get(step):
            self.rounds[step] = self.rounds.get(step, 0) + 1
        self.open.setdefault(step, set()).add(event.task_id or "")
        lane = payload.get("lane")
        role = payload.get("role") or self.lane_roles.get(lane or "") or role_for_lane(lane)  # a ballot: its lane's
        self.tasks[event.task_id or ""] = _Round(step, self.rounds[step], role, event.created_at)
        if payload.get("name"):
            self.names[step] = payload["name"]

    def _closed(self, event: AuditEvent) -> None:
        self.open.get(event.bpmn_id or "", set()).discard(event.task_id or "")

    def _decision(self, event: AuditEvent, payload: dict[str, Any]) -> dict[str, Any]:
        """A step's opinion: the parts its form marks, from what was submitted."""
        changes = {name: change.get("new") for name, change in (payload.get("changes") or {}).items()}
        submitted = payload.get("submitted")
        # before `submitted` was recorded, a field the step left as it was holds the trail's last value for it
        values = submitted if isinstance(submitted, dict) else {**self.known, **changes}
        self.known.update(changes)
        parts = self.forms.get(event.bpmn_id or "", OpinionFields())
        found = {part: values.get(name) for part, name in parts.fields.items()}
        decision = found.get("decision")
        return {
            "kind": DECISION,
            "decision": str(decision) if decision is not None else None,
            "decision_label": parts.labels.get(str(decision)) if decision is not None else None,
            "proposed_amount": _yuan(found.get("proposed_amount")),
            "approved_amount": _yuan(found.get("approved_amount")),
            "term_months": _whole(found.get("term_months")),
            "rate_bp": _whole(found.get("rate_bp")),
            "comment": found.get("comment"),
            "conditions": found.get("conditions"),
        }


class OpinionService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(self, principal: Principal, instance_id: str) -> list[Opinion]:
        """The record, for whoever reads the application; staff opinions are not a channel's ("勿告知客户")."""
        if principal.is_service:
            raise Forbidden("an integration account reads an application's channel view, not its staff's opinions")
        with self.platform.db.transaction() as session:
            instance = session.get(ProcessInstance, instance_id)
            if not reads(session, principal, instance):
                raise NotFound(f"process instance {instance_id} does not exist")
            return self.record(session, instance)

    def record(self, session: Session, instance: Any, events: list[AuditEvent] | None = None) -> list[Opinion]:
        """The opinions on ``instance`` in the order they were given; ``events``: its trail, if already read."""
        if events is None:
            events = list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.instance_id == instance.id, AuditEvent.event_type.in_(EVENTS))
                    .order_by(AuditEvent.seq)
                )
            )
        binding = None
        if instance.product_version_id is not None:
            binding = self.platform.products.binding(session, instance.product_version_id)
        walk = _Walk(self._forms(session, instance), dict(binding.roles) if binding is not None else {})
        for event in events:
            walk.read(event)
        people = _people(session, {event.actor_id for event, _, _ in walk.acts if event.actor_id is not None})
        return [_opinion(walk, event, placed, details, people) for event, placed, details in walk.acts]

    def _forms(self, session: Session, instance: Any) -> dict[str, OpinionFields]:
        """Each step's opinion parts, from the form its tasks showed (the product's variant of it)."""
        steps = session.execute(
            select(HumanTask.bpmn_id, HumanTask.form)
            .where(HumanTask.instance_id == instance.id, HumanTask.form.is_not(None))
            .distinct()
        )
        tasks = self.platform.tasks
        return {step: opinion_fields(tasks.form_for(form, instance, session)) for step, form in steps}


def _opinion(
    walk: _Walk, event: AuditEvent, placed: _Round | None, details: dict[str, Any], people: dict[int, Any]
) -> Opinion:
    step = event.bpmn_id or (placed.step if placed else None)
    for text in ("comment", "conditions", "reason"):  # the trail masks its payloads; so does every copy of it
        if isinstance(details.get(text), str):
            details[text] = mask_text(details[text])
    return Opinion(
        seq=event.seq,
        at=event.created_at,
        actor=_actor(event.actor_id, placed.role if placed else None, people),
        step=step,
        step_name=walk.names.get(step or "") or (event.payload or {}).get("name"),
        round=placed.number if placed else None,
        task_id=event.task_id,
        opened_at=placed.opened_at if placed else None,
        **details,
    )


def _actor(user_id: int | None, wanted: str | None, people: dict[int, tuple[User, list[str]]]) -> Actor | None:
    """Who acted, in the step's role if they hold it, else in their own first role."""
    if user_id is None:
        return None
    user, held = people.get(user_id, (None, []))
    role = wanted if wanted in held or not held else held[0]
    role_name = ROLES[role].name if role in ROLES else role
    return Actor(user_id, getattr(user, "username", None), getattr(user, "display_name", None), role, role_name)


def _people(session: Session, user_ids: set[int]) -> dict[int, tuple[User, list[str]]]:
    """Each user with the roles they hold, in the catalogue's order."""
    if not user_ids:
        return {}
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(sorted(user_ids))))}
    held: dict[int, set[str]] = {}
    for user_id, role in session.execute(
        select(UserRole.user_id, UserRole.role).where(UserRole.user_id.in_(sorted(user_ids)))
    ):
        held.setdefault(user_id, set()).add(role)
    order = len(_ROLE_ORDER)
    return {
        user_id: (user, sorted(held.get(user_id, ()), key=lambda code: (_ROLE_ORDER.get(code, order), code)))
        for user_id, user in users.items()
    }


def _yuan(value: Any) -> str | None:
    """An amount as the API writes money: yuan with two places."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return str(Decimal(str(value)).quantize(_CENTS))
    except InvalidOperation:
        return mask_text(str(value))


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
