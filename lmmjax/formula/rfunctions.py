"""R functions that lme4 users write in formulas, with R's meaning.

The names are registered in formulaic's transform namespace (only names
formulaic does not define itself), so that every evaluation of a formula or a
stored model specification sees them: fitting, prediction on new data, and
tests of model terms. Data columns always take precedence over these names.

``R_CALLS`` maps the names users type (``as.numeric``) to the Python names
the translated formula uses (``as_numeric``).
"""
from __future__ import annotations

import builtins
import keyword
from types import SimpleNamespace

import numpy as np
import pandas as pd
from formulaic.transforms import TRANSFORMS
from formulaic.transforms.poly import poly as formulaic_poly
from formulaic.transforms.scale import scale as formulaic_scale
from formulaic.utils.stateful_transforms import stateful_transform


def _values(x):
    return x.to_numpy() if isinstance(x, (pd.Series, pd.Index)) else np.asarray(x)


def factor(x, levels=None):
    """R's ``factor(x)``: a categorical with sorted levels (or ``levels``)."""
    if isinstance(x, pd.Series) and isinstance(x.dtype, pd.CategoricalDtype) and levels is None:
        return x.cat.remove_unused_categories()
    values = _values(x)
    if levels is None:
        levels = sorted(pd.unique(values[pd.notna(values)]))
    out = pd.Categorical(values, categories=list(levels))
    return pd.Series(out, index=x.index) if isinstance(x, pd.Series) else pd.Series(out)


def _codes_or_numbers(x) -> np.ndarray:
    """R's coercion to numbers: a factor gives its level index 1..k, strings are parsed."""
    if isinstance(getattr(x, "dtype", None), pd.CategoricalDtype):
        codes = np.asarray(x.cat.codes if isinstance(x, pd.Series) else x.codes, dtype=float)
        return np.where(codes < 0, np.nan, codes + 1.0)
    values = _values(x)
    if values.dtype == bool:
        return values.astype(float)
    if values.dtype.kind in "OUS" or isinstance(getattr(x, "dtype", None), pd.StringDtype):
        return pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype=float)
    return values.astype(float)


def as_numeric(x):
    """R's ``as.numeric(x)`` (a factor gives its level index 1..k, as in R)."""
    return _codes_or_numbers(x)


def as_integer(x):
    """R's ``as.integer(x)``: truncation towards zero."""
    return np.trunc(_codes_or_numbers(x))


def r_log(x, base=None):
    """R's ``log(x, base)``: natural logarithm unless ``base`` is given."""
    values = np.log(_values(x).astype(float))
    return values if base is None else values / np.log(base)


def r_round(x, digits=0):
    """R's ``round(x, digits)`` (IEC 60559: halves to even)."""
    return np.round(_values(x).astype(float), int(digits))


def concatenate(*items):
    """R's ``c(...)`` for a vector of levels: ``factor(f, levels = c("b", "a"))``."""
    return [v for item in items for v in (item if isinstance(item, (list, tuple)) else [item])]


# Python names for the R functions (numpy keeps R's meaning for these).
FUNCTIONS = {
    "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "log1p": np.log1p, "expm1": np.expm1, "floor": np.floor, "ceiling": np.ceil,
    "trunc": np.trunc, "sign": np.sign, "round": r_round,
    "r_log": r_log, "factor": factor, "as_numeric": as_numeric, "as_integer": as_integer,
    "c": concatenate,
}
CONSTANTS = {"pi": np.pi, "TRUE": True, "FALSE": False}

# What users type -> the Python name in the translated formula.
R_CALLS = {"as.numeric": "as_numeric", "as.double": "as_numeric", "as.integer": "as_integer",
           "as.factor": "factor"}

# Calls whose name is also a data column are written ``_lmm.<name>(...)``.
NAMESPACE_NAME = "_lmm"


def register() -> None:
    """Add the R names to formulaic's transforms (never replacing formulaic's own, except
    ``poly``, which gets R's check of its degree and otherwise computes the same)."""
    for name, value in {**FUNCTIONS, **CONSTANTS}.items():
        TRANSFORMS.setdefault(name, value)
    TRANSFORMS["poly"] = poly
    TRANSFORMS.setdefault(NAMESPACE_NAME, SimpleNamespace(**{**TRANSFORMS, **FUNCTIONS}))


def known_function(name: str) -> bool:
    """Whether ``name`` (Python spelling) can be called in a formula (transforms, builtins)."""
    register()
    value = TRANSFORMS.get(name, getattr(builtins, name, None))
    return callable(value)


def known_value(name: str) -> bool:
    """Whether ``name`` is a non-column name Python evaluation knows (transforms, builtins, keywords)."""
    register()
    return name in TRANSFORMS or hasattr(builtins, name) or keyword.iskeyword(name)



@stateful_transform
def poly(x, degree=1, raw=False, _state={}):  # noqa: B006 - stateful
    """formulaic's ``poly`` (R's orthogonal polynomials) with R's check: the degree must be
    less than the number of distinct values, else the last columns are rounding noise."""
    if not _state and not raw:
        values = np.asarray(x, dtype=float)
        distinct = np.unique(values[~np.isnan(values)]).size
        if int(degree) >= distinct:
            raise ValueError(f"poly(): degree {int(degree)} must be less than the number of "
                             f"distinct values ({distinct}), as R requires")
    return formulaic_poly(x, degree, raw, _state=_state)


# ---- R's transforms of variables with missing values ----------------------------------
# R evaluates scale(x) on all rows before dropping incomplete ones, ignoring missing
# values of x itself (na.rm). These versions compute that state; formulaic's own
# scale/center then apply it (same state keys) to the rows the model uses.
@stateful_transform
def scale_ignoring_missing(data, center=True, scale=True, ddof=1, _state={}):  # noqa: B006 - stateful
    """formulaic's ``scale`` with its mean and SD over the non-missing values, as R's ``scale``."""
    x = np.asarray(data, dtype=float)
    _state.setdefault("ddof", ddof)
    if "center" not in _state:
        if isinstance(center, bool):
            _state["center"] = np.nanmean(x, axis=0) if center else None
        else:
            _state["center"] = np.array(center)
    if "scale" not in _state:
        if isinstance(scale, bool) and scale:
            xc = x - (_state["center"] if _state["center"] is not None else 0.0)
            count = np.sum(~np.isnan(xc), axis=0)
            _state["scale"] = np.sqrt(np.nansum(xc ** 2, axis=0) / (count - _state["ddof"]))
        else:
            _state["scale"] = None if isinstance(scale, bool) else np.array(scale)
    return formulaic_scale(data, center, scale, ddof, _state=_state)


@stateful_transform
def center_ignoring_missing(data, _state={}):  # noqa: B006 - stateful
    """formulaic's ``center`` with the mean over the non-missing values."""
    return scale_ignoring_missing(data, scale=False, _state=_state)


# Evaluation context for computing transform states on all rows (see model_frame).
ALL_ROWS_CONTEXT = {"scale": scale_ignoring_missing, "center": center_ignoring_missing}
# State entries of these transforms (and only these) are taken from the all-rows pass.
ALL_ROWS_STATE_KEYS = ({"ddof", "center", "scale"}, {"alpha", "norms2"})


register()
