"""Likelihood-ratio tests of nested models (lme4's ``anova(m0, m1, ...)``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..lmer import ml_fit
from ..results.varcorr import term_covariances
from ..validate import check_bool
from .distributions import chi2_sf

LRT_COLUMNS = ["npar", "aic", "bic", "loglik", "deviance", "chisq", "df", "p_value"]


class AnovaTable(pd.DataFrame):
    """A DataFrame that prints its notes (``attrs["notes"]``) under the table."""

    @property
    def _constructor(self):
        return AnovaTable

    def _notes_text(self) -> str:
        notes = self.attrs.get("notes", [])
        return "".join(f"\nNote: {n}" for n in notes)

    def __repr__(self) -> str:
        models = self.attrs.get("formulas")
        head = ""
        if models:
            head = "Models:\n" + "\n".join(f"{k}: {v}" for k, v in models.items()) + "\n"
        return head + super().__repr__() + self._notes_text()

    def _repr_html_(self) -> str:
        import html

        notes = "".join(f"<p><i>Note: {html.escape(n)}</i></p>" for n in self.attrs.get("notes", []))
        return super()._repr_html_() + notes


def _covariance_entries(fit) -> set:
    """Free covariance entries of the random part: {(group, col_a, col_b)} with a ≤ b by name."""
    out = set()
    for tm, _ in term_covariances(fit.model, fit.estimates.theta, 1.0):  # names only (GLMMs have no σ)
        group = frozenset(tm.group.split(":"))
        cols = tm.columns
        for i in range(len(cols)):
            for j in range(i, len(cols)):
                out.add((group, *sorted((cols[i], cols[j]))))
    return out


def _same_rows(a, b) -> bool:
    ra, rb = a.model.frame.rows, b.model.frame.rows
    if a.nobs != b.nobs or len(ra) != len(rb) or not np.array_equal(np.asarray(ra), np.asarray(rb)):
        return False
    return bool(np.allclose(a.model.y, b.model.y, rtol=1e-12, atol=0.0))


def _residual_parts(fit) -> tuple:
    """(correlation, variance) of the fit's residual structure (None, None without one)."""
    rows = getattr(fit.model, "residual", None)
    return (None, None) if rows is None else (rows.correlation, rows.variance)


def _nested(small, large) -> bool:
    fixed_ok = set(small.model.frame.fixed_names) <= set(large.model.frame.fixed_names)
    residual_ok = all(a is None or a == b for a, b in zip(_residual_parts(small), _residual_parts(large)))
    return fixed_ok and residual_ok and _covariance_entries(small) <= _covariance_entries(large)


def _compare_on_reml(fits) -> bool:
    """REML fits with the same fixed effects differing in a residual structure are compared on
    the REML criterion, as nlme's ``anova.lme`` (lme4 has no residual structures and always
    refits by ML)."""
    first = fits[0].model
    return (all(f.reml for f in fits) and any(_residual_parts(f) != (None, None) for f in fits)
            and all(f.model.X.shape == first.X.shape and np.allclose(f.model.X, first.X) for f in fits))


def _label(fit) -> str:
    """The formula, with the residual structure named."""
    corr, var = _residual_parts(fit)
    extra = []
    if corr is not None:
        extra.append(f"correlation {corr.label} within {corr.group}" + (f" (time {corr.time})" if corr.time else ""))
    if var is not None:
        extra.append(f"variance VarIdent({var.column})")
    return fit.formula + ("; " + ", ".join(extra) if extra else "")


