"""Response rows shared by views: a task as the inbox and the instance views show it."""

from __future__ import annotations

from typing import Any

from flask import current_app

from api.schemas import TaskSchema
from engine.inbox.applicant import yuan

_TASK_FIELDS = [name for name in TaskSchema().fields if name != "level"]


def task_row(task: Any, level: str) -> dict[str, Any]:
    """The task row's own fields as TaskSchema lists them, with the SLA level computed by the service."""
    return {**{name: getattr(task, name) for name in _TASK_FIELDS}, "level": level}


def inbox_row(view: Any) -> dict[str, Any]:
    """A task with what an inbox shows of its application (the ID number only masked)."""
    instance = view.instance
    return {
        **task_row(view.task, view.level),
        "business_key": instance.business_key,
        "applicant_name": instance.applicant_name,
        "applicant_id_masked": instance.applicant_id_masked,
        "application_org_unit_id": instance.org_unit_id,
        "covering_for": view.covering_for,
        **application_label(instance),
    }


def application_label(instance: Any) -> dict[str, Any]:
    """The product and requested amount of the application an instance (or a task's instance) is."""
    label = current_app.extensions["creditflow"].products.label(instance.product_version_id)
    code, name = label or (None, None)
    return {"product_code": code, "product_name": name, "amount": yuan(instance.amount_fen)}
