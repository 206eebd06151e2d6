"""Red flags: what looks wrong with a fit, in plain words, and what to do.

:func:`check` runs every rule below and returns a :class:`FlagList` (a
``list`` of :class:`RedFlag`); softer remarks (severity ``"note"``) are kept
apart in ``FlagList.notes`` so that a clean fit gives an empty list.

==========================  ==========================================================
code                        rule
==========================  ==========================================================
``singular_fit``            the estimate is on the boundary (lme4's ``isSingular``:
                            a diagonal entry of Λ below 1e-4)
``correlation_boundary``    a random-effect correlation within 0.02 of ±1
``tiny_variance``           a variance component that is not zero but contributes
                            less than 1 % of the residual variance (its variance
                            times the mean square of its column in the data)
``few_levels``              a grouping factor with fewer than 5 levels (warning);
                            5 to 9 levels give a note
``imprecise_variance``      a standard deviation whose approximate standard error
                            exceeds half the estimate (its 95 % interval spans more
                            than a factor of 7); delta method, see
                            :mod:`lmmjax.diagnostics.information`
``not_converged``           the optimizer's gradient check failed
``hessian_not_pd``          the Hessian of the criterion at θ̂ (interior parameters)
                            is not positive definite
``large_gradient``          lme4's relative gradient max|H⁻¹g| above 0.002
``implicit_nesting``        inner labels reused across outer units while the formula
                            treats the factors as crossed (see :func:`nesting_trap`)
``numeric_codes``           a continuous predictor that looks like numeric codes for
                            a category (see :func:`numeric_code_columns`)
``heteroscedasticity``      Spearman correlation of |Pearson residual| with the
                            fitted values: p < 0.01 and |ρ| ≥ 0.1
``residual_autocorrelation`` lag-1 autocorrelation of the within-group residuals in
                            time order ≥ 0.25 with p < 0.01 (time column given to
                            ``check(time=)``, or a predictor named like a time with
                            distinct values within a grouping factor's levels); with
                            an AR(1)/CAR(1) structure, of its normalized residuals
``dropped_columns``         (note) fixed-effect columns dropped as collinear
``estimated_loglik``        (note) the iterative block kind: log|S| estimated by
                            stochastic Lanczos quadrature
``cg_not_converged``        the iterative kind's CG solves at θ̂ left a relative
                            residual above 1e-6 (``CG_RESIDUAL_LIMIT``)
==========================  ==========================================================
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

import formulaic
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelSpecError
from ..formula.model_frame import rank_deficiency_message
from ..structure.iterative import CG_RESIDUAL_LIMIT
from ..structure.residual import CAR1
from ..results.varcorr import term_covariances
from .information import curvature, variance_component_uncertainty

SEVERITIES = ("warning", "note")

CORRELATION_MARGIN = 0.02
TINY_VARIANCE_RATIO = 0.01
FEW_LEVELS = 5
SOME_LEVELS = 10
IMPRECISE_RATIO = 0.5
GRADIENT_TOL = 0.002
HETERO_ALPHA = 0.01
HETERO_MIN_RHO = 0.1


@dataclass(frozen=True)
class RedFlag:
    """One problem found in a fit.

    Attributes
    ----------
    code : str
        Stable identifier, e.g. ``"singular_fit"`` (see the module table).
    message : str
        What was found, in plain words, with the numbers.
    advice : str
        What to do about it.
    severity : {"warning", "note"}
    """

    code: str
    message: str
    advice: str
    severity: str = "warning"

    def __str__(self) -> str:
        label = "Note" if self.severity == "note" else "Red flag"
        return f"{label} [{self.code}]: {self.message}\n  What to do: {self.advice}"


class FlagList(list):
    """The red flags of a fit (a list), with softer notes in ``.notes``.

    Examples
    --------
    >>> flags = fit.check()  # doctest: +SKIP
    >>> [f.code for f in flags]  # doctest: +SKIP
    []
    >>> print(flags)  # doctest: +SKIP
    No red flags.
    """

    def __init__(self, flags=(), notes=()):
        super().__init__(flags)
        self.notes = list(notes)

    @classmethod
    def of(cls, *found) -> "FlagList":
        """The flags and notes of several checks' results (lists of :class:`RedFlag`, or
        ``(flags, notes)`` pairs), sorted by severity: ``"note"`` goes to ``.notes``."""
        items = [f for r in found for part in (r if isinstance(r, tuple) else (r,)) for f in part]
        return cls([f for f in items if f.severity != "note"], [f for f in items if f.severity == "note"])

    @property
    def codes(self) -> list:
        return [f.code for f in self]

    def __str__(self) -> str:
        lines = [str(f) for f in self] or ["No red flags."]
        lines += [str(f) for f in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"FlagList({list(self)!r}, notes={self.notes!r})"

    def _repr_html_(self) -> str:
        if not self and not self.notes:
            return "<p>No red flags.</p>"
        items = []
        for f in list(self) + self.notes:
            label = "Note" if f.severity == "note" else "Red flag"
            items.append(f"<li><b>{label}</b> <code>{html.escape(f.code)}</code>: {html.escape(f.message)}"
                         f"<br><i>What to do:</i> {html.escape(f.advice)}</li>")
        return "<ul>" + "".join(items) + "</ul>"


# ---- helpers --------------------------------------------------------------------
def _terms(fit):
    return fit.model.frame.terms


def _term_label(tm) -> str:
    return f"({' + '.join(tm.columns)} | {tm.group})"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _term_covariances(fit):
    return term_covariances(fit.model, fit.theta, fit.sigma)


# ---- rules ------------------------------------------------------------------------
def singular_fit(fit) -> list:
    if not fit.singular:
        return []
    zero, degenerate = [], []
    for tm, S in _term_covariances(fit):
        sd = np.sqrt(np.maximum(np.diag(S), 0.0))
        for i, col in enumerate(tm.columns):
            if sd[i] <= 1e-4 * fit.sigma:
                zero.append(f"'{col}' for '{tm.group}'")
        if len(tm.columns) > 1:
            ev = np.linalg.eigvalsh(S)
            if ev.min() <= 1e-8 * max(ev.max(), 1e-300) and not any(sd <= 1e-4 * fit.sigma):
                degenerate.append(_term_label(tm))
    parts = []
    if zero:
        parts.append("the variance of " + ", ".join(zero) + " is estimated as zero")
    if degenerate:
        parts.append("the covariance matrix of " + ", ".join(degenerate)
                     + " is degenerate (random effects perfectly correlated)")
    what = "; ".join(parts) if parts else "a variance parameter is on its boundary"
    vector_terms = any(len(tm.columns) > 1 for tm in _terms(fit))
    simplify = ("remove the term with zero variance, or the correlations of a vector-valued term "
                "(write '||' instead of '|')" if vector_terms else "remove the term with zero variance")
    return [RedFlag(
        "singular_fit",
        f"The fit is singular: {what}. The data do not support this random-effects structure.",
        f"Simplify the random effects: {simplify}, refit and compare the fits with lmm.anova(). "
        "Do not read a zero variance as proof that the groups do not differ; it means the data "
        "cannot tell this variation from residual noise. If the design requires the term, keep "
        "it and say that its variance was estimated as zero.",
    )]


def correlation_boundary(fit) -> list:
    out = []
    vc = fit.varcorr
    for row in vc[vc.term2.notna()].itertuples(index=False):
        if np.isfinite(row.sdcor) and abs(row.sdcor) >= 1 - CORRELATION_MARGIN:
            out.append(RedFlag(
                "correlation_boundary",
                f"The correlation between the random '{row.term1}' and '{row.term2}' effects for "
                f"'{row.group}' is estimated as {row.sdcor:.3f}, within {CORRELATION_MARGIN} of "
                f"{'+1' if row.sdcor > 0 else '-1'}: the model is overparameterised.",
                f"The data cannot estimate this correlation. Fit the model without it ('||' in place "
                f"of '|' for '{row.group}'), or drop the random '{row.term2}' effect, and compare the "
                "fits with lmm.anova(); keep the simpler model unless the data clearly prefer the "
                "complex one.",
            ))
    return out


def tiny_variance(fit) -> list:
    out = []
    s2 = fit.sigma ** 2
    for tm, S in _term_covariances(fit):
        for i, col in enumerate(tm.columns):
            var = S[i, i]
            if var <= (1e-4 * fit.sigma) ** 2:
                continue  # exactly zero: reported as singular_fit
            scale = float(np.mean(tm.Z[:, i] ** 2))
            ratio = var * scale / s2
            if ratio < TINY_VARIANCE_RATIO:
                what = "variance" if col == "Intercept" else f"variance (times the mean square of '{col}')"
                out.append(RedFlag(
                    "tiny_variance",
                    f"The random '{col}' effect for '{tm.group}' is close to zero: its {what} is "
                    f"{100 * ratio:.2g}% of the residual variance.",
                    "This term explains almost no variation. Consider removing it and comparing the "
                    "fits with lmm.anova(); the fixed effects will barely change. Keep it if the study "
                    "design requires it (the units were sampled that way), and report it as negligible. "
                    "With large clusters even a small intraclass correlation matters for the standard "
                    "errors, so do not drop a design factor just for this.",
                ))
    return out


def few_levels(fit) -> tuple:
    flags, notes = [], []
    for group, k in fit.ngroups.items():
        if k < FEW_LEVELS:
            flags.append(RedFlag(
                "few_levels",
                f"Grouping factor '{group}' has only {k} levels: its variance is estimated from {k} "
                "group effects and is very imprecise (and often estimated as zero).",
                f"Unless the design requires '{group}' to be random, treat it as a fixed effect (add it "
                "to the fixed part). If you keep it random, report its variance with an interval "
                "(fit.confint(method='profile') or a bootstrap) and do not over-interpret it.",
            ))
        elif k < SOME_LEVELS:
            notes.append(RedFlag(
                "few_levels",
                f"Grouping factor '{group}' has {k} levels; its variance estimate rests on {k} group "
                "effects and is imprecise.",
                "Report the variance with a profile or bootstrap interval rather than a point estimate.",
                severity="note",
            ))
    return flags, notes


def imprecise_variance(fit, skip_groups=()) -> list:
    try:
        unc = variance_component_uncertainty(fit)
    except np.linalg.LinAlgError:  # curvature not computable: the convergence flags cover the fit
        return []
    out = []
    for name, row in unc.iterrows():
        if not name.startswith("sd(") or not np.isfinite(row.std_error) or row.estimate <= 0:
            continue
        ratio = row.std_error / row.estimate
        if ratio > IMPRECISE_RATIO:
            out.append(RedFlag(
                "imprecise_variance",
                f"The estimate of {name} = {_fmt(row.estimate)} has an approximate standard error of "
                f"{_fmt(row.std_error)} ({100 * ratio:.0f}% of the estimate): the data barely "
                "determine it.",
                "Report this variance component with an interval (profile or bootstrap), not as a "
                "point estimate. If it is not needed for the question, a simpler random-effects "
                "structure may fit as well (compare with lmm.anova()); more groups, not more "
                "observations per group, are what would pin it down.",
            ))
    return out


def convergence(fit) -> list:
    out = []
    if not fit.converged:
        out.append(RedFlag(
            "not_converged",
            f"The optimizer did not meet its convergence check: the largest projected gradient "
            f"component is {fit.optsummary.projected_gradient:.2g} ({fit.optsummary.message}).",
            "Centre and scale continuous predictors, simplify the random effects, or refit from "
            "another start; check that the estimates do not change.",
        ))
    try:
        cv = curvature(fit)
    except np.linalg.LinAlgError as exc:  # factorization failed near the optimum
        out.append(RedFlag("hessian_not_pd", f"The curvature at the optimum could not be computed ({exc}).",
                           "Treat the fit as unreliable; simplify the model."))
        return out
    if cv.hessian_theta.size and not cv.positive_definite:
        ev = cv.eigenvalues
        out.append(RedFlag(
            "hessian_not_pd",
            f"The Hessian of the {'REML criterion' if fit.reml else 'deviance'} at the estimate is not "
            f"positive definite (smallest eigenvalue {ev.min():.3g}): the estimate may be a saddle "
            "point, or some parameters are not identified.",
            "Simplify the random-effects structure (the model is probably overparameterised), "
            "rescale predictors, and refit; check the profiles (fit.profile()).",
        ))
    elif cv.hessian_theta.size and cv.scaled_gradient > GRADIENT_TOL:
        out.append(RedFlag(
            "large_gradient",
            f"The relative gradient at the estimate is {cv.scaled_gradient:.3g} (lme4's check "
            f"flags values above {GRADIENT_TOL}): the optimizer may have stopped early.",
            "Refit from the current estimate (fit.refit()), rescale predictors, and check that the "
            "estimates do not change.",
        ))
    return out


def nesting_trap(fit) -> list:
    """Inner labels reused across outer units while the formula crosses them.

    For each pair of single-column grouping factors in separate terms, with
    no term grouping by their combination, take the one with fewer levels
    as the candidate inner factor b and the other as the outer factor a.
    Flag when

    1. the labels of b restart in each level of a: on average a level of a
       contains at least 75% of all the labels of b (Pastes: every batch has
       casks a, b and c), so b is crossed with a in the data, not nested; and
    2. the a:b cells hold replicate observations (at least half of the
       occupied cells have two or more), so that a:b can be a unit.

    Condition 2 separates the trap from a crossed design with one
    observation per cell (Penicillin: plate × sample), where (1|a/b) and
    (1|a) + (1|b) cannot differ; condition 1 from partly crossed designs
    (InstEval: a student meets a few of the 14 departments) and from
    properly labelled nesting (each lecturer in one department). A complete
    crossed design with replicates is flagged too; the advice covers both
    readings.
    """
    data = fit.model.frame.data
    single = []
    for tm in _terms(fit):
        if len(tm.term.factors) == 1 and tm.term.factors[0] not in single:
            single.append(tm.term.factors[0])
    combos = [set(tm.term.factors) for tm in _terms(fit) if len(tm.term.factors) > 1]
    out = []
    for i, a in enumerate(single):
        for b in single[i + 1:]:
            if any({a, b} <= c for c in combos):
                continue
            ka, kb = data[a].nunique(), data[b].nunique()
            if ka == kb or min(ka, kb) < 2:
                continue
            outer, inner = (a, b) if ka > kb else (b, a)
            pairs = data.groupby([outer, inner], observed=True).size()
            coverage = pairs.groupby(level=0, observed=True).size().mean() / min(ka, kb)
            replicated = float((pairs >= 2).mean())
            if coverage >= 0.75 and replicated >= 0.5:
                labels = list(pd.unique(data[inner].astype(str)))
                shown = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
                out.append(RedFlag(
                    "implicit_nesting",
                    f"The labels of '{inner}' ({shown}) recur in every level of '{outer}' (each {outer} "
                    f"has on average {100 * coverage:.0f}% of the {min(ka, kb)} labels, with replicate "
                    f"observations in {100 * replicated:.0f}% of the {outer}:{inner} cells), and the "
                    f"formula treats '{inner}' and '{outer}' as crossed: '{inner}' {labels[0]} in one "
                    f"{outer} is taken to be the same unit as '{inner}' {labels[0]} in every other.",
                    f"If each '{inner}' is a different unit within its '{outer}' (nested design), write "
                    f"(1 | {outer}/{inner}), i.e. (1 | {outer}) + (1 | {outer}:{inner}), or give the "
                    f"inner units unique labels. If the same '{inner}' really occurs in every '{outer}' "
                    f"(crossed design), add (1 | {outer}:{inner}) for their interaction.",
                ))
    return out


_CODE_WORDS = {
    "id", "code", "codes", "group", "grp", "type", "category", "cat", "class", "site", "center",
    "centre", "region", "treatment", "treat", "trt", "arm", "condition", "cond", "dept",
    "department", "school", "batch", "brand", "sex", "gender", "race", "ethnicity", "country",
    "state", "status", "kind", "label", "team", "ward", "clinic", "hospital", "city", "district",
    "province", "county", "colour", "color", "diet", "variety", "cultivar", "strain", "genotype",
    "species", "breed", "method", "device", "machine", "operator", "lab", "rater", "item",
    "subject", "participant", "patient", "plate", "block", "plot", "field", "farm", "herd", "litter",
}
_QUANTITY_WORDS = {
    "day", "days", "time", "week", "weeks", "month", "months", "year", "years", "age", "visit",
    "session", "trial", "dose", "dosage", "count", "counts", "number", "num", "occasion", "wave",
    "hour", "hours", "minute", "minutes", "second", "seconds", "n", "size", "score", "rating",
    "temperature", "temp", "length", "weight", "height", "order", "position", "rank", "step",
    "lag", "period", "cycle", "round", "repetition", "rep", "grade", "level", "index", "amount",
}


def _name_tokens(name: str) -> set:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {t for t in re.split(r"[^A-Za-z]+", spaced.lower()) if t}


def _predictor_columns(fit) -> list:
    """Numeric data columns entering the model as continuous predictors."""
    mf = fit.model.frame
    data = mf.data
    # The columns the parser found (data columns named like transforms, e.g. 'Treatment', included).
    names = set(mf.formula.fixed_variables) | {v for tm in mf.terms for v in tm.term.variables}
    out = []
    col_names = list(mf.fixed_names) + [c for tm in mf.terms for c in tm.columns]
    for v in sorted(names):
        if v not in data.columns or v == mf.formula.response:
            continue
        col = data[v]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        # Wrapped as a category everywhere it appears (C(v)[T.2], ...)? then it is fine.
        pattern = re.compile(rf"(?<![\w.]){re.escape(v)}(?![\w.])")
        continuous = [c for c in col_names
                      if pattern.search(c) and f"C({v}" not in c and f"factor({v}" not in c]
        if continuous:
            out.append(v)
    return out


def numeric_code_columns(fit) -> tuple:
    """Continuous predictors that look like numeric codes for categories.

    Rule: the column takes only integer values, at least 3 distinct ones
    (two values are a binary indicator, for which numeric and categorical
    coding give the same fit), and

    - its name reads like a category (a token such as ``group``, ``id``,
      ``site``, ``treatment``, ``dept``…; camelCase and ``_`` split) with at
      most 20 distinct values → red flag;
    - its name is neutral (neither a category word nor a quantity word such
      as ``day``, ``time``, ``age``, ``dose``, ``visit``, ``count``) with 3
      to 5 distinct values → note.

    Quantity-like names are never flagged (sleepstudy's ``Days``, 0–9).

    Returns ``(flags, notes)``.
    """
    flags, notes = [], []
    data = fit.model.frame.data
    for v in _predictor_columns(fit):
        x = data[v].to_numpy(dtype=float)
        vals = np.unique(x[np.isfinite(x)])
        k = len(vals)
        if k < 3 or not np.all(vals == np.round(vals)):
            continue
        tokens = _name_tokens(v)
        shown = ", ".join(str(int(u)) for u in vals[:8]) + (", ..." if k > 8 else "")
        msg = (f"Predictor '{v}' takes only {k} integer values ({shown}) and enters the model as a "
               "number, with one slope: the model assumes equal steps between")
        advice = (f"If the values of '{v}' are codes for categories, make it categorical "
                  f"(write C({v}) in the formula, or convert the column to a pandas Categorical). If "
                  "it is a genuine quantity with equal steps, ignore this.")
        if tokens & _CODE_WORDS and not tokens & _QUANTITY_WORDS and k <= 20:
            flags.append(RedFlag("numeric_codes", msg + " codes, and its name suggests a category.", advice))
        elif not tokens & _QUANTITY_WORDS and not tokens & _CODE_WORDS and k <= 5:
            notes.append(RedFlag("numeric_codes", msg + " consecutive values.", advice, severity="note"))
    return flags, notes


def heteroscedasticity(fit) -> list:
    """Residual spread that changes with the fitted values.

    Test: Spearman rank correlation ρ between |Pearson residual| and the
    fitted values (conditional on the random effects); flagged when
    p < 0.01 and |ρ| ≥ 0.1, so that a negligible trend in very large data
    is not flagged. Sleepstudy gives ρ = 0.08 (p = 0.26), Penicillin −0.05.
    """
    r = np.abs(fit.residuals("pearson"))
    yhat = fit.fitted
    if np.ptp(yhat) == 0 or len(r) < 10:
        return []
    rho, pval = stats.spearmanr(r, yhat)
    if not (np.isfinite(rho) and pval < HETERO_ALPHA and abs(rho) >= HETERO_MIN_RHO):
        return []
    direction = "grows" if rho > 0 else "shrinks"
    advice = ("Model the response on a transformed scale (log or square root for positive responses whose "
              "spread grows with the mean) or use a generalized model for counts and proportions; "
              "look at the scale-location plot (lmm.plot.scale_location(fit)). Standard errors and "
              "p-values assume constant variance.")
    return [RedFlag(
        "heteroscedasticity",
        f"The residual spread {direction} with the fitted values: Spearman correlation of |Pearson "
        f"residual| with the fitted values ρ = {rho:.2f} (p = {pval:.2g}, n = {len(r)}).",
        advice,
    )]


AUTOCORRELATION_MIN = 0.25
AUTOCORRELATION_ALPHA = 0.01
_TIME_WORDS = {"day", "days", "time", "week", "weeks", "month", "months", "year", "years", "visit",
               "session", "occasion", "wave", "hour", "hours", "minute", "minutes", "trial"}


def _lag_one(a, b) -> tuple:
    """(r, p) of the pairs (a, b) when r ≥ AUTOCORRELATION_MIN with one-sided p < AUTOCORRELATION_ALPHA
    (normal approximation, r·√m for m pairs), else (None, None)."""
    if len(a) < 10 or np.std(a) == 0 or np.std(b) == 0:
        return None, None
    r = float(np.corrcoef(a, b)[0, 1])
    p = float(stats.norm.sf(r * np.sqrt(len(a))))
    return (r, p) if r >= AUTOCORRELATION_MIN and p < AUTOCORRELATION_ALPHA else (None, None)


def _time_and_group(fit, time):
    """(time column, grouping factor) for the autocorrelation check, or (None, None)."""
    data = fit.model.frame.data
    groups = [tm.group for tm in _terms(fit) if len(tm.term.factors) == 1]
    if time is None:
        candidates = [c for c in _predictor_columns(fit) if _name_tokens(c) & _TIME_WORDS]
    else:
        if time not in data.columns:
            raise ModelSpecError(f"check(time={time!r}): the time column must be a variable of the model "
                                 f"(available: {list(data.columns)}).")
        candidates = [time]
    for t in candidates:
        for g in dict.fromkeys(groups):
            sizes = data.groupby(g, observed=True)[t].agg(["size", "nunique"])
            if (sizes["size"] == sizes["nunique"]).all() and sizes["size"].mean() >= 3:
                return t, g
    return None, None


def residual_autocorrelation(fit, time: str | None = None) -> list:
    """Lag-1 autocorrelation of the within-group residuals ordered in time.

    Pearson correlation of consecutive conditional (Pearson) residuals within
    each level of a grouping factor, ordered by ``time``; flagged when it is
    at least 0.25 with p < 0.01 (normal approximation, r·√m for m pairs). The
    guide's "forgetting about temporal autocorrelation": sleepstudy with only
    a random intercept gives 0.41 (an AR(1) refit raises the REML
    log-likelihood by 25), with a random slope 0.12. A model with an AR(1)
    or CAR(1) residual correlation is checked on its normalized residuals
    instead (:func:`remaining_autocorrelation`).
    """
    rows = fit.model.residual
    if rows is not None and rows.correlation is not None:
        return remaining_autocorrelation(fit)
    t, g = _time_and_group(fit, time)
    if t is None:
        return []
    data = fit.model.frame.data
    df = pd.DataFrame({"g": np.asarray(data[g]).astype(str), "t": np.asarray(data[t], float),
                       "e": fit.residuals("pearson")})[fit.model.weights > 0].sort_values(["g", "t"])
    same = df["g"].to_numpy()[1:] == df["g"].to_numpy()[:-1]
    a, b = df["e"].to_numpy()[1:][same], df["e"].to_numpy()[:-1][same]
    r, p = _lag_one(a, b)
    if r is None:
        return []
    integer = bool(np.all(df["t"] == np.round(df["t"])))
    suggestion = (f"correlation=lmm.AR1(group={g!r}, time={t!r})" if integer
                  else f"correlation=lmm.CAR1(group={g!r}, time={t!r}) (or lmm.AR1(group={g!r}) if the "
                  "times are equally spaced)")
    return [RedFlag(
        "residual_autocorrelation",
        f"Residuals of the same '{g}' are autocorrelated in '{t}': the lag-1 correlation of consecutive "
        f"within-{g} residuals is {r:.2f} (p = {p:.2g}, {len(a)} pairs). The random effects do not "
        "account for it, so standard errors and p-values of the fixed effects can be too small.",
        f"Refit with {suggestion} and compare the fits with lmm.anova(fit, fit_ar1); if the data "
        "prefer it, report the residual covariance structure. A random slope of "
        f"'{t}' can absorb part of this too.",
    )]


def remaining_autocorrelation(fit) -> list:
    """Lag-1 autocorrelation left in the normalized residuals of a fit with an AR(1)/CAR(1) structure.

    The normalized residuals (``fit.residuals("normalized")``) are decorrelated
    by the fitted structure; consecutive ones within an AR group (in its time
    order) should be uncorrelated. Flagged with the rule of
    :func:`residual_autocorrelation` (r ≥ 0.25, p < 0.01): the structure does
    not capture the serial dependence (e.g. a second-order process: AR(2)
    data with coefficients 1.2 and −0.6 leave r = 0.40 after an AR(1) fit).
    Sleepstudy with a random intercept and AR(1) leaves −0.11.
    """
    rows = fit.model.residual
    linked = rows.has_pred & (fit.model.weights > 0)
    e = fit.residuals("normalized")
    a, b = e[linked], e[rows.pred[linked]]
    r, p = _lag_one(a, b)
    if r is None:
        return []
    g = rows.correlation.group
    kind = "CAR(1)" if isinstance(rows.correlation, CAR1) else "AR(1)"
    return [RedFlag(
        "residual_autocorrelation",
        f"The normalized residuals (decorrelated by the fitted {kind} within '{g}') are still "
        f"autocorrelated: the lag-1 correlation of consecutive ones is {r:.2f} (p = {p:.2g}, {len(a)} "
        f"pairs). The {kind} structure does not capture the serial dependence, so standard errors "
        "and p-values of the fixed effects can still be off.",
        "Check the time order of the rows within each group (or give the time column); a random "
        "slope of time, or a time trend in the fixed effects, can take up slow dependence the "
        f"{kind} misses.",
    )]


def dropped_columns(fit) -> list:
    dropped = list(fit.model.frame.dropped_columns)
    if not dropped:
        return []
    frame = fit.model.frame
    full = frame.fixed_spec.get_model_matrix(frame.data)
    return [RedFlag(
        "dropped_columns",
        rank_deficiency_message(np.asarray(full, dtype=float), [str(c) for c in full.columns], dropped),
        "Check the design: some effects are not estimable (e.g. an interaction cell without data).",
        severity="note",
    )]


def estimated_likelihood(fit) -> list:
    """A note when the log-likelihood is a stochastic estimate (the iterative block kind), and a
    warning when its conjugate-gradient solves at θ̂ stopped short of their tolerance."""
    kind = fit.model.dims.kind
    if getattr(kind, "schur", None) != "iterative":
        return []
    rest = getattr(getattr(fit.estimates, "factor", None), "rest", None)  # LMM fits keep it (not GLMM fits)
    residual = getattr(rest, "cg_residual", None)
    flags = []
    if residual is not None and not float(residual) <= CG_RESIDUAL_LIMIT:
        flags.append(RedFlag(
            "cg_not_converged",
            f"The conjugate-gradient solves of the iterative kind did not converge at the estimates: their "
            f"relative residual is {float(residual):.1e} after {kind.maxiter:,} iterations (aim "
            f"{kind.tol:.0e}). The fixed effects, σ and the criterion may be off beyond their last digits.",
            "Refit with more iterations (IterativeLaterBlocks(maxiter=...) through model.with_schur) or an "
            "exact kind: lmm.model.build_model(...).with_schur(\"tiled\").",
        ))
    return flags + [RedFlag(
        "estimated_loglik",
        f"The model has {fit.model.dims.q2:,} later random-effect levels, so it was fitted with the iterative "
        f"kind: log|S| is estimated by stochastic Lanczos quadrature ({kind.probes} fixed probes). The "
        "log-likelihood (and with it AIC, BIC, the deviance and the REML criterion) carries an error of about 1e-4 to 5e-3 (larger with many "
        "rarely used levels); the estimates agree with an exact fit to about 1e-4 relative.",
        "Compare nested models only when their deviance difference is well above 0.01, or refit an exact "
        "kind: lmm.model.build_model(...).with_schur(\"tiled\").",
        severity="note",
    )]


def check(fit, time: str | None = None) -> FlagList:
    """Check a fit for red flags.

    ``time`` names a time column for the residual-autocorrelation check
    (:func:`residual_autocorrelation`); without it a predictor named like a
    time (``Days``, ``Time``, ``visit``…) is used when there is one.

    Returns
    -------
    FlagList
        A list of :class:`RedFlag` (empty for a clean fit); notes (severity
        ``"note"``, e.g. a grouping factor with 5–9 levels) are in
        ``.notes``. ``print(fit.check())`` lists both.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> df = lmm.datasets.load("sleepstudy")
    >>> lmm.lmer("Reaction ~ Days + (Days | Subject)", df).check()
    FlagList([], notes=[])
    """
    return FlagList.of(
        convergence(fit), singular_fit(fit), correlation_boundary(fit), tiny_variance(fit), few_levels(fit),
        imprecise_variance(fit), nesting_trap(fit), numeric_code_columns(fit), heteroscedasticity(fit),
        residual_autocorrelation(fit, time), dropped_columns(fit), estimated_likelihood(fit))
