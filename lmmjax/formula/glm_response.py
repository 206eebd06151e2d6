"""The response of a GLMM: what R's ``binomial()``/``poisson()`` accept, checked.

A binomial response becomes ``(y, trials)`` as R's ``glm`` has it: ``y`` the
proportion of successes and ``trials`` a factor on the prior weights:

- 0/1 numbers, booleans (False = failure) and a two-level factor (the first
  level is failure, as R) are Bernoulli rows (trials 1);
- ``cbind(successes, failures)`` gives ``y = s / (s + f)``, trials ``s + f``;
- a proportion in [0, 1] needs ``weights=`` with the number of trials
  (checked by :func:`glm_prior_weights`, which sees the weights).

A Poisson response must be non-negative whole numbers. Each violation is a
:class:`~lmmjax.errors.ModelSpecError` naming the column.

Examples
--------
>>> import numpy as np
>>> r = binomial_from_counts(np.array([2.0, 0.0]), np.array([3.0, 4.0]), "cbind(k, n - k)")
>>> r.y, r.trials
(array([0.4, 0. ]), array([5., 4.]))
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataWarning, ModelSpecError
from ..text import plain

#: How far from a whole number a count (or weight × proportion) may be.
WHOLE_TOL = 1e-8


@dataclass(frozen=True)
class GlmResponse:
    """A GLMM response after checks.

    Attributes
    ----------
    y : ndarray
        Proportions of successes (binomial) or counts (Poisson).
    trials : ndarray
        Factor on the prior weights: ``s + f`` for ``cbind``, else 1.
    kind : {"bernoulli", "cbind", "proportion", "count"}
    name : str
        The response as written, for messages.
    """

    y: np.ndarray
    trials: np.ndarray
    kind: str
    name: str


def _rows(mask: np.ndarray) -> str:
    k = int(np.sum(mask))
    return f"{k} row{'s' if k != 1 else ''}"


def _categorical_levels(col: pd.Series) -> list | None:
    """The levels of a categorical, boolean or text column (None for numbers)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.categories)
    if pd.api.types.is_bool_dtype(col):
        return [False, True]
    if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
        return sorted(col.dropna().unique().tolist())
    return None


def binomial_from_column(col: pd.Series, name: str) -> GlmResponse:
    """A binomial response from one data column: 0/1, proportions, booleans or a two-level factor.

    Examples
    --------
    >>> r = binomial_from_column(pd.Series(pd.Categorical(["N", "Y", "Y"])), "r2")
    >>> r.y, r.kind
    (array([0., 1., 1.]), 'bernoulli')
    """
    levels = _categorical_levels(col)
    if levels is not None:
        if len(levels) > 2:
            shown = ", ".join(map(str, levels[:6])) + (", ..." if len(levels) > 6 else "")
            raise ModelSpecError(
                f"Response {name!r} has {len(levels)} levels ({shown}); a binomial GLMM needs two "
                "(the first level is failure, the second success). Combine levels into a two-level "
                "factor or a 0/1 column first.")
        if len(levels) < 2:
            raise ModelSpecError(
                f"Response {name!r} has a single value ({plain(levels[0]) if levels else 'none'}) in the "
                "rows used; there is nothing to model.")
        y = (col.astype(object).to_numpy() == levels[1]).astype(float)
        return GlmResponse(y=y, trials=np.ones(len(y)), kind="bernoulli", name=name)
    return binomial_from_values(np.asarray(col, dtype=float), name)


def binomial_from_values(y: np.ndarray, name: str) -> GlmResponse:
    """A binomial response from numbers: 0/1 (Bernoulli) or proportions in [0, 1]."""
    y = np.asarray(y, dtype=float)
    if np.any(y < 0) or np.any(y > 1):
        bad = (y < 0) | (y > 1)
        raise ModelSpecError(
            f"Response {name!r} has values outside [0, 1] in {_rows(bad)} (e.g. {plain(y[bad][0])}): "
            "a binomial response is 0/1, a proportion of successes (with weights= giving the "
            "number of trials), or cbind(successes, failures). For counts without an upper "
            "limit use family='poisson'.")
    kind = "bernoulli" if np.all((y == 0) | (y == 1)) else "proportion"
    return GlmResponse(y=y, trials=np.ones(len(y)), kind=kind, name=name)


