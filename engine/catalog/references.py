"""What a product config names in its process and its bank, checked at publish time.

``validate_product_config`` knows the archetype by key only. Publishing also knows the deployed
process (its lanes, user tasks and decision slots, from the parsed BPMN) and the organisation the
product runs in (the role catalogue, and the users and groups of the product's own tenant), and
refuses a config whose bindings name something that is not there or cannot work: a lane mapped to
a role nobody can hold leaves the application in nobody's inbox; a step limit on a task the process
does not have never runs; a form override requiring a field the form does not show can never be
completed. Every problem is ``{"field": "<config path>", "message": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.org.roles import ROLES, TASKS_WORK, Role, role_for_lane

Problem = dict[str, str]


@dataclass(frozen=True)
class ProcessOutline:
    """The parts of a deployed process a product config may name."""

    key: str
    user_tasks: frozenset[str]  # user task ids: the steps (forms, step limits)
    lanes: frozenset[str]  # lanes holding user tasks (role mapping, assignment)
    decision_slots: frozenset[str]  # business-rule tasks' calledDecisionId
    # (user task id, the form its BPMN names or None): what a deploy or publish freezes
    task_forms: frozenset[tuple[str, str | None]]

    @classmethod
    def of(cls, key: str, specs: Iterable[Any]) -> ProcessOutline:
        """From parsed process specs (the process and its subprocesses)."""
        tasks, lanes, slots, forms = set(), set(), set(), set()
        for spec in specs:
            for task in spec.task_specs.values():
                bpmn_id = getattr(task, "bpmn_id", None)
                if bpmn_id is None:
                    continue
                if getattr(task, "manual", False):
                    tasks.add(bpmn_id)
                    properties = (getattr(task, "extensions", None) or {}).get("properties") or {}
                    forms.add((bpmn_id, properties.get("formJsonSchemaFilename")))
                    if getattr(task, "lane", None):
                        lanes.add(task.lane)
                decision = getattr(task, "decision", None)
                if isinstance(decision, str):
                    slots.add(decision)
        return cls(key, frozenset(tasks), frozenset(lanes), frozenset(slots), frozenset(forms))


@dataclass(frozen=True)
class Organisation:
    """Whom a product's assignment may name: the users and groups of the product's own bank.

    ``tenant`` is None for a province template, which every bank runs: it may name no users or
    groups, since those belong to one bank."""

    tenant: str | None
    users: Mapping[str, bool]  # username -> active, for the usernames the config names in the tenant
    groups: frozenset[str]  # the group codes of the tenant that the config names


def process_problems(config: Mapping[str, Any], process: ProcessOutline) -> list[Problem]:
    """Task ids, lanes and decision slots the config names that ``process`` does not have, and
    decision slots it has that the config leaves unbound (their rule would not be found)."""
    bindings = _section(config, "bindings")
    problems: list[Problem] = []
    tasks, lanes = sorted(process.user_tasks), sorted(process.lanes)
    for field, names in (
        ("bindings.forms", _section(bindings, "forms")),
        ("time_limits.steps", _section(_section(config, "time_limits"), "steps")),
    ):
        problems.extend(
            {
                "field": f"{field}.{task}",
                "message": f"{process.key} has no user task {task!r} (tasks: {_listed(tasks)})",
            }
            for task in names
            if task not in process.user_tasks
        )
    for field in ("bindings.roles", "bindings.assignment"):
        problems.extend(
            {
                "field": f"{field}.{lane}",
                "message": f"{process.key} has no lane {lane!r} with user tasks (lanes: {_listed(lanes)})",
            }
            for lane in _section(bindings, field.split(".")[1])
            if lane not in process.lanes
        )
    bound = _section(bindings, "decisions")
    problems.extend(
        {"field": f"bindings.decisions.{slot}", "message": f"{process.key} has no business-rule task {slot!r}"}
        for slot in bound
        if slot not in process.decision_slots
    )
    problems.extend(
        {
            "field": f"bindings.decisions.{slot}",
            "message": f"{process.key} runs the decision slot {slot!r}: bind a rule to it",
        }
        for slot in sorted(process.decision_slots)
        if slot not in bound
    )
    return problems


# Credit decisions in order of authority: a product may move a decision to a more senior role (the
# approval to the 分管行长), never to a junior one (the review to the loan officers, the approval to
# the village helpers), and a committee vote only to committee members.
_SENIORITY = ("review", "approve", "senior_approve")


def role_problems(config: Mapping[str, Any]) -> list[Problem]:
    """Each lane must map to a role of the role catalogue whose holders work on tasks and who may take
    the lane's credit decision."""
    problems: list[Problem] = []
    for lane, code in _section(_section(config, "bindings"), "roles").items():
        role = ROLES.get(code) if isinstance(code, str) else None
        field = f"bindings.roles.{lane}"
        if role is None:
            problems.append({"field": field, "message": f"no role {code!r} (roles: {_listed(sorted(ROLES))})"})
        elif TASKS_WORK not in role.permissions:
            problems.append({"field": field, "message": f"role {code!r} ({role.name}) does not work on tasks"})
        elif (message := _authority_problem(lane, role)) is not None:
            problems.append({"field": field, "message": message})
    return problems


