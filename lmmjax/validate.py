"""Checks of public-API arguments: a clear :class:`ModelSpecError` instead of a guess.

Each function returns the value in its canonical type (``bool``, ``int``,
``float``, a float array) or raises, naming the argument and what it got.

Examples
--------
>>> check_count(1000.0, "n")
1000
>>> check_bool("False", "reml")
Traceback (most recent call last):
...
lmmjax.errors.ModelSpecError: reml must be True or False, not the string 'False'.
"""
from __future__ import annotations

import numbers

import numpy as np

from .errors import ModelSpecError
from .text import plain


def _shown(value) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Number):
        return plain(value)
    return f"a {type(value).__name__}"


def check_bool(value, name: str) -> bool:
    """``value`` if it is a bool (Python or numpy), else ModelSpecError.

    Strings ("False", "no", "ML"), None and numbers are refused: each has
    been read the wrong way round by someone.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ModelSpecError(f"{name} must be True or False, not {_shown(value)}.")


def check_optional_bool(value, name: str):
    """None (meaning "as before") or a bool."""
    return None if value is None else check_bool(value, name)


def check_count(value, name: str, minimum: int = 1) -> int:
    """A whole number ≥ ``minimum``: ints, numpy ints and whole floats (``1e3``) pass."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ModelSpecError(f"{name} must be a whole number, not {_shown(value)}.")
    if not np.isfinite(float(value)) or float(value) != int(value):
        raise ModelSpecError(f"{name} must be a whole number, not {_shown(value)}.")
    if int(value) < minimum:
        raise ModelSpecError(f"{name} must be at least {minimum}, not {int(value)}.")
    return int(value)


def check_optional_count(value, name: str, minimum: int = 1):
    """None (a default chosen later) or a whole number ≥ ``minimum``."""
    return None if value is None else check_count(value, name, minimum)


def check_seed(value, name: str = "seed") -> int:
    """A random seed: a whole number ≥ 0."""
    return check_count(value, name, minimum=0)


def check_fraction(value, name: str) -> float:
    """A number strictly between 0 and 1 (a level or an alpha)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ModelSpecError(f"{name} must be between 0 and 1, not {_shown(value)}.")
    return float(value)


def response_problem(y: np.ndarray) -> str | None:
    """Why a response vector cannot be fitted (None if it can)."""
    bad = ~np.isfinite(y)
    if bad.any():
        return f"{int(bad.sum())} missing (NaN) or infinite value(s)"
    if y.size and np.ptp(y) == 0:
        return "constant response (every value the same)"
    return None


def check_response(y, nobs: int, name: str = "y") -> np.ndarray:
    """A finite, non-constant float vector of length ``nobs``."""
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ModelSpecError(f"{name} must be numeric (one value per observation).") from None
    if values.ndim == 2 and 1 in values.shape:
        values = values.ravel()
    if values.ndim != 1 or values.size != nobs:
        raise ModelSpecError(
            f"{name} must have one value per observation the fit used ({nobs}); got shape {values.shape}.")
    problem = response_problem(values)
    if problem:
        raise ModelSpecError(f"{name} cannot be fitted: {problem}.")
    return values
