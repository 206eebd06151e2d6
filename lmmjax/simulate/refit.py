"""One design, many outcomes: :func:`refit_many`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..validate import check_optional_bool, check_optional_count, response_problem
from .batched import fit_batch
from .tables import estimates_frame, sdcor_names


def _responses(fit, Y):
    """(B, nobs) array and names from an array (columns = responses) or a DataFrame."""
    nobs = fit.nobs
    if isinstance(Y, pd.Series):
        Y = Y.to_frame()
    if isinstance(Y, pd.DataFrame):
        names = [str(c) for c in Y.columns]
        rows = pd.Index(fit.model.frame.rows)
        if rows.isin(Y.index).all() and Y.index.is_unique:
            Y = Y.loc[rows]  # aligned on the row labels of the data the fit used
        elif len(Y) != nobs:
            raise ModelSpecError(
                f"Y has {len(Y)} rows but the model uses {nobs}, and its index does not hold the "
                "labels of the rows the fit used, so the responses cannot be aligned.")
        non_numeric = [c for c in Y.columns if not pd.api.types.is_numeric_dtype(Y[c])
                       or pd.api.types.is_bool_dtype(Y[c])]
        if non_numeric:
            raise ModelSpecError(f"Y's column(s) {non_numeric[:5]} are not numeric responses.")
        values = Y.to_numpy(dtype=float).T
    else:
        try:
            values = np.asarray(Y, dtype=float)
        except (TypeError, ValueError):
            raise ModelSpecError("Y must be a numeric array (observations × responses) or DataFrame.") from None
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != nobs:
            raise ModelSpecError(
                f"Y must have {nobs} rows (one per observation used by the fit) and one column per "
                f"response; got shape {values.shape}.")
        values = values.T
        names = [f"y{i}" for i in range(values.shape[0])]
    if values.shape[0] == 0:
        raise ModelSpecError("Y has no responses.")
    return np.ascontiguousarray(values), names


def refit_many(fit, Y, *, format: str = "wide", reml: bool | None = None, batch_size: int | None = None,
               progress: bool | None = None, options=None, devices=None) -> pd.DataFrame:
    """Fit the same model to many response vectors (one design, thousands of outcomes).

    Parameters
    ----------
    fit : LmerFit
        Supplies the design (X, Z, grouping) and the warm start θ̂.
    Y : array (nobs, m) or DataFrame
        One response per column. A DataFrame whose index holds the labels of
        the rows the fit used (``fit.model.frame.rows``) is aligned on them
        (extra rows, e.g. dropped for missing values, are ignored); otherwise
        rows are taken in order and must number ``fit.nobs``.
    format : {"wide", "long"}
        ``wide``: one row per response with the fixed effects, ``sd(...)``,
        ``cor(...)``, ``sigma``, ``loglik``, ``deviance``, ``converged``,
        ``singular``, ``n_iter``. ``long``: one row per response and
        parameter with ``estimate`` and ``std_error`` (fixed effects) and the
        response's flags.
    reml : bool, optional
        Default: as the fit.
    batch_size, progress, options, devices
        As :func:`lmmjax.simulate.fit_batch`.

    Returns
    -------
    DataFrame indexed by response name (``wide``), with a ``problem``
    column: empty for a fitted response; for a response with missing or
    infinite values, or a constant one, the reason: such a response is not
    fitted, its row has ``converged = False`` and NaN estimates, and the
    others are unaffected.

    Examples
    --------
    >>> import numpy as np, lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> Y = fit.simulate(50, seed=2).T          # 180 × 50: one outcome per column
    >>> table = fit.refit_many(Y)
    >>> table.shape[0]
    50
    """
    if format not in ("wide", "long"):
        raise ModelSpecError(f"format must be 'wide' or 'long', got {format!r}.")
    reml = check_optional_bool(reml, "reml")
    batch_size = check_optional_count(batch_size, "batch_size")
    values, names = _responses(fit, Y)
    model = fit.model if reml is None or reml == fit.reml else fit.model.with_reml(reml)
    problems = np.array([response_problem(v) or "" for v in values], dtype=object)
    bad = problems != ""
    # Unusable responses are not fitted: the fit's own response stands in, and its results are blanked.
    res = fit_batch(model, np.where(bad[:, None], fit.model.y[None, :], values), theta0=fit.theta,
                    batch_size=batch_size, progress=progress, options=options, devices=devices)
    for key in ("theta", "beta", "sigma", "deviance", "vcov_unscaled"):
        res[key] = np.where(bad.reshape((-1,) + (1,) * (res[key].ndim - 1)), np.nan, res[key])
    res["converged"] = res["converged"] & ~bad
    index = pd.Index(names, name="response")
    table = estimates_frame(model, res, sdcor_names(model, fit.theta, fit.sigma), index=index)
    flags = pd.DataFrame({
        "loglik": -0.5 * res["deviance"], "deviance": res["deviance"], "converged": res["converged"],
        "singular": res["singular"] & ~bad, "n_iter": np.where(bad, 0, res["n_iter"]), "problem": problems,
    }, index=index)
    if format == "wide":
        return pd.concat([table, flags], axis=1)
    long = table.reset_index().melt(id_vars="response", var_name="term", value_name="estimate")
    fixed = list(model.frame.fixed_names)
    se = np.sqrt(np.einsum("bii->bi", res["vcov_unscaled"])) * res["sigma"][:, None]
    se_long = pd.DataFrame(se, index=index, columns=fixed).reset_index().melt(
        id_vars="response", var_name="term", value_name="std_error")
    long = long.merge(se_long, on=["response", "term"], how="left")
    long = long.merge(flags[["converged", "singular", "problem"]].reset_index(), on="response", how="left")
    order = {name: i for i, name in enumerate(names)}
    long["_r"] = long["response"].map(order)
    terms = {t: i for i, t in enumerate(table.columns)}
    long["_t"] = long["term"].map(terms)
    return long.sort_values(["_r", "_t"]).drop(columns=["_r", "_t"]).reset_index(drop=True)
