"""Credit rules as GoRules JDM decisions run by zen-engine: evaluation, publish-time lint, bank parameters."""

from engine.rules.engine import RuleEngine, RuleResult
from engine.rules.errors import ParameterError, RuleConflictError, RuleDefinitionError, RuleEvaluationError
from engine.rules.lint import lint_decision
from engine.rules.parameters import apply_parameters, placeholders

__all__ = [
    "ParameterError",
    "RuleConflictError",
    "RuleDefinitionError",
    "RuleEngine",
    "RuleEvaluationError",
    "RuleResult",
    "apply_parameters",
    "lint_decision",
    "placeholders",
]
