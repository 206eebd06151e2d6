"""Study designs for power simulation: builders for common layouts and simr's ``extend``.

Every builder returns a pandas DataFrame with one row per observation, the
grouping factors and predictors as pandas ``Categorical`` columns (levels in
a natural order, so the first level is the reference) and a placeholder
response column of zeros (responses are simulated later).

Predictors given as ``{name: levels}`` are assigned in rotation, so each
level gets as equal a share as the counts allow: a between-subject
predictor cycles over subjects, a within-subject/within-item predictor is
counterbalanced (Latin square) over subjects and items.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import ModelSpecError


def _labels(prefix: str, n: int) -> list:
    width = len(str(n))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


def _categorical(values, categories) -> pd.Categorical:
    return pd.Categorical(values, categories=list(categories))


def _levels_of(spec):
    if isinstance(spec, int):
        return list(range(spec))
    return list(spec)


def _assign(frame: pd.DataFrame, predictors: dict | None, index: np.ndarray) -> None:
    """Add predictors cycling through their levels with ``index`` (ints)."""
    for name, levels in (predictors or {}).items():
        levels = _levels_of(levels)
        if not levels:
            raise ModelSpecError(f"Predictor {name!r} has no levels.")
        values = [levels[i % len(levels)] for i in index]
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in levels):
            frame[name] = np.asarray(values, dtype=float)
        else:
            frame[name] = _categorical(values, levels)


def repeated_measures(n_subjects: int, times=10, between: dict | None = None, within: dict | None = None,
                      subject: str = "Subject", time: str = "Time", response: str = "y") -> pd.DataFrame:
    """Subjects measured repeatedly: ``n_subjects`` × ``times`` (× within-subject conditions).

    Parameters
    ----------
    n_subjects : int
    times : int or sequence
        Time points (an int ``k`` means 0, 1, …, k−1); a numeric column ``time``.
    between : dict, optional
        Between-subject predictors ``{name: levels}``, assigned to subjects in
        rotation (subject i gets level i mod k): e.g. ``{"group": ["control", "treated"]}``.
    within : dict, optional
        Within-subject factors ``{name: levels}``, fully crossed with the time
        points (every subject has every combination).
    subject, time, response : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per subject, time point and combination of ``within`` levels.

    Examples
    --------
    >>> d = repeated_measures(30, times=5, between={"group": ["control", "treated"]})
    >>> d.shape
    (150, 4)
    """
    if n_subjects < 1:
        raise ModelSpecError("n_subjects must be at least 1.")
    times = _levels_of(times)
    within = within or {}
    grids = [np.arange(n_subjects), np.arange(len(times))] + [np.arange(len(_levels_of(v))) for v in within.values()]
    mesh = np.meshgrid(*grids, indexing="ij")
    cols = [m.ravel() for m in mesh]
    labels = _labels("S", n_subjects)
    frame = pd.DataFrame({subject: _categorical([labels[i] for i in cols[0]], labels)})
    frame[time] = np.asarray([times[i] for i in cols[1]], dtype=float)
    for k, (name, levels) in enumerate(within.items()):
        _assign(frame, {name: levels}, cols[2 + k])
    _assign(frame, between, cols[0])
    frame[response] = 0.0
    return frame


def crossed(n_subjects: int, n_items: int, subject_predictors: dict | None = None,
            item_predictors: dict | None = None, within: dict | None = None, replicates: int = 1,
            subject: str = "Subject", item: str = "Item", response: str = "y") -> pd.DataFrame:
    """Every subject responds to every item (subjects × items crossed).

    Parameters
    ----------
    n_subjects, n_items : int
    subject_predictors : dict, optional
        Between-subject predictors ``{name: levels}`` (subject i gets level i mod k).
    item_predictors : dict, optional
        Between-item predictors (item j gets level j mod k), e.g. the
        condition of a between-item design.
    within : dict, optional
        Within-subject and within-item predictors, counterbalanced: subject i
        sees item j in level (i + j) mod k (a Latin square), so each subject
        sees every level and each item appears in every level.
    replicates : int
        Observations per subject-item pair.
    subject, item, response : str
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per subject × item × replicate.

    Examples
    --------
    >>> d = crossed(20, 10, within={"condition": ["A", "B"]})
    >>> d.shape
    (200, 4)
    """
    if n_subjects < 1 or n_items < 1 or replicates < 1:
        raise ModelSpecError("n_subjects, n_items and replicates must be at least 1.")
    s, i, _ = np.meshgrid(np.arange(n_subjects), np.arange(n_items), np.arange(replicates), indexing="ij")
    s, i = s.ravel(), i.ravel()
    slab, ilab = _labels("S", n_subjects), _labels("I", n_items)
    frame = pd.DataFrame({subject: _categorical([slab[k] for k in s], slab),
                          item: _categorical([ilab[k] for k in i], ilab)})
    _assign(frame, subject_predictors, s)
    _assign(frame, item_predictors, i)
    _assign(frame, within, s + i)
    frame[response] = 0.0
    return frame


def nested(*counts: int, names=None, predictors: dict | None = None, response: str = "y") -> pd.DataFrame:
    """A hierarchy of nested units, one row per unit of the lowest level.

    ``nested(10, 4, 25)`` is 10 schools × 4 classes per school × 25 students
    per class (1,000 rows); ``nested(20, 8, names=("clinic", "patient"))``
    is 20 clinics × 8 patients. Add a last level for repeated observations:
    ``nested(10, 4, 25, 3, names=("school", "class", "student", "wave"))``.

    Labels are unique across the hierarchy (``"T03.C02"``), so ``(1|class)``
    and ``(1|school/class)`` mean the same.

    Parameters
    ----------
    *counts : int
        Units per unit of the level above, from the top level down.
    names : sequence of str, optional
        Column names, one per level; default ``("school", "class", "student")``
        for three levels, ``("cluster", "unit")`` for two, else
        ``level1, level2, …``.
    predictors : dict, optional
        ``{level name: {predictor: levels}}``: predictors constant within each
        unit of that level, assigned in rotation over its units — e.g.
        ``{"school": {"sector": ["public", "private"]}, "student": {"sex": ["F", "M"]}}``.
    response : str

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> d = nested(10, 4, 25, predictors={"school": {"sector": ["public", "private"]}})
    >>> list(d.columns), d.shape
    (['school', 'class', 'student', 'sector', 'y'], (1000, 5))
    """
    if not counts or any(int(k) < 1 for k in counts):
        raise ModelSpecError("nested() needs one count (at least 1) per level, from the top down.")
    counts = [int(k) for k in counts]
    if names is None:
        names = {3: ("school", "class", "student"), 2: ("cluster", "unit")}.get(
            len(counts), tuple(f"level{k + 1}" for k in range(len(counts))))
    names = list(names)
    if len(names) != len(counts):
        raise ModelSpecError(f"names must give {len(counts)} column names, got {names!r}.")
    unknown = set(predictors or {}) - set(names)
    if unknown:
        raise ModelSpecError(f"predictors names unknown level(s) {sorted(unknown)}; levels are {names}.")
    mesh = [m.ravel() for m in np.meshgrid(*[np.arange(k) for k in counts], indexing="ij")]
    frame = pd.DataFrame(index=np.arange(len(mesh[0])))
    prefix = []
    for c in names:  # "S" for school, then "St" for student: readable and distinct
        k = 1
        while c[:k].capitalize() in prefix and k < len(c):
            k += 1
        prefix.append(c[:k].capitalize())
    labels_prev = None
    for depth, (name, size) in enumerate(zip(names, counts)):
        own = _labels(prefix[depth], size)
        labs = [own[k] for k in mesh[depth]]
        if labels_prev is not None:
            labs = [f"{a}.{b}" for a, b in zip(labels_prev, labs)]
        order = list(pd.unique(pd.Series(labs)))
        frame[name] = _categorical(labs, order)
        labels_prev = labs
    for name in names:  # predictors after the grouping columns
        _assign(frame, (predictors or {}).get(name), np.asarray(frame[name].cat.codes))
    frame[response] = 0.0
    return frame


# ---- extend ------------------------------------------------------------------------
def _new_labels(existing: list, k: int, prefix: str) -> list:
    """``k`` labels following ``existing``.

    Numbers continue (``"372"`` after ``"371"``, ints stay ints); labels that
    share a prefix before a number continue it (``"S19"`` after ``"S18"``,
    ``"S019"`` keeps the zero padding); others get ``prefix`` + number.
    """
    if existing and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in existing):
        start = max(int(x) for x in existing) + 1
        return list(range(start, start + k))
    strs = [str(x) for x in existing]
    parts = [re.fullmatch(r"(.*?)(\d+)", x) for x in strs]
    if strs and all(parts) and len({m.group(1) for m in parts}) == 1:
        stem = parts[0].group(1)
        width = min(len(m.group(2)) for m in parts)
        start = max(int(m.group(2)) for m in parts) + 1
        return [f"{stem}{v:0{width}d}" for v in range(start, start + k)]
    out, j = [], 1
    taken = set(strs)
    while len(out) < k:
        lab = f"{prefix}{j}"
        if lab not in taken:
            out.append(lab)
        j += 1
    return out


def _nested_in(data: pd.DataFrame, along: str) -> list:
    """Columns whose every level lies within one level of ``along`` (and that have more levels)."""
    out = []
    n_along = data[along].nunique()
    for col in data.columns:
        if col == along:
            continue
        s = data[col]
        if pd.api.types.is_float_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        k = s.nunique()
        if k <= n_along:
            continue
        if (data.groupby(s, observed=True)[along].nunique() <= 1).all():
            out.append(col)
    return out


def _relabel(value: str, source: str, label: str) -> str:
    """A nested unit's label in a copied group: ``"S2.C1"`` copied from S2 to S5 is ``"S5.C1"``."""
    if value.startswith(source + "."):
        return label + value[len(source):]
    return f"{label}.{value}"


