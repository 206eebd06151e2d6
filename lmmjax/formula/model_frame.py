"""Turn a parsed formula and a DataFrame into y, X and raw random-effect terms.

All checks on the user's data live here, so that everything downstream can
assume clean, finite, full-rank input.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import formulaic
import numpy as np
import pandas as pd

from ..errors import DataWarning, FewLevelsWarning, ModelSpecError
from ..families import get_family
from ..text import plain
from .bars import ParsedFormula, RandomTerm, parse_formula, plain_message
from .glm_response import (GlmResponse, binomial_from_column, binomial_from_counts, binomial_from_values,
                           poisson_counts)
from .levels import level_codes, level_label
from .rfunctions import ALL_ROWS_CONTEXT, ALL_ROWS_STATE_KEYS


@dataclass(frozen=True)
class TermMatrix:
    """A random-effect term evaluated on the data.

    Attributes
    ----------
    term : RandomTerm
    columns : list of str
        Names of the term's columns (``Intercept``, ``Days`` ...).
    Z : ndarray (n, p)
        The term's raw model matrix (before expansion by group).
    codes : ndarray (n,) of int
        Level index of each observation in the grouping factor.
    levels : list of str
        Level labels, in factor order.
    """

    term: RandomTerm
    columns: list
    Z: np.ndarray
    codes: np.ndarray
    levels: list
    spec: object  # formulaic ModelSpec, to evaluate the term on new data

    @property
    def group(self) -> str:
        return self.term.group


@dataclass(frozen=True)
class ModelFrame:
    """Clean model inputs: response, fixed-effects matrix, random terms."""

    formula: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    fixed_names: list
    dropped_columns: list
    terms: tuple
    rows: np.ndarray  # index labels of the data rows used
    fixed_spec: object  # formulaic ModelSpec to rebuild X on new data
    data: pd.DataFrame  # the rows used, with the model's columns only
    offset: np.ndarray | None = None  # sum of the formula's offset() terms (zeros when none)
    source_index: pd.Index | None = None  # index of the DataFrame the model was built from
    positions: np.ndarray | None = None  # positions of the rows used in that DataFrame
    glm: GlmResponse | None = None  # GLMMs: the response's kind and binomial trials (y is glm's y)

    @property
    def nobs(self) -> int:
        return len(self.y)


def _drop_missing(data: pd.DataFrame, columns: list[str]):
    """The complete rows of ``data[columns]`` (unused levels dropped) and their positions."""
    frame = data[columns]
    if len(frame) == 0:
        raise ModelSpecError("The data have no rows.")
    missing = frame.isna().any(axis=1).to_numpy()
    if missing.all():
        raise ModelSpecError(
            f"Every row has a missing value in at least one of the columns {columns}."
        )
    if missing.any():
        per_col = {c: int(frame[c].isna().sum()) for c in columns if frame[c].isna().any()}
        detail = ", ".join(f"{c}: {k}" for c, k in per_col.items())
        warnings.warn(
            f"Dropped {int(missing.sum())} of {len(frame)} rows with missing values "
            f"in the model's columns ({detail}).",
            DataWarning,
            stacklevel=4,
        )
    frame = frame.loc[~missing].copy()
    for col in frame.columns:
        if pd.api.types.is_bool_dtype(frame[col]):
            # Booleans are categorical (treatment contrasts, False the reference), as in lme4.
            frame[col] = pd.Categorical(frame[col], categories=[False, True])
    return _drop_unused_levels(frame), np.flatnonzero(~missing)


def _drop_unused_levels(frame: pd.DataFrame) -> pd.DataFrame:
    """Remove categories no used row has (as lme4's model frame does), with a DataWarning."""
    dropped = {}
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            cats = frame[col].cat.categories
            present = set(frame[col].cat.codes.unique())
            unused = [c for i, c in enumerate(cats) if i not in present]
            if unused:
                frame[col] = frame[col].cat.remove_unused_categories()
                dropped[col] = unused
    if dropped:
        detail = "; ".join(f"{c}: {', '.join(map(str, levels))}" for c, levels in dropped.items())
        warnings.warn(
            f"Dropped unused level(s) of categorical column(s) ({detail}): no row used by the "
            "model has them, so they get no coefficient or random effect (as in lme4).",
            DataWarning,
            stacklevel=5,
        )
    return frame


def _is_boolean(col: pd.Series) -> bool:
    """A boolean column, also after :func:`_drop_missing` made it categorical."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return pd.api.types.is_bool_dtype(col.cat.categories)
    return pd.api.types.is_bool_dtype(col)


class UndefinedRows(ModelSpecError):
    """An expression of the formula is NaN in some rows (e.g. log of a negative number).

    R drops such rows (its model frame treats NaN as missing);
    :func:`build_model_frame` does the same. ``rows`` marks them, ``what``
    names the expression.
    """

    def __init__(self, message: str, rows: np.ndarray, what: str):
        super().__init__(message)
        self.rows, self.what = rows, what


def _require_finite(values: np.ndarray, what: str, message: str) -> None:
    """ModelSpecError for infinite values; UndefinedRows when every bad value is NaN."""
    values = values.reshape(len(values), -1)
    if np.all(np.isfinite(values)):
        return
    if np.any(np.isinf(values)):
        raise ModelSpecError(message)
    raise UndefinedRows(message, np.isnan(values).any(axis=1), what)


def _all_rows_state(expr: str, everything: pd.DataFrame | None) -> dict:
    """State of the scale/center/poly transforms in ``expr`` computed on all rows of the data.

    R evaluates ``scale(x)``, ``poly(x, 2)`` ... on the whole data before it
    drops incomplete rows (``scale`` ignoring missing values of ``x``), so a
    row dropped for a missing response still counts in the mean and SD. Empty
    when nothing was dropped, there is no such transform, or the expression
    cannot be evaluated on all rows (then the rows used give the state).
    """
    if everything is None:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mm = formulaic.model_matrix(expr, everything, na_action="ignore", context=ALL_ROWS_CONTEXT)
    except Exception:
        return {}
    return {k: v for k, v in mm.model_spec.transform_state.items()
            if isinstance(v, dict) and set(v) in ALL_ROWS_STATE_KEYS}


def _model_matrix(expr: str, frame: pd.DataFrame, everything: pd.DataFrame | None = None):
    """formulaic's model matrix of ``expr`` on ``frame``, transforms as R (see :func:`_all_rows_state`)."""
    state = _all_rows_state(expr, everything)
    if not state:
        return formulaic.model_matrix(expr, frame, na_action="ignore")
    spec = formulaic.ModelSpec(formula=formulaic.Formula(expr), na_action="ignore", transform_state=state)
    return spec.get_model_matrix(frame)


GLMER_ADVICE = "For a yes/no outcome fit a GLMM: lmm.glmer(formula, data, family='binomial')."


def _evaluate_response(name: str, frame: pd.DataFrame, everything=None) -> np.ndarray:
    """The numeric values of the response expression ``name`` on ``frame``."""
    try:
        if _all_rows_state(f"0 + {name}", everything):
            y = _model_matrix(f"0 + {name}", frame, everything)
        else:
            y = formulaic.model_matrix(f"{name} ~ 1", frame, na_action="ignore").lhs
    except Exception as exc:  # formulaic raises many types for bad expressions
        raise ModelSpecError(f"Cannot evaluate the response {name!r}: {plain_message(exc)}") from None
    y = np.asarray(y, dtype=float)
    if y.ndim == 2:
        if y.shape[1] != 1:
            raise ModelSpecError(f"Response {name!r} must be a single numeric column.")
        y = y[:, 0]
    k = int(np.sum(~np.isfinite(y)))
    _require_finite(y, name, f"Response {name!r} has infinite or undefined (NaN) values in {k} row(s).")
    return y


def _check_usable(y: np.ndarray, name: str) -> np.ndarray:
    if y.size < 2:
        raise ModelSpecError(
            f"Only {y.size} row of the data can be used; a mixed model needs many observations.")
    if np.ptp(y) == 0:
        raise ModelSpecError(f"Response {name!r} is constant ({plain(y[0])}); there is nothing to model.")
    return y


def _response(parsed: ParsedFormula, frame: pd.DataFrame, everything=None) -> np.ndarray:
    """The response of a linear mixed model (numbers; a binary one warns that a GLMM is right)."""
    name = parsed.response
    if parsed.response_parts:
        raise ModelSpecError(
            f"The response {name} (successes and failures) is binomial data, which a linear mixed "
            "model cannot fit: use lmm.glmer(formula, data, family='binomial').")
    if name in frame.columns:
        col = frame[name]
        if _is_boolean(col):
            raise ModelSpecError(
                f"Response {name!r} is boolean (True/False), but a linear mixed model needs a "
                f"numeric response. If a linear model of the 0/1 outcome is intended, convert it "
                f"with data[{name!r}].astype(float). {GLMER_ADVICE}"
            )
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            two = isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories) == 2
            raise ModelSpecError(
                f"Response {name!r} must be numeric, but its type is {col.dtype}."
                + (f" It has two levels: {GLMER_ADVICE}" if two else "")
            )
    y = _check_usable(_evaluate_response(name, frame, everything), name)
    values = np.unique(y)
    if len(values) == 2:
        warnings.warn(
            f"Response {name!r} takes only two values ({plain(values[0])} and {plain(values[1])}): "
            "a linear mixed model is the wrong model for a binary outcome (its standard errors and "
            "predictions outside [0, 1] mislead). Fit a GLMM with lmm.glmer(formula, data, "
            "family='binomial') instead.", DataWarning, stacklevel=6)
    return y


