"""The form catalog: the JSON Schema forms (and their UI schemas) that user tasks reference.

A folder holds three kinds of ``*.json`` file:

* ``<name>-schema.json``: a form, a JSON Schema (draft 2020-12) for a user task's data;
* ``<name>-uischema.json``: the RJSF-style UI schema of form ``<name>`` (optional);
* anything else, e.g. ``common-defs.json``: shared definitions that forms ``$ref`` by file name.

Each form is bundled on loading (``engine.forms.definition``): the shared files it ``$ref``s,
directly or not, are embedded, so what a deploy or publish freezes is the whole form.

Everything is checked when the catalog loads, so a broken file fails at start-up or publish time,
not when a loan officer submits a task: JSON syntax, the draft 2020-12 meta-schema, every ``$ref``
(resolved only within the catalog, by file name; nothing is ever fetched from the network; ``$id`` is
refused), every ``format`` (an unknown one would silently check nothing) and every field's part in the
opinion record (``x-creditflow-opinion``). All broken files are reported at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from engine.errors import CreditFlowError
from engine.forms.definition import SCHEMA_SUFFIX, UI_SCHEMA_SUFFIX, FormDefinition, compile_form
from engine.forms.formats import FORMAT_CHECKER
from engine.forms.opinion_fields import opinion_problems
from engine.json_documents import load_object

__all__ = ["DEFAULT_FORMS_DIR", "FormCatalog", "FormDefinition", "InvalidFormDefinition"]

DEFAULT_FORMS_DIR = Path(__file__).resolve().parents[2] / "forms"
"""The repository's ``forms/`` folder, for a source checkout; deployments pass their own path."""