def _authority_problem(lane: str, role: Role) -> str | None:
    """Why ``role`` may not take the credit decision of ``lane`` (None: it may, or the lane decides nothing)."""
    own = ROLES.get(role_for_lane(lane) or "")
    decides = own.duty if own is not None else None
    if decides == "vote" and role.duty != "vote":
        return f"the {lane} lane is a credit committee vote: only a committee role may vote, not {role.name}"
    if decides in _SENIORITY and (
        role.duty not in _SENIORITY or _SENIORITY.index(role.duty) < _SENIORITY.index(decides)
    ):
        return (
            f"the {lane} lane takes a credit decision ({own.name}); {role.name} may not: "
            "map it to a role at least as senior"
        )
    return None


def named_candidates(config: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The usernames and group codes the config's assignment names."""
    users: set[str] = set()
    groups: set[str] = set()
    for entry in _section(_section(config, "bindings"), "assignment").values():
        if isinstance(entry, Mapping):
            users |= {u for u in entry.get("candidate_users") or () if isinstance(u, str)}
            groups |= {g for g in entry.get("candidate_groups") or () if isinstance(g, str)}
    return users, groups


def organisation_problems(config: Mapping[str, Any], organisation: Organisation) -> list[Problem]:
    """Candidate users must be active users, and candidate groups groups, of the product's own bank."""
    problems: list[Problem] = []
    for lane, entry in _section(_section(config, "bindings"), "assignment").items():
        if not isinstance(entry, Mapping):
            continue
        for kind in ("candidate_users", "candidate_groups"):
            for index, name in enumerate(entry.get(kind) or ()):
                message = _candidate_problem(organisation, kind, name)
                if message is not None:
                    problems.append({"field": f"bindings.assignment.{lane}.{kind}.{index}", "message": message})
    return problems


def _candidate_problem(organisation: Organisation, kind: str, name: str) -> str | None:
    """Why a candidate user or group cannot be offered the product's tasks, or None."""
    noun = "users" if kind == "candidate_users" else "groups"
    if organisation.tenant is None:
        return f"a province template names no {noun}: each bank names its own in its local product"
    if kind == "candidate_groups":
        return None if name in organisation.groups else f"no group {name!r} in {organisation.tenant}"
    if name not in organisation.users:
        return f"no user {name!r} in {organisation.tenant}"
    return None if organisation.users[name] else f"user {name!r} is deactivated"


_APPLICATORS = ("if", "then", "else", "not")
_APPLICATOR_LISTS = ("allOf", "anyOf", "oneOf")


def undefined_required(schema: Mapping[str, Any], path: str, known: frozenset[str] = frozenset()) -> list[Problem]:
    """Required names a form schema does not define as properties: such a form can never be
    completed. ``path`` is the schema's config path; subschemas of ``if``/``then``/``allOf``… see
    their object's properties, nested objects (``properties``, ``items``) only their own. A schema
    whose properties come from elsewhere (``$ref``, ``patternProperties``) is not judged."""
    if "$ref" in schema or "patternProperties" in schema:
        return []
    properties = schema.get("properties")
    defined = known | (frozenset(properties) if isinstance(properties, Mapping) else frozenset())
    problems: list[Problem] = []
    required = schema.get("required")
    if isinstance(required, list):
        missing = [name for name in required if name not in defined]
        if missing:
            problems.append(
                {"field": f"{path}.required", "message": f"requires {_listed(missing)}, which the form does not have"}
            )
    for key in _APPLICATORS:
        sub = schema.get(key)
        if isinstance(sub, Mapping):
            problems.extend(undefined_required(sub, f"{path}.{key}", defined))
    for key in _APPLICATOR_LISTS:
        subs = schema.get(key)
        if isinstance(subs, list):
            for index, sub in enumerate(subs):
                if isinstance(sub, Mapping):
                    problems.extend(undefined_required(sub, f"{path}.{key}.{index}", defined))
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            if isinstance(sub, Mapping):
                problems.extend(undefined_required(sub, f"{path}.properties.{name}"))
    items = schema.get("items")
    if isinstance(items, Mapping):
        problems.extend(undefined_required(items, f"{path}.items"))
    return problems


def _section(document: Any, key: str) -> Mapping[str, Any]:
    found = document.get(key) if isinstance(document, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _listed(values: Iterable[Any]) -> str:
    return ", ".join(str(value) for value in values)


# The product parameter lists whose values an application's data field takes (and a rule may read).
OFFERED_CHOICES = {"guarantee_types": "guarantee_type", "repayment_methods": "repayment_method", "segments": "segment"}


def rule_choice_problems(
    config: Mapping[str, Any], rule_inputs: Mapping[str, Mapping[str, Any]], segment_mapping: Mapping[str, str]
) -> list[Problem]:
    """Every value the product offers must be one each bound rule accepts: an offered guarantee type that
    a rule's input schema does not list fails every such application at that rule, after it was taken.
    Segments are compared in the rules' vocabulary (``segment_mapping``)."""
    parameters = _section(config, "parameters")
    problems: list[Problem] = []
    for slot, rule in sorted(_section(_section(config, "bindings"), "decisions").items()):
        properties = _section(rule_inputs.get(rule) or {}, "properties")
        for parameter, field in OFFERED_CHOICES.items():
            accepted = _section(properties, field).get("enum")
            offered = parameters.get(parameter)
            if not isinstance(accepted, list) or not isinstance(offered, list):
                continue
            values = [segment_mapping.get(v, v) for v in offered] if parameter == "segments" else offered
            refused = sorted({str(v) for v in values if v not in accepted})
            if refused:
                message = f"rule {rule} (slot {slot}) does not accept {field} {', '.join(refused)}"
                problems.append({"field": f"parameters.{parameter}", "message": message})
    return problems