def _glm_response(parsed: ParsedFormula, frame: pd.DataFrame, family, everything=None) -> GlmResponse:
    """The response of a GLMM for ``family`` (see :mod:`lmmjax.formula.glm_response`)."""
    name = parsed.response
    if parsed.response_parts:
        if family.name != "binomial":
            raise ModelSpecError(
                f"The response {name} (successes, failures) is binomial data; use family='binomial', "
                f"not {family.name!r}.")
        s, f = (_evaluate_part(part, frame, name) for part in parsed.response_parts)
        resp = binomial_from_counts(s, f, name)
    else:
        col = frame[name] if name in frame.columns else None
        if col is not None and (_is_boolean(col) or not pd.api.types.is_numeric_dtype(col)):
            resp = binomial_from_column(col, name) if family.name == "binomial" else poisson_counts(col, name)
        else:
            y = _evaluate_response(name, frame, everything)
            resp = binomial_from_values(y, name) if family.name == "binomial" else poisson_counts(y, name)
    _check_usable(resp.y, name)
    return resp


def _evaluate_part(expr: str, frame: pd.DataFrame, name: str) -> np.ndarray:
    """One argument of ``cbind(..)`` on ``frame`` (arithmetic as in R: ``size - incidence``)."""
    try:
        values = np.asarray(formulaic.model_matrix(f"0 + I({expr})", frame, na_action="ignore"), dtype=float)
    except Exception as exc:
        raise ModelSpecError(f"Cannot evaluate {expr!r} in the response {name}: {plain_message(exc)}") from None
    if values.ndim != 2 or values.shape[1] != 1:
        raise ModelSpecError(f"{expr!r} in the response {name} must be one number per row.")
    k = int(np.sum(~np.isfinite(values)))
    _require_finite(values, name, f"{expr!r} in the response {name} has infinite or undefined values in {k} row(s).")
    return values[:, 0]