def _with_categories(col: pd.Series, values: list, label_order: list) -> pd.Series:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical(values, categories=label_order))
    return pd.Series(values)


def _extend_levels(data: pd.DataFrame, along: str, n: int, nested_cols) -> pd.DataFrame:
    col = data[along]
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique())
        levels = [c for c in col.cat.categories if c in present]
    else:
        levels = list(pd.unique(col.dropna()))
    if n < 1:
        raise ModelSpecError("n must be at least 1.")
    if n <= len(levels):
        keep = data[col.isin(levels[:n])].copy()
        if isinstance(col.dtype, pd.CategoricalDtype):
            keep[along] = keep[along].cat.remove_unused_categories()
        for c in nested_cols:
            if isinstance(keep[c].dtype, pd.CategoricalDtype):
                keep[c] = keep[c].cat.remove_unused_categories()
        return keep.reset_index(drop=True)
    new = _new_labels(levels, n - len(levels), prefix=f"{along}_")
    pieces = [data]
    for k, label in enumerate(new):
        source = levels[k % len(levels)]
        src = data[col == source].copy()
        src[along] = label
        for c in nested_cols:
            src[c] = [_relabel(str(v), str(source), str(label)) for v in src[c].astype(str)]
        pieces.append(src)
    out = pd.concat([p.astype({c: object for c in [along, *nested_cols]}) for p in pieces], ignore_index=True)
    order = list(levels) + list(new)
    out[along] = _with_categories(col, out[along].tolist(), order)
    for c in nested_cols:
        values = out[c].tolist()
        out[c] = _with_categories(data[c], values, list(pd.unique(pd.Series(values))))
    return out


