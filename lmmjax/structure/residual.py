"""Residual covariance structures: what the user asks for and its host-side row links.

The residual covariance is σ² V with ``V = D^{1/2} C D^{1/2}``:

- ``D = diag(ratio²(level of row i) / wᵢ)``: prior weights and, with
  :class:`VarIdent`, one SD ratio per level of a column (the first level is
  the reference, ratio 1), as nlme ``varIdent(form = ~ 1 | f)``;
- ``C``: block-diagonal over the levels of a group, first-order Markov in
  time within a group: :class:`AR1` (row order, or integer times with gaps:
  cor = φ^|t − s|, nlme ``corAR1``) or :class:`CAR1` (continuous times,
  φ ∈ (0, 1), nlme ``corCAR1``).

Whitening row t within its group (``p`` its predecessor in time, ``ρ_t =
φ^{t − p}``): ``ã_t = (a_t − ρ_t a_p) / √(1 − ρ_t²)`` of the D-scaled rows,
the first row of a group untouched; ``log|C| = Σ log(1 − ρ_t²)``. Everything
here is host-side: the specification objects, the string form (``"ar1(Time |
Rat)"``), the checks, and :class:`ResidualRows` (per row: predecessor, time
step, VarIdent level). The whitening itself is JAX
(:mod:`lmmjax.objective.residual`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..formula.levels import level_codes


@dataclass(frozen=True)
class AR1:
    """AR(1) residuals within each level of ``group``, as nlme ``corAR1``.

    Without ``time`` the order is the row order within the group
    (``corAR1(form = ~ 1 | group)``); with an integer ``time`` column the
    correlation of two rows of a group is φ^|t − s| (gaps allowed,
    ``corAR1(form = ~ time | group)``). φ ∈ (−1, 1).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (1 | Subject)", lmm.datasets.load("sleepstudy"),
    ...                correlation=lmm.AR1(group="Subject"))  # doctest: +SKIP
    """

    group: str
    time: str | None = None

    @property
    def label(self) -> str:
        return "AR(1)"

    @property
    def ordering(self) -> str:
        """How rows are ordered within a group: "row order" or "time <column>"."""
        return "row order" if self.time is None else f"time {self.time}"


@dataclass(frozen=True)
class CAR1:
    """Continuous-time AR(1) within each level of ``group``: cor = φ^|t − s|, φ ∈ (0, 1) (nlme ``corCAR1``).

    Examples
    --------
    >>> correlation = CAR1(group="Subject", time="Days")
    """

    group: str
    time: str

    @property
    def label(self) -> str:
        return "continuous-time AR(1)"

    @property
    def ordering(self) -> str:
        return f"time {self.time}"


@dataclass(frozen=True)
class VarIdent:
    """One residual SD per level of ``column`` (nlme ``varIdent(form = ~ 1 | column)``).

    The SDs are reported as ratios to the first level's.

    Examples
    --------
    >>> variance = VarIdent("Diet")
    """

    column: str


_STRING_FORM = re.compile(r"^\s*(ar1|car1)\s*\(\s*([^|()]*?)\s*\|\s*([^|()]+?)\s*\)\s*$", re.IGNORECASE)


def parse_correlation(spec):
    """``AR1``/``CAR1`` (or None) from an object or the strings ``"ar1(t | g)"``, ``"car1(t | g)"``.

    ``"ar1(1 | g)"`` is AR(1) in row order within ``g``.

    Examples
    --------
    >>> parse_correlation("ar1(Time | Rat)")
    AR1(group='Rat', time='Time')
    """
    if spec is None or isinstance(spec, (AR1, CAR1)):
        return spec
    if isinstance(spec, str):
        m = _STRING_FORM.match(spec)
        if m is None:
            raise ModelSpecError(f"correlation={spec!r} is not understood; write 'ar1(time | group)', "
                                 "'ar1(1 | group)' (row order) or 'car1(time | group)', or pass "
                                 "lmm.AR1(group=..., time=...) / lmm.CAR1(group=..., time=...).")
        kind, time, group = m.group(1).lower(), m.group(2), m.group(3)
        time = None if time in ("", "1") else time
        if kind == "car1":
            if time is None:
                raise ModelSpecError(f"correlation={spec!r}: car1 needs a time column, e.g. 'car1(Time | {group})'.")
            return CAR1(group=group, time=time)
        return AR1(group=group, time=time)
    raise ModelSpecError(f"correlation= must be lmm.AR1(...), lmm.CAR1(...) or a string such as "
                         f"'ar1(Time | Rat)'; got {type(spec).__name__}.")


def parse_variance(spec):
    """``VarIdent`` (or None) from an object or a column name."""
    if spec is None or isinstance(spec, VarIdent):
        return spec
    raise ModelSpecError(f"variance= must be lmm.VarIdent(column); got {type(spec).__name__}.")


#: At most this many distinct time steps to the predecessor for :class:`LagProducts`
#: (its cross-product sets grow by three per step; beyond this the rows are whitened instead).
MAX_LAG_STEPS = 8


@dataclass(frozen=True)
class RowWhitening:
    """Engine kind: every row whitened at every evaluation, O(n) per evaluation.

    The general path (VarIdent, CAR(1)/AR(1) with many distinct time steps):
    :func:`lmmjax.objective.residual.whitened_products`.
    """


@dataclass(frozen=True)
class LagProducts:
    """Engine kind: AR(1)/CAR(1) without VarIdent, cross-products from sets computed once.

    The residual precision is tridiagonal within the groups, so every
    cross-product is a fixed combination of a few row sums whose weights
    depend on φ only (:mod:`lmmjax.objective.residual_lag`): no pass over
    the rows per evaluation.
    """


def choose_engine(rows: "ResidualRows"):
    """:class:`LagProducts` for a correlation without VarIdent and at most :data:`MAX_LAG_STEPS`
    distinct time steps, else :class:`RowWhitening`.

    Examples
    --------
    >>> choose_engine(rows)  # doctest: +SKIP
    LagProducts()
    """
    if rows.correlation is None or rows.variance is not None:
        return RowWhitening()
    steps = np.unique(rows.dt[rows.has_pred])
    return LagProducts() if len(steps) <= MAX_LAG_STEPS else RowWhitening()


@dataclass(frozen=True)
class ResidualDims:
    """Static description of a residual structure (part of the compile key).

    ``start`` is the position of the first residual parameter in the
    parameter vector (after the θ of the T factors); the correlation
    parameter (if any) comes first, then ``n_ratio`` log SD ratios.
    ``k2`` is the number of later-block columns per row of the raw pattern;
    ``doubled`` says that the pattern carries each row's predecessor's
    later-block columns as well (a later block not constant within the AR
    groups: whitened rows touch two of its levels). ``engine`` is how the
    objective computes the cross-products (:class:`RowWhitening` or
    :class:`LagProducts`, chosen once by :func:`choose_engine`).
    """

    correlation: str | None  # "ar1", "car1" or None
    n_ratio: int
    start: int
    k2: int = 0
    doubled: bool = False
    engine: object = RowWhitening()

    @property
    def n_params(self) -> int:
        return int(self.correlation is not None) + self.n_ratio

    @property
    def kinds(self) -> tuple:
        head = (f"{self.correlation}_phi",) if self.correlation else ()
        return head + ("log_sd_ratio",) * self.n_ratio


@dataclass(frozen=True, eq=False)
class ResidualRows:
    """Host-side row links of a residual structure for the model frame's rows.

    Attributes
    ----------
    correlation, variance : the user's AR1/CAR1 and VarIdent (or None)
    group_codes : (n,) int codes of the AR group (zeros without correlation)
    time : (n,) float times (row positions within the group without ``time``)
    pred : (n,) int predecessor row of each row among rows with positive
        weight (the row itself when it has none)
    has_pred : (n,) bool
    dt : (n,) float time step to the predecessor (1 where there is none)
    var_codes : (n,) int VarIdent level codes (0 = reference)
    var_levels : list of str
    group_levels : list of str
    """

    correlation: object
    variance: object
    group_codes: np.ndarray
    time: np.ndarray
    pred: np.ndarray
    has_pred: np.ndarray
    dt: np.ndarray
    var_codes: np.ndarray
    var_levels: list
    group_levels: list

    @property
    def names(self) -> list:
        """Names of the residual parameters on the natural scale (``phi``, ``sd_ratio[<level>]``)."""
        head = ["phi"] if self.correlation is not None else []
        return head + [f"sd_ratio[{lev}]" for lev in self.var_levels[1:]]

    def relinked(self, weights: np.ndarray) -> "ResidualRows":
        """The same structure with predecessors among the rows of positive ``weights``."""
        pred, has_pred, dt = link_rows(self.group_codes, self.time, weights > 0)
        return replace(self, pred=pred, has_pred=has_pred, dt=dt)

    def constant_within_groups(self, codes: np.ndarray) -> bool:
        """True when ``codes`` (e.g. a grouping factor) take one value within each AR group."""
        if self.correlation is None:
            return True
        codes = np.asarray(codes, np.int64)
        some = np.zeros(int(self.group_codes.max(initial=-1)) + 1, np.int64)
        some[self.group_codes] = codes  # one row's code per group (any row): O(n), no sort
        return bool(np.all(codes == some[self.group_codes]))


def link_rows(group_codes: np.ndarray, time: np.ndarray, present: np.ndarray):
    """Predecessor in time within the group among ``present`` rows: (pred, has_pred, dt)."""
    n = len(group_codes)
    pred, has_pred, dt = np.arange(n), np.zeros(n, bool), np.ones(n)
    rows = np.nonzero(present)[0]
    order = rows[np.argsort(group_codes[rows], kind="stable")]  # O(n) when the data come grouped
    same = group_codes[order[1:]] == group_codes[order[:-1]]
    if np.any(same & (time[order[1:]] < time[order[:-1]])):  # rows not in time order within their groups
        order = rows[np.lexsort((time[rows], group_codes[rows]))]
    same = group_codes[order[1:]] == group_codes[order[:-1]]
    later = order[1:][same]
    pred[later] = order[:-1][same]
    has_pred[later] = True
    dt[later] = time[later] - time[pred[later]]
    return pred, has_pred, dt


def _column(data: pd.DataFrame, positions: np.ndarray, name: str, role: str) -> pd.Series:
    if not isinstance(name, str) or name not in data.columns:
        raise ModelSpecError(f"The {role} column {name!r} is not in the data (available: {list(data.columns)}).")
    col = data[name]
    if len(positions) != len(col) or np.any(positions != np.arange(len(col))):
        col = col.iloc[positions]
    missing = col.isna().to_numpy()
    if missing.any():
        raise ModelSpecError(f"The {role} column {name!r} has missing values in {int(missing.sum())} "
                             "rows the model uses.")
    return col


def _codes(col: pd.Series):
    """(codes, levels as text): the levels sorted (a Categorical's in its order), as ``pd.Categorical``."""
    try:
        codes, levels = level_codes(col)  # hashing, then sorting the distinct values only
    except TypeError:  # values that do not sort together (mixed types): pandas' ordering
        cat = pd.Categorical(col)
        codes, levels = cat.codes, list(cat.categories)
    return np.asarray(codes, np.int64), [str(c) for c in levels]


def _times(correlation, data, positions, group_codes) -> np.ndarray:
    """Times per row, checked (numeric, integer for AR1, unique within groups)."""
    if correlation.time is None:
        # row order within the group: positions 0, 1, 2, ... (a deleted row leaves a gap of one step)
        time = np.zeros(len(group_codes))
        order = np.argsort(group_codes, kind="stable")
        starts = np.searchsorted(group_codes[order], group_codes[order])
        time[order] = np.arange(len(order)) - starts
        return time
    col = _column(data, positions, correlation.time, "time")
    try:
        time = np.asarray(col, dtype=float)
    except (TypeError, ValueError):
        raise ModelSpecError(f"The time column {correlation.time!r} must be numeric.") from None
    if not np.all(np.isfinite(time)):
        raise ModelSpecError(f"The time column {correlation.time!r} has non-finite values.")
    if isinstance(correlation, AR1) and np.any(time != np.round(time)):
        raise ModelSpecError(f"AR1 needs integer times, but the time column {correlation.time!r} has "
                             f"non-integer values (e.g. {time[time != np.round(time)][0]!r}); use "
                             f"lmm.CAR1(group={correlation.group!r}, time={correlation.time!r}) for "
                             "continuous times.")
    key = pd.DataFrame({"g": group_codes, "t": time})
    dup = key.duplicated()
    if dup.any():
        i = int(np.nonzero(dup.to_numpy())[0][0])
        raise ModelSpecError(f"The time column {correlation.time!r} has duplicate times within a group of "
                             f"{correlation.group!r} (time {time[i]:g} twice in one group); each group "
                             "needs distinct times.")
    return time


def build_residual_rows(correlation, variance, data: pd.DataFrame, positions: np.ndarray,
                        weights: np.ndarray, factor_codes: dict | None = None) -> ResidualRows | None:
    """Checked :class:`ResidualRows` for the model frame's rows (``positions`` in ``data``), or None.

    ``factor_codes``: {column: (codes, levels)} of the model's grouping factors on those rows;
    an AR group among them is not coded (nor checked for missing values) a second time.
    """
    correlation, variance = parse_correlation(correlation), parse_variance(variance)
    if correlation is None and variance is None:
        return None
    n = len(positions)
    group_codes, group_levels = np.zeros(n, np.int64), []
    time = np.zeros(n)
    if correlation is not None:
        known = (factor_codes or {}).get(correlation.group) if isinstance(correlation.group, str) else None
        if known is not None:
            group_codes, group_levels = np.asarray(known[0], np.int64), [str(c) for c in known[1]]
        else:
            group_codes, group_levels = _codes(_column(data, positions, correlation.group, "group"))
        time = _times(correlation, data, positions, group_codes)
    var_codes, var_levels = np.zeros(n, np.int64), []
    if variance is not None:
        var_codes, var_levels = _codes(_column(data, positions, variance.column, "VarIdent"))
        if len(var_levels) < 2:
            raise ModelSpecError(f"VarIdent({variance.column!r}): the column has only one level "
                                 f"({var_levels[0] if var_levels else 'none'!r}) in the rows used; "
                                 "one residual SD per level needs at least two levels.")
    rows = ResidualRows(correlation=correlation, variance=variance, group_codes=group_codes, time=time,
                        pred=np.arange(n), has_pred=np.zeros(n, bool), dt=np.ones(n), var_codes=var_codes,
                        var_levels=var_levels, group_levels=group_levels)
    return rows.relinked(np.asarray(weights, float))


def residual_dims(rows: ResidualRows | None, start: int, k2: int, doubled: bool) -> ResidualDims | None:
    """The static :class:`ResidualDims` of ``rows`` (None without a structure)."""
    if rows is None:
        return None
    corr = None if rows.correlation is None else ("car1" if isinstance(rows.correlation, CAR1) else "ar1")
    return ResidualDims(correlation=corr, n_ratio=max(len(rows.var_levels) - 1, 0), start=start, k2=k2,
                        doubled=doubled, engine=choose_engine(rows))