def drop_aliased(X: np.ndarray, names: list[str], tol: float = 1e-7):
    """Keep the columns of X that are not linear combinations of earlier ones.

    Returns the kept column indices, as lme4 does (later columns dropped).
    """
    columns = np.asarray(X, float).T.copy()  # one contiguous row per column
    keep, basis = [], np.zeros((X.shape[1], X.shape[0]))  # the orthonormal basis, one row per kept column
    for j, col in enumerate(columns):
        norm = np.linalg.norm(col)
        if norm == 0:
            continue
        B = basis[:len(keep)]
        resid = col - (B @ col) @ B
        resid = resid - (B @ resid) @ B
        rnorm = np.linalg.norm(resid)
        if rnorm > tol * norm:
            basis[len(keep)] = resid / rnorm
            keep.append(j)
    return keep


def rank_deficiency_message(X: np.ndarray, names: list, dropped: list) -> str:
    """Why the fixed-effect columns ``dropped`` of ``X`` (columns ``names``) were
    dropped: zero in every row, or linear combinations of earlier columns."""
    zero = [n for n in dropped if not np.any(X[:, names.index(n)])]
    aliased = [n for n in dropped if n not in zero]
    reasons = []
    if zero:
        reasons.append(f"{zero} {'is' if len(zero) == 1 else 'are'} zero in every row used "
                       "(e.g. a level or value that no row has)")
    if aliased:
        reasons.append(f"{aliased} {'is a linear combination' if len(aliased) == 1 else 'are linear combinations'}"
                       " of earlier columns")
    return ("Fixed-effects model matrix is rank deficient: dropped column(s) " + "; ".join(reasons) + ".")


