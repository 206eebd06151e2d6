"""The reference grid of estimated marginal means, as R's emmeans builds it.

The grid crosses every variable of the model's fixed part: all levels of
each factor, each covariate at its mean (covariates with at most two
distinct values keep both, as emmeans' ``cov.keep = 2``), or the values
given in ``at``. Each grid row is turned into a linear function of the
fixed effects by evaluating the model's own formulaic ``ModelSpec`` on it,
so the coding, transformations (``log(x)``, ``C(x)``, ``center(x)`` ...)
and interactions follow the fitted model exactly.

Marginal means average grid rows over the variables not asked for, with
equal weights (emmeans' default), weights proportional to the marginal
frequencies of the averaged-over combinations (``"proportional"``) or the
cell frequencies (``"cells"``). A linear function is estimable when it is
orthogonal to the null space of the full design matrix (columns the fit
dropped as aliased included), emmeans' check with tolerance 1e-8.
"""
from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataWarning, ModelSpecError

ESTIMABLE_TOL = 1e-8  # emmeans' estble.tol
COV_KEEP = 2  # emmeans' cov.keep: covariates with at most this many distinct values keep them
WEIGHTS = ("equal", "proportional", "cells")
_IDENT = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class GridVariable:
    """One variable of the reference grid.

    ``kind`` is "factor" or "covariate"; ``values`` are the grid's levels
    (labels of a factor in model order, numbers for a covariate);
    ``keyed`` says whether the variable identifies cells when counting
    observations (factors and covariates kept at their distinct values).
    """

    name: str
    kind: str
    values: tuple
    keyed: bool

    @property
    def labels(self) -> list:
        return [_label(v) for v in self.values]


@dataclass(frozen=True)
class ReferenceGrid:
    """Grid rows (first variable varying fastest, as R's ``expand.grid``) and their linear functions.

    Attributes
    ----------
    variables : tuple of GridVariable, in formula order
    index : ndarray (G, n_vars) of int, each row's level index per variable
    L : ndarray (G, p_full), linear functions over all columns of the fixed-effects design
    counts : ndarray (G,), observations in each grid cell
    kept : ndarray of int, positions of the fitted (non-aliased) columns among all columns
    null_basis : ndarray (p_full, m) or None, orthonormal basis of the design's null space
    terms : list of (term label, frozenset of variables) of the fixed part
    """

    variables: tuple
    index: np.ndarray
    L: np.ndarray
    counts: np.ndarray
    kept: np.ndarray
    null_basis: np.ndarray | None
    terms: list

    @property
    def names(self) -> list:
        return [v.name for v in self.variables]

    def variable(self, name: str) -> GridVariable:
        return self.variables[self.names.index(name)]