def _extend_values(data: pd.DataFrame, along: str, values) -> pd.DataFrame:
    existing = list(pd.unique(data[along].dropna()))
    values = list(values)
    pieces = []
    for k, v in enumerate(values):
        src_value = v if v in existing else existing[k % len(existing)]
        src = data[data[along] == src_value].copy()
        src[along] = v
        pieces.append(src)
    out = pd.concat(pieces, ignore_index=True)
    if pd.api.types.is_numeric_dtype(data[along]) and not isinstance(data[along].dtype, pd.CategoricalDtype):
        out[along] = out[along].astype(data[along].dtype)
    if isinstance(data[along].dtype, pd.CategoricalDtype):
        out[along] = pd.Categorical(out[along].astype(object), categories=list(pd.unique(pd.Series(values))))
    return out


def _extend_within(data: pd.DataFrame, within, n: int) -> pd.DataFrame:
    cols = [c.strip() for c in within.split("+")] if isinstance(within, str) else list(within)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ModelSpecError(f"extend: unknown column(s) {missing}.")
    if n < 1:
        raise ModelSpecError("n must be at least 1.")
    parts = []
    for _, grp in data.groupby(cols, observed=True, sort=False):
        reps = np.arange(n) % len(grp)
        parts.append(grp.iloc[reps])
    out = pd.concat(parts, ignore_index=True)
    return out


def extend(data: pd.DataFrame, along: str | None = None, n: int | None = None, values=None,
           within=None, nested=None) -> pd.DataFrame:
    """A larger (or smaller) design with the same structure — simr's ``extend``.

    Three ways:

    - ``extend(data, along="Subject", n=40)``: ``n`` levels of a grouping
      factor. New levels copy the rows of existing levels in turn (same
      within-group structure, same predictors), with new labels; ``n`` below
      the current count keeps the first ``n`` levels. Factors nested in
      ``along`` (every level inside one level of ``along``, e.g. classes in
      schools) get new labels in the copies; name them with ``nested=`` when
      the automatic detection is not what you want.
    - ``extend(data, along="Days", values=range(20))``: new values of a
      variable; the rows of an existing value are copied for each new value.
    - ``extend(data, within="Subject", n=20)``: ``n`` rows per level (or per
      combination of levels: ``within="Subject+Days"`` or a list), made by
      repeating each group's rows in turn.

    Parameters
    ----------
    data : pandas.DataFrame
    along : str, optional
    n : int, optional
    values : sequence, optional
    within : str or list of str, optional
    nested : list of str, optional

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import lmmjax as lmm
    >>> sleep = lmm.datasets.load("sleepstudy")
    >>> extend(sleep, along="Subject", n=30)["Subject"].nunique()
    30
    >>> extend(sleep, within="Subject", n=20).shape[0]
    360
    """
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, not {type(data).__name__}.")
    if within is not None:
        if along is not None or n is None:
            raise ModelSpecError("extend(within=...) takes n= (rows per group) and no along=.")
        return _extend_within(data, within, int(n))
    if along is None:
        raise ModelSpecError("extend needs along= (with n= or values=) or within= (with n=).")
    if along not in data.columns:
        raise ModelSpecError(f"extend: unknown column {along!r}.")
    if values is not None:
        if n is not None:
            raise ModelSpecError("Give either n= (number of levels) or values=, not both.")
        return _extend_values(data, along, values)
    if n is None:
        raise ModelSpecError("extend(along=...) needs n= (number of levels) or values=.")
    nested_cols = _nested_in(data, along) if nested is None else list(nested)
    return _extend_levels(data, along, int(n), nested_cols)