def _fixed_matrix(parsed: ParsedFormula, frame: pd.DataFrame, everything=None):
    try:
        mm = _model_matrix(parsed.fixed, frame, everything)
    except Exception as exc:
        raise ModelSpecError(
            f"Cannot build the fixed effects of {parsed.text!r}: {plain_message(exc)}") from None
    X = np.asarray(mm, dtype=float)
    names = [str(c) for c in mm.columns]
    bad = [n for j, n in enumerate(names) if not np.all(np.isfinite(X[:, j]))]
    k = int(np.sum(~np.all(np.isfinite(X), axis=1)))
    _require_finite(X, " and ".join(bad), (
        f"Fixed-effect column(s) {bad} have infinite or undefined (NaN) values in {k} row(s), "
        "e.g. log() of a value <= 0."))
    keep = drop_aliased(X, names)
    dropped = [n for j, n in enumerate(names) if j not in keep]
    if dropped:
        warnings.warn(rank_deficiency_message(X, names, dropped), DataWarning, stacklevel=4)
    return X[:, keep], [names[j] for j in keep], dropped, mm.model_spec


def group_codes(frame: pd.DataFrame, factors: tuple):
    """Integer codes and labels of the grouping factor formed by ``factors``.

    A pandas Categorical keeps its category order; other columns are sorted.
    Combinations ``a:b`` are ordered by ``a`` then ``b``; unused levels are
    dropped.
    """
    per = [level_codes(frame[name]) for name in factors]
    if len(per) == 1:
        codes, cats = per[0]
        present = np.bincount(codes, minlength=len(cats)) > 0
        if present.all():  # the common case: every level is used
            return codes.astype(np.int32), [c if type(c) is str else level_label(c) for c in cats]
    combined = np.zeros(len(frame), dtype=np.int64)
    for codes, cats in per:
        combined = combined * len(cats) + codes
    used, codes = np.unique(combined, return_inverse=True)
    labels = []
    for value in used:
        parts = []
        for codes_k, cats in reversed(per):
            parts.append(level_label(cats[value % len(cats)]))
            value //= len(cats)
        labels.append(":".join(reversed(parts)))
    return codes.astype(np.int32), labels


def _term_matrix(term: RandomTerm, frame: pd.DataFrame, everything=None) -> TermMatrix:
    try:
        mm = _model_matrix(term.expr, frame, everything)
    except Exception as exc:
        raise ModelSpecError(f"Cannot build random-effect term {term.source!r}: {plain_message(exc)}") from None
    Z = np.asarray(mm, dtype=float)
    if Z.shape[1] == 0:
        raise ModelSpecError(f"Random-effect term {term.source!r} has no columns.")
    _require_finite(Z, term.source, f"Random-effect term {term.source!r} has infinite or undefined (NaN) values.")
    codes, levels = group_codes(frame, term.factors)
    return TermMatrix(term=term, columns=[str(c) for c in mm.columns], Z=Z, codes=codes,
                      levels=levels, spec=mm.model_spec)


def _check_term(tm: TermMatrix, n: int, glmm: bool = False) -> None:
    """Refuse terms that cannot be estimated. GLMMs have no residual variance, so a
    term with one level per observation (an observation-level random effect for
    overdispersion) is allowed there, as lme4's glmer allows it."""
    nlev, p = len(tm.levels), tm.Z.shape[1]
    label = f"({' + '.join(tm.columns)} | {tm.group})"
    if nlev < 2:
        raise ModelSpecError(
            f"Grouping factor {tm.group!r} in {tm.term.source!r} has a single level; "
            "a random effect needs at least two groups."
        )
    if nlev >= n and not glmm:
        raise ModelSpecError(
            f"Grouping factor {tm.group!r} has {nlev} levels for {n} observations: "
            "each group has at most one observation, so the random effect cannot be "
            "told apart from the residual."
        )
    if nlev * p >= n and not glmm:
        raise ModelSpecError(
            f"Random-effect term {label} has {nlev * p} random effects for {n} "
            "observations; its variance and the residual variance are unidentifiable."
        )
    if nlev < 5:
        warnings.warn(
            f"Grouping factor {tm.group!r} has only {nlev} levels; its variance "
            "estimate will be unstable. Consider modelling it as a fixed effect.",
            FewLevelsWarning,
            stacklevel=4,
        )