def _label(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


# ---- the model's variables ----------------------------------------------------------------------
def _factor_exprs(spec) -> list:
    return [str(f) for st in spec.structure for f in st.term.factors if str(f) != "1"]


def fixed_term_variables(frame) -> list:
    """(term label, frozenset of data variables) for each non-intercept term of the fixed part."""
    data_vars = set(frame.fixed_spec.variables_by_source.get("data", set()))
    out = []
    for st in frame.fixed_spec.structure:
        if str(st.term) == "1":
            continue
        names = {tok for f in st.term.factors for tok in _IDENT.findall(str(f)) if tok in data_vars}
        out.append((str(st.term), frozenset(names)))
    return out


def model_variables(frame) -> list:
    """(name, kind) of the fixed part's data variables in order of appearance in the formula.

    A variable is a factor when its column is categorical, text or boolean,
    or when every use of it in the formula is categorical (``C(x)``).
    """
    spec = frame.fixed_spec
    data_vars = set(spec.variables_by_source.get("data", set()))
    order = [tok for tok in _IDENT.findall(frame.formula.fixed) if tok in data_vars]
    order = list(dict.fromkeys(order + sorted(data_vars)))
    categorical = {str(f) for f in spec.factor_contrasts}
    exprs = _factor_exprs(spec)
    out = []
    for name in order:
        col = frame.data[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            out.append((name, "factor"))
            continue
        uses = [e for e in exprs if name in _IDENT.findall(e)]
        coerced = bool(uses) and all(e in categorical for e in uses)
        out.append((name, "coerced" if coerced else "covariate"))
    return out


def factor_levels(col: pd.Series) -> list:
    """Levels present in the data, in model order (categories' order, else sorted)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique())
        return [c for c in col.cat.categories if c in present]
    return sorted(pd.unique(col.dropna()))


def _as_list(value) -> list:
    if isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index)):
        return list(value)
    return [value]


def _grid_values(name: str, kind: str, col: pd.Series, at: dict, cov_reduce: str):
    """(values, keyed) of one variable."""
    if kind in ("factor", "coerced"):
        levels = factor_levels(col)
        if name not in at:
            return tuple(levels), True
        by_label = {_label(v): v for v in levels}
        chosen = []
        for value in _as_list(at[name]):
            key = _label(value)
            if key not in by_label:
                raise ModelSpecError(
                    f"at: {value!r} is not a level of the factor {name!r} (levels: {[_label(v) for v in levels]})."
                )
            if by_label[key] not in chosen:
                chosen.append(by_label[key])
        return tuple(chosen), True
    if name in at:
        try:
            vals = np.asarray(_as_list(at[name]), dtype=float)
        except (TypeError, ValueError):
            raise ModelSpecError(f"at: values for the covariate {name!r} must be numbers, got {at[name]!r}.") from None
        if vals.size == 0 or not np.all(np.isfinite(vals)):
            raise ModelSpecError(f"at: values for the covariate {name!r} must be finite numbers, got {at[name]!r}.")
        return tuple(dict.fromkeys(vals.tolist())), False
    x = col.to_numpy(float)
    uniq = np.unique(x)
    if uniq.size <= COV_KEEP:
        return tuple(uniq.tolist()), True
    m = float(np.mean(x))
    return ((m - 1.0, m + 1.0) if cov_reduce == "meanint" else (m,)), False


# ---- design pieces ------------------------------------------------------------------------------
def full_column_names(frame) -> list:
    return [str(c) for c in frame.fixed_spec.column_names]


def design_rows(frame, rows: pd.DataFrame) -> np.ndarray:
    """The full fixed-effects design (aliased columns included) evaluated on ``rows``."""
    try:
        mm = frame.fixed_spec.get_model_matrix(rows, na_action="ignore")
    except Exception as exc:  # formulaic raises many types
        raise ModelSpecError(f"Cannot evaluate the fixed part on the reference grid: {exc}") from None
    return np.asarray(mm[full_column_names(frame)], dtype=float)


def null_basis(frame, X_kept: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis of the null space of the full design, or None when no column was dropped.

    Each dropped column is (up to the fit's tolerance) a combination of the
    kept ones, ``x_d = X_kept c``, so ``e_d − c`` spans the null space.
    """
    if not frame.dropped_columns:
        return None
    names = full_column_names(frame)
    kept = [names.index(c) for c in frame.fixed_names]
    dropped = [names.index(c) for c in frame.dropped_columns]
    X = design_rows(frame, frame.data)
    coef = np.linalg.lstsq(X_kept, X[:, dropped], rcond=None)[0]
    N = np.zeros((len(names), len(dropped)))
    N[dropped, np.arange(len(dropped))] = 1.0
    N[kept, :] = -coef
    q, _ = np.linalg.qr(N)
    return q


def estimable(L: np.ndarray, basis: np.ndarray | None, tol: float = ESTIMABLE_TOL) -> np.ndarray:
    """emmeans' ``is.estble`` for each row of L (rows with NaN are not estimable)."""
    L = np.atleast_2d(L)
    ok = np.all(np.isfinite(L), axis=1)
    if basis is None:
        return ok
    Lz = np.where(np.isfinite(L), L, 0.0)
    chk = Lz @ basis
    ssq = np.sum(Lz * Lz, axis=1)
    ssq = np.where(ssq < tol, 1.0, ssq)
    return ok & (np.sum(chk * chk, axis=1) < tol * ssq)


# ---- the grid -----------------------------------------------------------------------------------
def check_at(frame, at) -> dict:
    if at is None:
        return {}
    if not isinstance(at, dict):
        raise ModelSpecError(f"at must be a dict of variable -> value(s), not {type(at).__name__}.")
    known = [n for n, _ in model_variables(frame)]
    unknown = [k for k in at if k not in known]
    if unknown:
        raise ModelSpecError(f"at: {unknown} are not variables of the model's fixed part (variables: {known}).")
    return dict(at)


def grid_frame(frame, variables: tuple, index: np.ndarray) -> pd.DataFrame:
    """The grid as data: one column per variable, with the data's dtypes and categories."""
    cols = {}
    for j, var in enumerate(variables):
        values = [var.values[i] for i in index[:, j]]
        col = frame.data[var.name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cols[var.name] = pd.Categorical(values, categories=col.cat.categories)
        elif var.kind == "covariate":
            cols[var.name] = np.asarray(values, dtype=float)
        else:
            cols[var.name] = pd.Series(values, dtype=col.dtype)
    return pd.DataFrame(cols)


def _cell_counts(frame, variables: tuple, index: np.ndarray) -> np.ndarray:
    keyed = [(j, v) for j, v in enumerate(variables) if v.keyed]
    if not keyed:
        return np.ones(len(index))
    data = frame.data
    codes = np.zeros(len(data), dtype=np.int64)
    grid_codes = np.zeros(len(index), dtype=np.int64)
    for j, var in keyed:
        lookup = {_label(v): i for i, v in enumerate(var.values)}
        col = data[var.name].astype(object)
        obs = col.map({u: lookup.get(_label(u), -1) for u in pd.unique(col)}).to_numpy(dtype=np.int64)
        size = len(var.values)
        codes = np.where((codes < 0) | (obs < 0), -1, codes * size + obs)
        grid_codes = grid_codes * size + index[:, j]
    counts = np.bincount(codes[codes >= 0], minlength=int(grid_codes.max()) + 1)
    return counts[grid_codes].astype(float)


def reference_grid(fit, at=None, cov_reduce: str = "mean", shift: dict | None = None) -> ReferenceGrid:
    """The fit's reference grid (see the module docstring).

    Parameters
    ----------
    at : dict, optional
        Values per variable: levels of a factor (a subset, in the order
        given) or numbers for a covariate.
    cov_reduce : {"mean", "meanint"}
        Covariates at their mean, or at mean ± 1 (emmeans' ``meanint``, used
        by :func:`joint_tests`).
    shift : dict, optional
        Amounts added to covariates before the design is evaluated (for
        derivatives).

    Examples
    --------
    >>> rg = reference_grid(fit)  # doctest: +SKIP
    >>> rg.L.shape  # doctest: +SKIP
    (18, 18)
    """
    frame = fit.model.frame
    if getattr(frame.formula, "offsets", ()):
        raise ModelSpecError(
            f"Marginal means of a model with offset() terms ({', '.join(frame.formula.offsets)}) are not "
            "available yet: emmeans adds the offset at its reference value, lmmjax does not guess it."
        )
    if np.any(fit.model.offset != 0):
        raise ModelSpecError(
            "Marginal means of a model fitted with offset= are not available yet: the offset's value on the "
            "reference grid is not defined; lmmjax does not guess it.")
    at = check_at(frame, at)
    variables = []
    for name, kind in model_variables(frame):
        values, keyed = _grid_values(name, kind, frame.data[name], at, cov_reduce)
        variables.append(GridVariable(name, "covariate" if kind == "covariate" else "factor", values, keyed))
    variables = tuple(variables)
    sizes = [len(v.values) for v in variables]
    # expand.grid order: the first variable varies fastest
    index = np.array([combo[::-1] for combo in itertools.product(*[range(s) for s in reversed(sizes)])],
                     dtype=np.int64).reshape(-1, len(variables))
    rows = grid_frame(frame, variables, index)
    for name, delta in (shift or {}).items():
        rows[name] = rows[name] + delta
    names = full_column_names(frame)
    return ReferenceGrid(
        variables=variables, index=index, L=design_rows(frame, rows),
        counts=_cell_counts(frame, variables, index),
        kept=np.array([names.index(c) for c in frame.fixed_names], dtype=np.int64),
        null_basis=null_basis(frame, fit.model.X), terms=fixed_term_variables(frame),
    )


# ---- averaging ------------------------------------------------------------------------------------
def check_names(grid: ReferenceGrid, names, what: str) -> list:
    names = [] if names is None else _as_list(names)
    for n in names:
        if not isinstance(n, str) or n not in grid.names:
            factors = [v.name for v in grid.variables if v.kind == "factor"]
            raise ModelSpecError(
                f"{what}: {n!r} is not a variable of the model's fixed part "
                f"(factors: {factors}; all variables: {grid.names})."
            )
    return list(dict.fromkeys(names))


def interaction_note(grid: ReferenceGrid, facs: list, trend: str | None = None) -> str | None:
    """emmeans' "involvement in interactions" note, or None."""
    asked = set(facs) | ({trend} if trend else set())
    for label, vars_ in grid.terms:
        if asked <= vars_ and len(vars_) > len(asked):
            others = sorted(vars_ - asked)
            return (f"Results may be misleading due to involvement in interactions: the term {label!r} "
                    f"also involves {others}, over which these results are averaged (or which is held at "
                    f"its reference value).")
    return None


def average(grid: ReferenceGrid, facs: list, weights: str = "equal", L: np.ndarray | None = None):
    """Average the grid's linear functions over the variables not in ``facs``.

    Returns
    -------
    combos : ndarray (R, len(facs)) of level indices (first of ``facs`` fastest)
    L : ndarray (R, p_full)
    averaged_over : list of names of the variables averaged over (with more than one value)
    """
    if weights not in WEIGHTS:
        raise ModelSpecError(f"Unknown weights {weights!r}; use one of {list(WEIGHTS)}.")
    L = grid.L if L is None else L
    pos = [grid.names.index(f) for f in facs]
    sizes = [len(v.values) for v in grid.variables]
    avgd = [j for j, s in enumerate(sizes) if s > 1 and j not in pos]
    if weights == "proportional" and avgd:
        keys = [tuple(r) for r in grid.index[:, avgd]]
        totals: dict = {}
        for k, c in zip(keys, grid.counts):
            totals[k] = totals.get(k, 0.0) + c
        w = np.array([totals[k] for k in keys])
    elif weights == "cells":
        w = grid.counts.copy()
    else:
        w = np.ones(len(grid.index))
    combos = np.array([c[::-1] for c in itertools.product(*[range(sizes[j]) for j in reversed(pos)])],
                      dtype=np.int64).reshape(-1, len(pos))
    out = np.empty((len(combos), L.shape[1]))
    for r, combo in enumerate(combos):
        rows = np.all(grid.index[:, pos] == combo, axis=1) if pos else np.ones(len(grid.index), bool)
        total = w[rows].sum()
        out[r] = (w[rows] @ L[rows]) / total if total > 1e-8 else np.nan
    return combos, out, [grid.variables[j].name for j in avgd]


def warn_interactions(grid: ReferenceGrid, facs: list, trend: str | None = None) -> str | None:
    note = interaction_note(grid, facs, trend)
    if note:
        warnings.warn(note, DataWarning, stacklevel=5)
    return note