def binomial_from_counts(successes: np.ndarray, failures: np.ndarray, name: str) -> GlmResponse:
    """``cbind(successes, failures)`` -> proportions and trials (rows with no trials get y = 0)."""
    s, f = np.asarray(successes, float), np.asarray(failures, float)
    if np.any(s < 0):
        raise ModelSpecError(f"The successes in {name} are negative in {_rows(s < 0)}; counts must be >= 0.")
    if np.any(f < 0):
        raise ModelSpecError(
            f"The response {name} has more successes than trials in {_rows(f < 0)} "
            "(negative failures); check the columns, e.g. cbind(successes, trials - successes).")
    n = s + f
    frac = np.abs(np.concatenate([s, f]) - np.round(np.concatenate([s, f])))
    if np.any(frac > WHOLE_TOL):
        warnings.warn(f"The response {name} has non-integer counts of successes or failures "
                      "(R warns the same: 'non-integer counts in a binomial glm').", DataWarning, stacklevel=5)
    y = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    return GlmResponse(y=y, trials=n, kind="cbind", name=name)


def poisson_counts(col, name: str) -> GlmResponse:
    """A Poisson response: whole numbers >= 0 (booleans and factors are refused)."""
    if isinstance(col, pd.Series) and _categorical_levels(col) is not None:
        raise ModelSpecError(
            f"Response {name!r} is categorical ({col.dtype}); a Poisson GLMM needs counts "
            "(whole numbers >= 0). For a yes/no outcome use family='binomial'.")
    y = np.asarray(col, dtype=float)
    if np.any(y < 0):
        raise ModelSpecError(
            f"Response {name!r} has negative values in {_rows(y < 0)} (e.g. {plain(y[y < 0][0])}); "
            "Poisson counts must be >= 0.")
    frac = np.abs(y - np.round(y)) > WHOLE_TOL
    if np.any(frac):
        raise ModelSpecError(
            f"Response {name!r} has non-integer values in {_rows(frac)} (e.g. {plain(y[frac][0])}); "
            "a Poisson GLMM needs whole-number counts. For rates, model the count with an offset "
            "of log(exposure).")
    return GlmResponse(y=y, trials=np.ones(len(y)), kind="count", name=name)


def glm_prior_weights(resp: GlmResponse, weights: np.ndarray, weights_given: bool) -> np.ndarray:
    """The prior weights of the GLMM: ``weights × trials``, with the binomial checks that need them.

    A proportion (not 0/1) needs ``weights=`` giving the number of trials;
    weights × proportion should then be whole numbers of successes (R warns
    otherwise, and so does this).

    Examples
    --------
    >>> r = binomial_from_values(np.array([0.25, 0.5]), "prop")
    >>> glm_prior_weights(r, np.array([4.0, 2.0]), True)
    array([4., 2.])
    """
    w = np.asarray(weights, dtype=float) * resp.trials
    if resp.kind == "proportion":
        if not weights_given:
            raise ModelSpecError(
                f"Response {resp.name!r} has proportions between 0 and 1, but no weights= with the "
                "number of trials: give weights='<trials column>', or write the response as "
                "cbind(successes, failures).")
        k = w * resp.y
        if np.any(np.abs(k - np.round(k)) > WHOLE_TOL * np.maximum(1.0, np.abs(k))):
            warnings.warn(
                f"weights × {resp.name!r} is not a whole number of successes in some rows "
                "(R warns the same: 'non-integer #successes in a binomial glm').", DataWarning, stacklevel=4)
    return w
