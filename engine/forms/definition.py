"""One form as the server validates and shows it: a self-contained JSON Schema, its UI schema, and
the SHA-256 of both, which names the form's content wherever it is frozen (``form_snapshot``).

Self-contained means bundled as JSON Schema 2020-12 describes (§9.3.1): every shared file the form
``$ref``s sits under ``$defs`` by its file name, with that name as its ``$id``, so the ``$ref``s
resolve inside the document. A frozen form therefore needs nothing from ``forms/`` to validate, and
the hash covers everything that decides what the form accepts and shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from engine.forms.formats import FORMAT_CHECKER
from engine.forms.validation import FormValidator
from engine.store.hash_chain import canonical_json

__all__ = ["SCHEMA_SUFFIX", "UI_SCHEMA_SUFFIX", "FormDefinition", "compile_form", "form_name", "form_sha256"]

SCHEMA_SUFFIX = "-schema.json"
UI_SCHEMA_SUFFIX = "-uischema.json"


@dataclass(frozen=True)
class FormDefinition:
    """A compiled form. Treat ``schema`` and ``ui_schema`` as read-only: the validator shares them."""

    name: str
    schema: dict[str, Any]
    ui_schema: dict[str, Any] | None
    sha256: str
    validator: Validator = field(repr=False, compare=False)


def form_name(reference: str) -> str:
    """The form a user task's reference means: ``review-schema.json``, ``review-uischema.json`` and
    ``review`` all name form ``review`` (BPMN names files, a product config names forms)."""
    for suffix in (UI_SCHEMA_SUFFIX, SCHEMA_SUFFIX):
        if reference.endswith(suffix):
            return reference.removesuffix(suffix)
    return reference


def form_sha256(schema: dict[str, Any], ui_schema: dict[str, Any] | None) -> str:
    """The content address of a form: its (bundled) schema and UI schema, as canonical JSON."""
    return hashlib.sha256(canonical_json({"schema": schema, "ui_schema": ui_schema})).hexdigest()


def compile_form(
    name: str, schema: dict[str, Any], ui_schema: dict[str, Any] | None, sha256: str | None = None
) -> FormDefinition:
    """A form from a self-contained schema; ``sha256`` when it is already known (a stored snapshot).

    Its embedded files are registered once, here: left to jsonschema, every ``$ref`` to one would
    search the whole document again, on every submission."""
    resource = DRAFT202012.create_resource(schema)
    registry: Registry[Any] = Registry().with_resource("", resource).crawl()
    return FormDefinition(
        name=name,
        schema=schema,
        ui_schema=ui_schema,
        sha256=sha256 or form_sha256(schema, ui_schema),
        validator=FormValidator(schema, registry=registry, format_checker=FORMAT_CHECKER),
    )
