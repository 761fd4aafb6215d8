"""Contract templates: Word files with docxtpl (Jinja) tags, one per product contract type, kept in
one directory and addressed by name."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docxtpl import DocxTemplate
from jinja2 import Environment, StrictUndefined

# The product configuration's contract_template pattern: a name can never reach outside the directory.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SUFFIX = ".docx"


class UnknownTemplate(LookupError):
    """A contract template name that is malformed or has no file."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no contract template named {name!r}")
        self.name = name


class ContractTemplates:
    """The contract templates in ``directory``: ``<name>.docx`` files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._tags: dict[str, frozenset[str]] = {}

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.directory.glob(f"*{SUFFIX}") if NAME_PATTERN.fullmatch(path.stem))

    def tags(self, name: str) -> set[str]:
        """The context names the template uses; cached by file content, so an edited file is re-read."""
        content = self._content(name)
        digest = hashlib.sha256(content).hexdigest()
        if digest not in self._tags:
            template = DocxTemplate(io.BytesIO(content))
            self._tags[digest] = frozenset(template.get_undeclared_template_variables())
        return set(self._tags[digest])

    def render(self, name: str, context: Mapping[str, Any]) -> bytes:
        """The filled-in contract as .docx bytes; a name the context lacks is an error, never a blank."""
        template = DocxTemplate(io.BytesIO(self._content(name)))
        # Autoescape: without it docxtpl silently drops text after "&" or "<" in a value.
        environment = Environment(undefined=StrictUndefined, autoescape=True)
        template.render(dict(context), jinja_env=environment, autoescape=True)
        properties = template.docx.core_properties
        # The PDF's metadata comes from these; python-docx's defaults would name python-docx.
        properties.title = properties.title or name
        properties.author = properties.last_modified_by = context["bank"]["name"]
        properties.comments = ""
        out = io.BytesIO()
        template.save(out)
        return out.getvalue()

    def _content(self, name: str) -> bytes:
        if not NAME_PATTERN.fullmatch(name):
            raise UnknownTemplate(name)
        try:
            return (self.directory / f"{name}{SUFFIX}").read_bytes()
        except FileNotFoundError:
            raise UnknownTemplate(name) from None
