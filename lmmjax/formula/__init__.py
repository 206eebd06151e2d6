"""Formula handling: lme4 random-effect bars on top of formulaic."""
from .bars import RandomTerm, parse_formula, ParsedFormula

__all__ = ["RandomTerm", "parse_formula", "ParsedFormula"]
