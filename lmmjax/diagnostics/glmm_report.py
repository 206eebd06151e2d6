"""The methods-and-results paragraph of a GLMM fit, with odds ratios (logit) or rate ratios (log).

The fixed effects are reported with Wald z tests and Wald intervals,
back-transformed for the logit link (odds ratios) and the log link (rate
ratios); other links (probit, cloglog) are reported on the link scale. The
random-effect standard deviations are on the link scale. The model
description (fixed part, grouping factors, nesting) is the one of
:mod:`lmmjax.diagnostics.report`.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelSpecError
from ..results.varcorr import parameter_names
from .glmm_flags import check_glmm
from .report import (FORMATS, _describe_fixed, _describe_random, _join, _markdown_table, _software, fmt_num,
                     fmt_p)

RATIO_NAMES = {"logit": ("odds ratio", "OR", "odds"), "log": ("rate ratio", "RR", "rate")}
LINK_SCALES = {"logit": "log-odds (logit)", "probit": "probit", "cloglog": "complementary log-log",
               "log": "log"}


def wald_table(fit, level: float = 0.95) -> pd.DataFrame:
    """Estimate, SE, z, p and the Wald interval of each fixed effect, plus ``ratio``,
    ``ratio_lower``, ``ratio_upper`` (exp of them) for the logit and log links.

    Examples
    --------
    >>> wald_table(fit).loc["period2", "ratio"]  # doctest: +SKIP
    0.3707
    """
    est = np.asarray(fit.fixef, float)
    se = np.sqrt(np.diag(np.asarray(fit.vcov, float)))
    z = est / se
    crit = stats.norm.ppf(0.5 + level / 2)
    out = pd.DataFrame({"estimate": est, "std_error": se, "z_value": z, "p_value": 2 * stats.norm.sf(np.abs(z)),
                        "lower": est - crit * se, "upper": est + crit * se}, index=list(fit.fixef.index))
    if fit.family.link in RATIO_NAMES:
        for col, src in (("ratio", "estimate"), ("ratio_lower", "lower"), ("ratio_upper", "upper")):
            out[col] = np.exp(out[src])
    return out


def _estimation(fit) -> str:
    nagq = getattr(fit, "nagq", 1)
    if nagq == 0:
        how = ("the fast first stage of lme4's algorithm (nAGQ = 0: variance parameters by the Laplace "
               "approximation with the fixed effects estimated inside penalised iteratively reweighted "
               "least squares)")
    elif nagq == 1:
        how = "maximum likelihood with the Laplace approximation to the marginal likelihood"
    else:
        how = f"maximum likelihood with adaptive Gauss–Hermite quadrature ({nagq} nodes)"
    return (f"Parameters were estimated by {how} with {_software()}, using exact derivatives from JAX; "
            f"the optimizer {'converged' if fit.converged else 'did NOT meet its convergence check'}.")


def _methods(fit, level: float) -> str:
    mf, fam = fit.model.frame, fit.family
    wt = np.asarray(fit.model.weights, float)
    trials = ""
    if fam.name == "binomial" and np.any(wt > 1):
        total = float(wt.sum())
        trials = f", {total:.0f} binomial trials" if total == round(total) else f", {fmt_num(total, 6)} binomial trials"
    pct = f"{100 * level:g}%"
    ratio = RATIO_NAMES.get(fam.link)
    fixed = (f"Fixed effects are reported as {ratio[0]}s (the exponentiated coefficients) with Wald {pct} "
             "confidence intervals and Wald z tests." if ratio else
             f"Fixed effects are reported on the {LINK_SCALES.get(fam.link, fam.link)} scale with Wald "
             f"{pct} confidence intervals and Wald z tests.")
    parts = [
        f"We fitted a generalized linear mixed-effects model ({fam.name} family, {fam.link} link) to "
        f"{mf.formula.response} ({fit.nobs} observations{trials}), specified as {fit.formula}.",
        _describe_fixed(fit),
        _describe_random(fit),
    ]
    if np.any(np.asarray(fit.model.offset) != 0):
        parts.append("The linear predictor included a known offset (coefficient fixed at 1).")
    parts += [_estimation(fit), fixed]
    return " ".join(parts)


def _fixed_results(fit, table: pd.DataFrame, level: float) -> str:
    ratio = RATIO_NAMES.get(fit.family.link)
    pct = f"{100 * level:g}%"
    items = []
    for name, row in table.iterrows():
        test = f"z = {row.z_value:.2f}, {fmt_p(row.p_value)}"
        if ratio and name == "Intercept":
            items.append(f"the baseline {ratio[2]} {fmt_num(row.ratio)} ({pct} CI {fmt_num(row.ratio_lower)} to "
                         f"{fmt_num(row.ratio_upper)})")
        elif ratio:
            items.append(f"{name} {ratio[1]} {fmt_num(row.ratio)} ({pct} CI {fmt_num(row.ratio_lower)} to "
                         f"{fmt_num(row.ratio_upper)}; {test})")
        else:
            items.append(f"{name} {fmt_num(row.estimate)} (SE {fmt_num(row.std_error)}, {pct} CI "
                         f"{fmt_num(row.lower)} to {fmt_num(row.upper)}; {test})")
    lead = (f"The estimated {ratio[0]}s were " if ratio else "The estimated fixed effects were ")
    return lead + _join(items) + "."


def _variance_results(fit) -> str:
    vc = fit.varcorr
    scale = LINK_SCALES.get(fit.family.link, fit.family.link)
    items = []
    for name, row in zip(parameter_names(vc), vc.itertuples(index=False)):
        if row.term2 is None or (isinstance(row.term2, float) and np.isnan(row.term2)):
            what = "intercepts" if row.term1 == "Intercept" else f"slopes of {row.term1}"
            zero = " (estimated as zero)" if row.sdcor < 1e-4 else ""
            items.append(f"the standard deviation of the random {what} for {row.group} was {fmt_num(row.sdcor)}{zero}")
        else:
            items.append(f"the correlation between the random {row.term1} and {row.term2} effects for "
                         f"{row.group} was {row.sdcor:.2f}")
    return f"For the random part (on the {scale} scale), " + _join(items) + "."


def _counts(fit) -> str:
    groups = _join([f"{k} levels of {g}" for g, k in fit.ngroups.items()])
    return (f"The model used {fit.nobs} observations and {groups}; log-likelihood "
            f"{fmt_num(fit.loglik, 6)}, AIC {fmt_num(fit.aic, 6)}, BIC {fmt_num(fit.bic, 6)}.")


def _diagnostics(flags) -> str:
    if not flags and not flags.notes:
        return ("Diagnostic checks (lmmjax fit.check(): convergence, zero variances, separation, "
                "overdispersion, events per parameter, few levels) raised no red flags.")
    parts = [("Diagnostic checks raised the following red flags: "
              + " ".join(f"({i + 1}) {f.message}" for i, f in enumerate(flags))) if flags
             else "Diagnostic checks raised no red flags."]
    if flags.notes:
        parts.append("Notes: " + " ".join(f.message for f in flags.notes))
    return " ".join(parts)


def report_glmm(fit, format: str = "text", level: float = 0.95, width: int = 88) -> str:
    """A methods-and-results paragraph for a GLMM fit.

    Parameters
    ----------
    fit : GlmerFit
    format : {"text", "markdown"}
    level : float
        Confidence level of the Wald intervals.
    width : int
        Line width of the plain text.

    Examples
    --------
    >>> print(fit.report())  # doctest: +SKIP
    """
    if format not in FORMATS:
        raise ModelSpecError(f"format must be one of {FORMATS}, not {format!r}.")
    if not 0.0 < level < 1.0:
        raise ModelSpecError(f"level must be between 0 and 1, got {level!r}.")
    table = wald_table(fit, level)
    methods = _methods(fit, level)
    results = " ".join([_fixed_results(fit, table, level), _variance_results(fit), _counts(fit)])
    diag = _diagnostics(check_glmm(fit))
    if format == "text":
        return "\n\n".join(textwrap.fill(p, width=width) for p in (methods, results, diag))
    shown = table.drop(columns=["lower", "upper"]) if "ratio" in table.columns else table
    fmts = {"p_value": lambda p: fmt_p(p).replace("p ", "").replace("= ", ""), "z_value": lambda x: f"{x:.2f}"}
    return "\n\n".join([
        "**Methods.** " + methods.replace(fit.formula, f"`{fit.formula}`", 1),
        "**Results.** " + results,
        f"*Fixed effects* ({100 * level:g}% Wald CI):\n\n" + _markdown_table(shown, fmts),
        "**Diagnostics.** " + diag,
    ])