def evaluate_offset(parsed: ParsedFormula, frame: pd.DataFrame, check: bool = True) -> np.ndarray:
    """Sum of the formula's ``offset(expr)`` terms on ``frame`` (zeros when there are none)."""
    total = np.zeros(len(frame))
    for expr in parsed.offsets:
        try:
            values = formulaic.model_matrix(f"0 + I({expr})", frame, na_action="ignore")
        except Exception as exc:
            raise ModelSpecError(f"Cannot evaluate offset({expr}): {plain_message(exc)}") from None
        values = np.asarray(values, dtype=float)
        if values.shape[1] != 1:
            raise ModelSpecError(f"offset({expr}) must be one numeric value per row.")
        if check:
            k = int(np.sum(~np.isfinite(values)))
            _require_finite(values, f"offset({expr})",
                            f"offset({expr}) has infinite or undefined (NaN) values in {k} row(s).")
        total = total + values[:, 0]
    return total


def build_model_frame(formula: str, data: pd.DataFrame, family=None) -> ModelFrame:
    """Parse ``formula`` and evaluate it on ``data`` with all input checks.

    With a GLM ``family`` (a name or :class:`lmmjax.families.Family`) the
    response is read as that family's (0/1, booleans, two-level factors,
    ``cbind(successes, failures)``, proportions, counts): ``y`` is glm's y and
    ``glm`` holds the binomial trials (:mod:`lmmjax.formula.glm_response`).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> mf = build_model_frame("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> mf.X.shape
    (180, 2)
    """
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, not {type(data).__name__}.")
    parsed = parse_formula(formula, columns=[c for c in data.columns if isinstance(c, str)])
    family = None if family is None else get_family(family)
    columns = sorted(parsed.variables)
    frame, positions = _drop_missing(data, columns)
    while True:
        everything = data[columns] if len(frame) < len(data) else None  # for transforms, as R
        try:
            parts = _evaluate_parts(parsed, frame, everything, family)
            break
        except UndefinedRows as exc:
            # R's model frame drops rows where an expression is NaN, as it drops missing values.
            if np.sum(~exc.rows) < 2:
                raise ModelSpecError(str(exc)) from None
            warnings.warn(
                f"Dropped {int(exc.rows.sum())} of {len(frame)} rows where {exc.what} is undefined "
                "(NaN, e.g. log() of a negative number), as R does.", DataWarning, stacklevel=4)
            frame, positions = _drop_unused_levels(frame.loc[~exc.rows].copy()), positions[~exc.rows]
    y, (X, names, dropped, spec), terms, offset = parts
    glm = y if isinstance(y, GlmResponse) else None
    return ModelFrame(
        formula=parsed, y=glm.y if glm is not None else y, X=X, fixed_names=names,
        dropped_columns=dropped, terms=terms, rows=frame.index.to_numpy(), fixed_spec=spec,
        data=frame, offset=offset, source_index=data.index, positions=positions, glm=glm,
    )


def _evaluate_parts(parsed: ParsedFormula, frame: pd.DataFrame, everything, family=None):
    """Response (a GlmResponse for GLMMs), fixed-effects matrix, random terms and offset, all checked."""
    y = _response(parsed, frame, everything) if family is None else _glm_response(parsed, frame, family, everything)
    fixed = _fixed_matrix(parsed, frame, everything)
    n, p = len(y.y if family is not None else y), fixed[0].shape[1]
    if p >= n:
        raise ModelSpecError(f"{p} fixed-effect columns for only {n} observations.")
    terms = tuple(_term_matrix(t, frame, everything) for t in parsed.random)
    for tm in terms:
        _check_term(tm, n, glmm=family is not None)
    return y, fixed, terms, evaluate_offset(parsed, frame)
