"""Loading the shipped catalog: the process archetypes in ``bpmn/`` (forms are read from ``forms/``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.errors import InvalidInput
from engine.services.definitions import DeployResult
from engine.services.principal import Principal

if TYPE_CHECKING:
    from engine.container import CreditFlow


def load_catalog(
    platform: CreditFlow, principal: Principal, progress: Callable[[str], None] = lambda _msg: None
) -> DeployResult:
    """Deploy bpmn/ as one bundle (archetypes may call each other), then publish the standard products."""
    files = sorted([*platform.settings.bpmn_dir.glob("*.bpmn"), *platform.settings.bpmn_dir.glob("*.dmn")])
    if not files:
        raise InvalidInput(f"no models in {platform.settings.bpmn_dir}")
    progress(f"deploying {len(files)} model file(s) from {platform.settings.bpmn_dir}")
    result = platform.definitions.deploy(principal, [(f.name, f.read_bytes()) for f in files])
    platform.products.load_standard(principal, progress=progress)
    return result
