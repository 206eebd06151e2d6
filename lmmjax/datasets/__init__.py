"""Example data sets bundled with lmmjax.

The data sets are exported from R's **lme4** package (see
``tests/reference/export_datasets.R``) so that results can be compared
one-to-one with ``lme4::lmer``.  Factor columns are returned as unordered
:class:`pandas.Categorical` columns whose categories follow R's level order,
so treatment contrasts (the first level is the reference) match R's default.

Available data sets
-------------------
``sleepstudy``, ``dyestuff``, ``dyestuff2``, ``penicillin``, ``pastes``,
``insteval``, ``cake``; for GLMMs ``cbpp``, ``grouseticks`` and
``verbagg`` (lme4's ``VerbAgg``; its ordered ``resp`` is returned unordered);
for residual structures ``ovary`` and ``bodyweight`` (nlme's ``Ovary``, ``BodyWeight``).

Examples
--------
>>> from lmmjax import datasets
>>> datasets.available()
['bodyweight', 'cake', 'cbpp', 'dyestuff', 'dyestuff2', 'grouseticks', 'insteval', 'ovary', 'pastes', 'penicillin', 'sleepstudy', 'verbagg']
>>> df = datasets.load("sleepstudy")
>>> df.shape
(180, 3)
>>> list(df["Subject"].cat.categories[:3])
['308', '309', '310']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["available", "load", "metadata"]

_DATA_DIR = Path(__file__).parent / "data"


def available() -> list[str]:
    """Return the names of the bundled data sets.

    Returns
    -------
    list of str
        Lower-case data set names, sorted alphabetically.  Any of them can be
        passed to :func:`load`.

    Examples
    --------
    >>> from lmmjax.datasets import available
    >>> "sleepstudy" in available()
    True
    """
    return sorted(p.name[: -len(".json")] for p in _DATA_DIR.glob("*.json"))


def _resolve(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    names = available()
    if key not in names:
        raise ValueError(
            f"unknown data set {name!r}; available data sets: {', '.join(names)}"
        )
    return key


def metadata(name: str) -> dict[str, Any]:
    """Return the metadata recorded when the data set was exported from R.

    Parameters
    ----------
    name : str
        Data set name (case-insensitive), e.g. ``"sleepstudy"`` or ``"Dyestuff"``.

    Returns
    -------
    dict
        Keys include ``"factors"`` (column -> list of levels in R's order),
        ``"ordered"`` (columns that were ordered factors in R), ``"dtypes"``
        (column -> ``"factor"``, ``"double"`` or ``"integer"``), ``"nrow"``
        and ``"source"``.

    Examples
    --------
    >>> from lmmjax.datasets import metadata
    >>> metadata("cake")["ordered"]
    ['temperature']
    """
    key = _resolve(name)
    with open(_DATA_DIR / f"{key}.json", encoding="utf-8") as fh:
        return json.load(fh)


def load(name: str) -> pd.DataFrame:
    """Load a bundled example data set.

    Parameters
    ----------
    name : str
        Data set name, case-insensitive (``"sleepstudy"``, ``"Dyestuff"``,
        ``"InstEval"``, ...).  See :func:`available`.

    Returns
    -------
    pandas.DataFrame
        A fresh copy of the data.  Factor columns are unordered
        :class:`pandas.Categorical` with categories in R's level order (R's
        ordered factors, such as ``cake$temperature``, are also returned
        unordered, i.e. they get treatment contrasts); R ``double`` columns are
        ``float64`` and R ``integer`` columns ``int64``.

    Raises
    ------
    ValueError
        If `name` is not one of :func:`available`.

    Examples
    --------
    >>> from lmmjax.datasets import load
    >>> df = load("Dyestuff")
    >>> df.dtypes["Yield"], df["Batch"].dtype.name
    (dtype('float64'), 'category')
    >>> list(df["Batch"].cat.categories)
    ['A', 'B', 'C', 'D', 'E', 'F']
    """
    meta = metadata(name)
    dtypes: dict[str, str] = meta["dtypes"]
    factors: dict[str, list[str]] = meta.get("factors") or {}
    read_types = {
        col: (str if kind == "factor" else np.float64 if kind == "double" else "Int64")
        for col, kind in dtypes.items()
    }
    df = pd.read_csv(
        _DATA_DIR / meta["file"],
        dtype=read_types,
        keep_default_na=False,
        na_values={c: ["NA"] for c, k in dtypes.items() if k != "factor"},
    )
    for col, kind in dtypes.items():
        if kind == "factor":
            levels = [str(v) for v in factors[col]]
            cat = pd.Categorical(df[col], categories=levels, ordered=False)
            if cat.isna().any() and not df[col].isna().any():
                raise RuntimeError(f"level mismatch in column {col!r} of {meta['file']}")
            df[col] = cat
        elif kind == "integer":
            s = df[col]
            df[col] = s.astype(np.int64) if not s.isna().any() else s.astype(np.float64)
    return df[meta["columns"]]
