"""What a deploy or a publish freezes of the form catalog: the forms its user tasks use, as they are now.

A process definition freezes the form each of its user tasks names (``formJsonSchemaFilename``). A
product version freezes the form each user task of its process uses after the product's
``bindings.forms``, with the product's ``form_overrides`` applied, and the archetype's start data
schema that applications are checked against (``START_FORM``). Running instances validate against
and show what their definition or version froze, whatever ``forms/`` holds later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.catalog.merge_patch import merge_patch
from engine.forms.catalog import FormCatalog
from engine.forms.definition import FormDefinition, compile_form, form_name

START_FORM = "archetype/start_data"  # holds a slash, so it is never the name of a file's form

TaskForms = Iterable[tuple[str, str | None]]  # (user task id, the form its BPMN names, if any)


def form_names(task_forms: TaskForms, bound: Mapping[str, str], start_data: dict[str, Any] | None) -> set[str]:
    """The forms to freeze: those a process's user tasks use once a product's ``bindings.forms`` maps
    some of them, and the start form where there is start data."""
    used = {form_name(reference) for task, named in task_forms if (reference := bound.get(task, named))}
    return used | ({START_FORM} if start_data is not None else set())


def published_form(
    catalog: FormCatalog, name: str, overrides: Mapping[str, Any], start_data: dict[str, Any] | None
) -> FormDefinition:
    """Form ``name`` as a publish freezes it now: the catalog's, with the product's override (keyed
    by form or file name) merged in. KeyError when the catalog has no such form, or for
    ``START_FORM`` when the archetype has no start data; InvalidFormDefinition when the override
    no longer makes a valid form of it."""
    if name == START_FORM:
        if start_data is None:
            raise KeyError("the process has no start data schema")
        return compile_form(START_FORM, start_data, None)
    base = catalog.get(name)
    for key, patch in overrides.items():
        if form_name(key) == base.name:
            return catalog.derive(base.name, merge_patch(base.schema, patch), f"form_overrides.{key}")
    return base


def frozen_forms(
    catalog: FormCatalog,
    task_forms: TaskForms,
    *,
    bound: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    start_data: dict[str, Any] | None = None,
) -> dict[str, FormDefinition]:
    """Every form a definition (or, with a product's bindings, overrides and start data, a product
    version) freezes, by name."""
    names = sorted(form_names(task_forms, bound or {}, start_data))
    return {name: published_form(catalog, name, overrides or {}, start_data) for name in names}


def digests(forms: Mapping[str, FormDefinition]) -> dict[str, str]:
    """Form name -> SHA-256: what a definition or a product version froze, as compared and recorded."""
    return {name: form.sha256 for name, form in forms.items()}