_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class InvalidFormDefinition(CreditFlowError):
    """One or more form files are broken; ``problems`` has one entry per finding, by file."""

    status = 422
    title = "Invalid form definition"


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a draft 2020-12 JSON Schema, or None."""
    declared = schema.get("$schema", _DRAFT_2020_12)
    if declared != _DRAFT_2020_12:
        return f"$schema must be {_DRAFT_2020_12!r} (got {declared!r})"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        return f"not a valid JSON Schema at {where}: {error.message}"
    return None


def _check_keywords(file_name: str, registry: Registry[Any]) -> tuple[list[str], set[str]]:
    """Check every ``$id``, ``$ref`` and ``format`` in one schema file.

    ``$id`` is refused so that a file's name is its only identity and ``$ref``s mean the same at
    load and at validation time; a form refers to itself as ``#…``, since the bundled form that is
    frozen and validated has no file name. Returns the problems and the other files referred to
    directly.
    """
    problems: list[str] = []
    targets: set[str] = set()
    resolver = registry.resolver(base_uri=file_name)

    def walk(resource: Resource[Any]) -> None:
        contents = resource.contents
        if isinstance(contents, dict):  # boolean subschemas have no keywords
            if "$id" in contents:
                problems.append(f"$id {contents['$id']!r} is not allowed: the file name is the identity")
            if "$ref" in contents:
                ref = contents["$ref"]
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    problems.append(f"$ref {ref!r} does not resolve to a schema in the form catalog")
                else:
                    targets.add(target := urldefrag(urljoin(file_name, ref)).url)
                    if target == file_name and urldefrag(ref).url and file_name.endswith(SCHEMA_SUFFIX):
                        problems.append(f"$ref {ref!r} names the form's own file: write it as '#…'")
            name = contents.get("format")
            if name is not None and name not in FORMAT_CHECKER.checkers:
                problems.append(f"format {name!r} is not checked by this server")
        for sub in resource.subresources():
            walk(sub)

    walk(registry[file_name])
    return problems, targets - {file_name}


class FormCatalog:
    """All forms of one folder, loaded and checked eagerly, with a compiled validator per form.

    ``get`` accepts a form's name (``loan-application``) or either of its file names
    (``loan-application-schema.json``, ``loan-application-uischema.json``), because BPMN user
    tasks reference forms by file name.
    """

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_FORMS_DIR) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"form directory {self.directory} does not exist")
        self._forms: dict[str, FormDefinition] = {}
        self._aliases: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        problems: list[dict[str, Any]] = []
        raw = {path.name: path.read_bytes() for path in sorted(self.directory.glob("*.json"))}
        schemas: dict[str, dict[str, Any]] = {}
        ui_schemas: dict[str, dict[str, Any]] = {}
        for file_name, content in raw.items():
            try:
                document = load_object(content)
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                problems.append({"location": file_name, "message": f"not valid JSON: {error}"})
                continue
            if file_name.endswith(UI_SCHEMA_SUFFIX):
                ui_schemas[file_name.removesuffix(UI_SCHEMA_SUFFIX)] = document
            elif (problem := _schema_problem(document)) is not None:
                problems.append({"location": file_name, "message": problem})
            else:
                schemas[file_name] = document

        registry: Registry[Any] = (
            Registry()
            .with_resources((name, DRAFT202012.create_resource(schema)) for name, schema in schemas.items())
            .crawl()
        )
        self._registry = registry
        self._schemas = schemas
        self.schema_files = frozenset(schemas)  # what a ``$ref`` may name: the catalog's own files
        self._dependencies: dict[str, set[str]] = {}
        for file_name, schema in schemas.items():
            found, self._dependencies[file_name] = _check_keywords(file_name, registry)
            if file_name.endswith(SCHEMA_SUFFIX):
                found += _bundle_clashes(schema.get("$defs"), self.schema_files)
            problems.extend({"location": file_name, "message": message} for message in found)
            problems.extend({"location": file_name, "message": message} for message in opinion_problems(schema))

        form_names = {name.removesuffix(SCHEMA_SUFFIX) for name in raw if name.endswith(SCHEMA_SUFFIX)}
        problems.extend(
            {"location": name + UI_SCHEMA_SUFFIX, "message": f"there is no {name + SCHEMA_SUFFIX}"}
            for name in sorted(ui_schemas.keys() - form_names)
        )
        if problems:
            listed = "; ".join(f"{problem['location']}: {problem['message']}" for problem in problems)
            raise InvalidFormDefinition(f"broken form files in {self.directory}: {listed}", problems)

        for name in sorted(form_names):
            schema_file, ui_file = name + SCHEMA_SUFFIX, name + UI_SCHEMA_SUFFIX
            if name in ui_schemas:
                self._aliases[ui_file] = name
            self._aliases.update({name: name, schema_file: name})
            bundled = self._bundle(schema_file, schemas[schema_file], self._dependencies[schema_file])
            self._forms[name] = compile_form(name, bundled, ui_schemas.get(name))

    def get(self, name: str) -> FormDefinition:
        """The form called ``name`` (or one of its file names); KeyError if there is none."""
        try:
            return self._forms[self._aliases[name]]
        except KeyError:
            raise KeyError(f"no form {name!r} in {self.directory}") from None

    def derive(self, name: str, schema: dict[str, Any], label: str) -> FormDefinition:
        """A variant of form ``name`` with another schema (a bank's product adding or tightening
        fields, as a merge patch over the bundled form), its ``$ref``s resolved against this catalog
        like the shipped forms' and bundled the same way."""
        base = self.get(name)
        own = _unbundled(schema, self.schema_files)
        problem = _schema_problem(own)
        schema_file = base.name + SCHEMA_SUFFIX
        if problem is None:
            resource = DRAFT202012.create_resource(own)
            found, targets = _check_keywords(schema_file, self._registry.with_resource(schema_file, resource))
            problem = "; ".join(found) or None
        if problem is not None:
            raise InvalidFormDefinition(f"{label}: {problem}", [{"location": label, "message": problem}])
        return compile_form(base.name, self._bundle(schema_file, own, targets), base.ui_schema)

    def _bundle(self, file_name: str, schema: dict[str, Any], targets: set[str]) -> dict[str, Any]:
        """``schema`` (of form file ``file_name``) with every catalog file it ``$ref``s, directly or
        not, under ``$defs`` by file name with that name as ``$id``, where its ``$ref``s by file name
        find them. The form itself has no ``$id``: resolving every reference against one cost a URL
        join per ``$ref`` and submission."""
        embedded = {target for start in targets for target in {start, *_closure(start, self._dependencies)}}
        embedded.discard(file_name)
        bundled = dict(schema)
        if embedded:
            shared = {target: {"$id": target, **self._schemas[target]} for target in sorted(embedded)}
            bundled["$defs"] = {**(schema.get("$defs") or {}), **shared}
        return bundled

    def names(self) -> list[str]:
        """Form names, sorted (shared-definition files are not forms)."""
        return sorted(self._forms)

    def __contains__(self, name: object) -> bool:
        return name in self._aliases


def _closure(file_name: str, dependencies: dict[str, set[str]]) -> set[str]:
    """Every file ``file_name`` depends on through ``$ref``, directly or not, without itself."""
    seen: set[str] = set()
    pending = list(dependencies[file_name])
    while pending:
        current = pending.pop()
        if current not in seen and current != file_name:
            seen.add(current)
            pending.extend(dependencies[current])
    return seen


def _bundle_clashes(definitions: Any, catalog_files: frozenset[str]) -> list[str]:
    """A form's own ``$defs`` entries named like a catalog file: bundling embeds that file there."""
    clashes = sorted(set(definitions) & catalog_files) if isinstance(definitions, dict) else []
    return [f"$defs {name!r} is the name of a catalog file, which bundling puts there" for name in clashes]


def _unbundled(schema: dict[str, Any], catalog_files: frozenset[str]) -> dict[str, Any]:
    """A bundled form (or a merge patch's result over one) without what bundling added: the
    embedded catalog files, which bundling puts back from the catalog itself."""
    own = dict(schema)
    definitions = schema.get("$defs")
    if isinstance(definitions, dict):
        kept = {key: value for key, value in definitions.items() if key not in catalog_files}
        if kept:
            own["$defs"] = kept
        else:
            del own["$defs"]
    return own