def anova_models(*fits, names=None, refit: bool = True) -> pd.DataFrame:
    """Likelihood-ratio tests of nested models, as lme4's ``anova(m0, m1, ...)``.

    REML fits are refitted by ML first (``refit=True``, as lme4; the REML
    criterion cannot compare models with different fixed effects). REML fits
    with the same fixed effects that differ in a residual structure
    (``correlation=``, ``variance=``) are compared on REML, as nlme does. Models
    are ordered by their number of parameters; each row's χ² compares it
    with the row above.

    Parameters
    ----------
    *fits : LmerFit, at least two, fitted to the same rows of the same data
    names : list of str, optional
        Row labels, in the order the fits were given (default ``m0, m1, …``).
    refit : bool
        Refit REML fits by ML (default True).

    Returns
    -------
    DataFrame (printing its notes) with columns ``npar, aic, bic, loglik,
    deviance, chisq, df, p_value``; ``attrs["notes"]`` says when REML fits
    were refitted and when a variance component is tested on the boundary of
    its parameter space (the χ² p-value is then conservative).

    Raises
    ------
    ModelSpecError
        If the models were fitted to different rows or responses, or are not
        nested (fixed effects and random-effect covariances of each smaller
        model contained in the next larger one).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> df = lmm.datasets.load("sleepstudy")
    >>> m0 = lmm.lmer("Reaction ~ Days + (1 | Subject)", df)
    >>> m1 = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
    >>> round(float(lmm.anova(m0, m1).loc["m1", "chisq"]), 2)
    42.14
    """
    refit = check_bool(refit, "refit")
    if len(fits) < 2:
        raise ModelSpecError("anova() of models needs at least two fits; for F tests of one fit use fit.anova().")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(fits))]
    if len(names) != len(fits):
        raise ModelSpecError(f"{len(names)} names for {len(fits)} models.")
    for name, f in zip(names[1:], fits[1:]):
        if not _same_rows(fits[0], f):
            raise ModelSpecError(
                f"Models {names[0]!r} and {name!r} were fitted to different data "
                f"({fits[0].nobs} and {f.nobs} rows, or other rows/responses); likelihood-ratio "
                "tests need the same observations. Drop missing values from the data first."
            )
    notes = []
    npar = np.array([f.n_params for f in fits])
    order = np.argsort(npar, kind="stable")
    fits = [fits[i] for i in order]
    names = [names[i] for i in order]
    for (n0, f0), (n1, f1) in zip(zip(names, fits), zip(names[1:], fits[1:])):
        if not _nested(f0, f1):
            raise ModelSpecError(
                f"Models {n0!r} ({f0.formula}) and {n1!r} ({f1.formula}) are not nested: the fixed "
                "effects and random-effect (co)variances of the smaller model must all be in the "
                "larger one. Compare non-nested models by AIC/BIC instead."
            )
        added = _covariance_entries(f1) - _covariance_entries(f0)
        if any(a == b for _, a, b in added):  # a new variance: tested at its boundary 0
            notes.append(
                f"{n1} vs {n0} tests variance components on the boundary of the parameter space "
                "(a variance of 0 under the smaller model): the χ² p-value is conservative "
                "(too large); the null distribution is a mixture of χ² distributions."
            )
        corr0, corr1 = _residual_parts(f0)[0], _residual_parts(f1)[0]
        if corr0 is None and corr1 is not None and corr1.label.startswith("continuous"):
            notes.append(f"{n1} vs {n0} tests phi = 0 of a continuous-time AR(1), the boundary of its "
                         "range (0, 1): the χ² p-value is conservative.")
    if refit and any(f.reml for f in fits) and _compare_on_reml(fits):
        notes.insert(0, "REML fits with the same fixed effects compared on the REML criterion (as nlme)")
    elif refit and any(f.reml for f in fits):
        notes.insert(0, "refitting model(s) with ML (instead of REML)")
        fits = [ml_fit(f) for f in fits]
    llk = np.array([f.loglik for f in fits])
    npar = np.array([f.n_params for f in fits], dtype=int)
    chisq = np.concatenate([[np.nan], 2.0 * np.maximum(0.0, np.diff(llk))])
    dfc = np.concatenate([[np.nan], np.diff(npar).astype(float)])
    with np.errstate(invalid="ignore"):
        p = np.where(dfc > 0, chi2_sf(chisq, np.where(dfc > 0, dfc, 1.0)), np.nan)
    p[0] = np.nan
    out = AnovaTable({
        "npar": npar, "aic": [f.aic for f in fits], "bic": [f.bic for f in fits], "loglik": llk,
        "deviance": -2.0 * llk, "chisq": chisq, "df": dfc, "p_value": p,
    }, index=pd.Index(names))
    out.attrs["notes"] = notes
    out.attrs["formulas"] = {n: _label(f) for n, f in zip(names, fits)}
    return out
