"""The methods-and-results paragraph a reviewer wants, as plain text or Markdown.

:func:`report` describes the model (fixed part; each grouping factor, why it
is random, how it relates to the others and the covariance structure of its
effects), the estimation method and software, the fixed effects with 95 %
intervals (with Satterthwaite df and p-values from :mod:`lmmjax.inference`),
the variance components with their uncertainty, the numbers of observations
and groups, and the red flags of :func:`lmmjax.diagnostics.check`.
"""
from __future__ import annotations

import re
import textwrap

import jax
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelSpecError
from ..inference import coef_table, confint
from ..inference.tables import DDF_LABELS
from ..version import __version__
from .flags import check
from .information import variance_component_uncertainty

PAIR_ADJUST_LABELS = {"tukey": "Tukey", "holm": "Holm", "bonferroni": "Bonferroni", "sidak": "Šidák",
                      "BH": "Benjamini-Hochberg"}

FORMATS = ("text", "markdown")


# ---- number formatting (shared with the tests) ------------------------------------------------
def fmt_num(x: float, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, never in scientific notation
    for everyday magnitudes; ``-`` for a minus sign."""
    if x is None or not np.isfinite(x):
        return "NA"
    if x == 0:
        return "0"
    mag = int(np.floor(np.log10(abs(x))))
    if mag >= 6 or mag < -4:
        return f"{x:.{digits - 1}e}"
    decimals = max(digits - 1 - mag, 0)
    return f"{x:.{decimals}f}"


def fmt_cor(x: float) -> str:
    return "NA" if not np.isfinite(x) else f"{x:.2f}"


def fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "p = NA"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def md_cell(text) -> str:
    """Text made safe for a cell of a GitHub-flavoured Markdown table.

    A ``|`` would end the cell (even inside a code span) and a line break would
    end the row, so pipes are escaped and line breaks become spaces.

    >>> md_cell("sd(Intercept|Subject)")
    'sd(Intercept\\\\|Subject)'
    """
    return " ".join(str(text).split("\n")).replace("|", "\\|")


def md_row(cells) -> str:
    """One row of a Markdown table, each cell escaped with :func:`md_cell`."""
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def _join(items: list) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---- the pieces of the model -----------------------------------------------------------------
def _fixed_terms(fit) -> list:
    return [str(t) for t in fit.model.frame.fixed_spec.terms if str(t) != "1"]


def _has_intercept(fit) -> bool:
    return "Intercept" in fit.fixef.index


def _categorical_references(fit) -> dict:
    """Variable → reference level for categorical fixed-effect variables."""
    out = {}
    data = fit.model.frame.data
    for name in fit.fixef.index:
        for var, _level in re.findall(r"(?:C\()?([\w.]+)\)?\[T\.([^\]]+)\]", name):
            if var in out or var not in data.columns:
                continue
            col = data[var]
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats = [c for c in col.cat.categories if c in set(col)]
            else:
                cats = sorted(pd.unique(col))
            if cats:
                out[var] = cats[0]
    return out


def _describe_fixed(fit) -> str:
    terms = _fixed_terms(fit)
    pretty = [t.replace(":", " × ") for t in terms]
    intercept = "an intercept" if _has_intercept(fit) else "no intercept"
    if not terms:
        text = "The fixed part had an intercept only." if _has_intercept(fit) else "The model had no fixed effects."
    else:
        text = f"The fixed part had {intercept} and {'the term' if len(terms) == 1 else 'the terms'} {_join(pretty)}."
    refs = _categorical_references(fit)
    if refs:
        text += " Categorical predictors used treatment contrasts (reference level " + _join(
            [f"'{r}' for {v}" for v, r in refs.items()]) + ")."
    return text


def _group_columns(fit) -> dict:
    """Grouping factor → list of (term matrix, columns) in formula order."""
    out = {}
    for tm in fit.model.frame.terms:
        out.setdefault(tm.group, []).append(tm)
    return out


def _covariance_phrase(terms: list) -> str:
    p_total = sum(len(tm.columns) for tm in terms)
    if p_total == 1:
        return ""
    if len(terms) == 1:
        p = p_total
        return (f"with an unstructured {p} × {p} covariance matrix ({p} variances and "
                f"{p * (p - 1) // 2} correlation{'s' if p > 2 else ''})")
    if all(len(tm.columns) == 1 for tm in terms):
        return "uncorrelated with each other (diagonal covariance matrix)"
    blocks = ["(" + ", ".join(tm.columns) + ")" for tm in terms]
    return "with correlations within, but not between, the sets " + _join(blocks)


def _relation(fit, g1: str, g2: str) -> str:
    """'g2 is nested within g1' or 'g1 and g2 are crossed'."""
    groups = {tm.group: tm for tm in fit.model.frame.terms}
    c1, c2 = groups[g1].codes, groups[g2].codes
    pairs = pd.DataFrame({"a": c1, "b": c2}).drop_duplicates()
    if pairs.groupby("b").size().max() == 1 and pairs["a"].nunique() < pairs["b"].nunique():
        return f"{g2} is nested within {g1}"
    if pairs.groupby("a").size().max() == 1 and pairs["b"].nunique() < pairs["a"].nunique():
        return f"{g1} is nested within {g2}"
    return f"{g1} and {g2} are crossed"


def _describe_random(fit) -> str:
    groups = _group_columns(fit)
    ngroups = fit.ngroups
    n = fit.nobs
    sentences = []
    for g, terms in groups.items():
        cols = [c for tm in terms for c in tm.columns]
        k = ngroups[g]
        cov = _covariance_phrase(terms)
        kind = _join([("a random intercept" if c == "Intercept" else f"a random slope of {c}") for c in cols])
        s = f"For {g} ({k} levels, {fmt_num(n / k, 3)} observations per level on average), the model included {kind}"
        s += (", " + cov) if cov else ""
        sentences.append(s + ".")
    names = list(groups)
    relations = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rel = _relation(fit, a, b)
            if rel:
                relations.append(rel)
    text = " ".join(sentences)
    if relations:
        text += " In the data, " + _join(relations) + "."
    lead = _join(names)
    text += (f" {lead} {'was' if len(names) == 1 else 'were'} treated as random because "
             f"{'its levels are' if len(names) == 1 else 'their levels are'} regarded as a sample from a "
             "larger population to which the conclusions should generalise, and because observations "
             f"that share a level of {'it' if len(names) == 1 else 'one of them'} are correlated; the random "
             "effects account for that correlation in the standard errors of the fixed effects.")
    text += "".join(" " + line for line in _describe_residual_structure(fit))
    few = [f"{g} ({k} levels)" for g, k in ngroups.items() if k < 5]
    if few:
        text += (f" With fewer than five levels, the variance of {_join(few)} is poorly determined "
                 "and could instead be modelled as a fixed effect.")
    return text


def _describe_residual_structure(fit) -> list:
    """Sentences naming the residual covariance structure (the guide asks every methods section for it)."""
    rows = fit.model.residual
    if rows is None:
        return ["Residuals were modelled as independent with constant variance."]
    out = []
    c = rows.correlation
    if c is not None:
        order = ("in row order" if c.time is None else f"over {c.time}")
        what = ("a first-order autoregressive correlation, AR(1), cor = φ^|t − s| for observations t − s steps apart"
                if c.label == "AR(1)" else "a continuous-time first-order autoregressive correlation, CAR(1), "
                "cor = φ^|t − s| for times t and s")
        out.append(f"Residuals within each {c.group} followed {what} ({order}); residuals of different "
                   f"{c.group} levels were independent.")
    if rows.variance is not None:
        out.append(f"Each level of {rows.variance.column} had its own residual standard deviation (varIdent), "
                   f"reported as ratios to level {rows.var_levels[0]}.")
    return out


# ---- inference pieces ------------------------------------------------------------------------------
def _coef_table(fit):
    """(table with estimate, std_error, df, t_value, p_value; description of the df)."""
    return coef_table(fit), "t tests with Satterthwaite's approximation to the degrees of freedom"


def _fixed_intervals(ct: pd.DataFrame, level: float) -> pd.DataFrame:
    q = 0.5 + level / 2
    if "df" in ct.columns:
        crit = stats.t.ppf(q, ct["df"].to_numpy())
    else:
        crit = np.full(len(ct), stats.norm.ppf(q))
    est, se = ct["estimate"].to_numpy(), ct["std_error"].to_numpy()
    return pd.DataFrame({"lower": est - crit * se, "upper": est + crit * se}, index=ct.index)


def _auto_vc_method(fit) -> str:
    if fit.model.residual is not None:  # Wald by default: profiles exist (method="profile") but cost compilations
        return "wald"
    small = fit.model.dims.q2 <= 200 and fit.model.layout.size <= 6 and fit.nobs <= 20000
    return "profile" if small else "wald"


def variance_intervals(fit, method: str = "auto", level: float = 0.95, bootstrap=None):
    """Intervals for the sd/cor/σ parameters: (DataFrame lower/upper, description).

    ``method``: ``"profile"`` (``fit.confint(method="profile")``, ML profile
    as lme4), ``"bootstrap"`` (from ``bootstrap``, a BootstrapResult),
    ``"wald"`` (delta method on the log/atanh scale, see
    :func:`lmmjax.diagnostics.information.variance_component_uncertainty`)
    or ``"auto"``: the bootstrap if given, else profile for small models,
    else Wald.
    """
    names = list(fit.sdcor.index)
    if method == "auto":
        method = "bootstrap" if bootstrap is not None else _auto_vc_method(fit)
    if method == "bootstrap":
        if bootstrap is None:
            raise ModelSpecError("method='bootstrap' needs bootstrap=fit.bootstrap(n).")
        ci = bootstrap.ci(level=level)
        n = getattr(bootstrap, "n", None)
        return ci.reindex(names)[["lower", "upper"]], f"parametric bootstrap percentile intervals ({n} replicates)"
    if method == "profile":
        ci = confint(fit, method="profile", level=level, parm=names)
        return ci.reindex(names)[["lower", "upper"]], "profile-likelihood intervals"
    unc = variance_component_uncertainty(fit, level=level)
    return unc[["lower", "upper"]], ("approximate Wald intervals from the curvature of the likelihood "
                                     "(log scale for standard deviations, atanh scale for correlations)")


# ---- paragraphs ---------------------------------------------------------------------------------
def _software() -> str:
    return f"lmmjax {__version__} (Python, JAX {jax.__version__})"


def _describe_weights_offset(fit) -> list:
    """Sentences on prior weights and an offset, when the model has them."""
    model, out = fit.model, []
    if model.weighted:
        dropped = int(np.sum(model.weights == 0))
        out.append("Observations carried prior weights wᵢ (residual variance σ²/wᵢ)"
                   + (f"; {dropped} with weight 0 were left out of the likelihood." if dropped else "."))
    if np.any(model.offset != 0):
        out.append("The linear predictor included a known offset (coefficient fixed at 1).")
    return out


def _methods(fit, df_text, vc_text, level) -> str:
    mf = fit.model.frame
    est = "restricted maximum likelihood (REML)" if fit.reml else "maximum likelihood (ML)"
    pct = f"{100 * level:g}%"
    parts = [
        f"We fitted a linear mixed-effects model to {mf.formula.response} ({fit.nobs} observations), "
        f"specified as {fit.formula}.",
        _describe_fixed(fit),
        _describe_random(fit),
        *_describe_weights_offset(fit),
        f"Parameters were estimated by {est} with {_software()}, which minimises the profiled "
        f"{'REML criterion' if fit.reml else 'deviance'} with L-BFGS-B and exact gradients from JAX "
        f"(lme4's parameterisation); the optimizer {'converged' if fit.converged else 'did NOT meet its convergence check'}.",
    ]
    if df_text:
        parts.append(f"Fixed effects were assessed with {df_text}, and their {pct} confidence intervals "
                     "use the same t distributions.")
    else:
        parts.append(f"Fixed effects are reported with Wald {pct} confidence intervals (normal quantiles).")
    parts.append(f"Intervals for the variance components are {vc_text}.")
    return " ".join(parts)


def _fixed_results(ct, ci) -> str:
    items = []
    for name, row in ct.iterrows():
        lo, hi = ci.loc[name, "lower"], ci.loc[name, "upper"]
        s = f"{name} {fmt_num(row.estimate)} (SE {fmt_num(row.std_error)}, 95% CI {fmt_num(lo)} to {fmt_num(hi)}"
        if "df" in ct.columns and "p_value" in ct.columns:
            s += f"; t({fmt_num(row.df, 3)}) = {row.t_value:.2f}, {fmt_p(row.p_value)}"
        elif "t_value" in ct.columns:
            s += f"; t = {row.t_value:.2f}"
        items.append(s + ")")
    return "The estimated fixed effects were " + _join(items) + "."


def _vc_name(name: str) -> str:
    m = re.match(r"sd\((.+)\|(.+)\)$", name)
    if m:
        col, g = m.groups()
        what = "intercepts" if col == "Intercept" else f"slopes of {col}"
        return f"the standard deviation of the random {what} for {g}"
    m = re.match(r"cor\((.+),(.+)\|(.+)\)$", name)
    if m:
        a, b, g = m.groups()
        a = "intercept" if a == "Intercept" else f"slope of {a}"
        b = "intercept" if b == "Intercept" else f"slope of {b}"
        return f"the correlation between the random {a} and {b} for {g}"
    if name == "phi":
        return "the residual autocorrelation parameter φ"
    m = re.match(r"sd_ratio\[(.+)\]$", name)
    if m:
        return f"the ratio of the residual standard deviation at level {m.group(1)} to the reference level"
    return "the residual standard deviation"


def _variance_results(fit, vci, level) -> str:
    items = []
    for name, value in fit.sdcor.items():
        lo, hi = vci.loc[name, "lower"], vci.loc[name, "upper"]
        f = fmt_cor if name.startswith("cor(") else fmt_num
        interval = f" ({100 * level:g}% CI {f(lo)} to {f(hi)})" if np.isfinite(lo) and np.isfinite(hi) else ""
        boundary = ""
        if name.startswith("sd(") and value <= 1e-4 * fit.sigma:  # (sd_ratio[...] is not a variance component)
            boundary = " (on the boundary: estimated as zero)"
        items.append(f"{_vc_name(name)} was {f(value)}{boundary}{interval}")
    text = "For the random part, " + _join(items) + "."
    # Intraclass correlations for random-intercept-only models.
    vc = fit.varcorr
    if (fit.model.residual is None and (vc[vc.group != "Residual"].term1 == "Intercept").all()
            and vc.term2.isna().all()):
        total = vc.vcov.sum()
        iccs = [f"{g} {vc.loc[vc.group == g, 'vcov'].iloc[0] / total:.2f}" for g in vc.group if g != "Residual"]
        text += f" The share of the total variance due to each grouping factor (intraclass correlation) was {_join(iccs)}."
    return text


def _pairs_results(pairs) -> str:
    """A sentence on pairwise comparisons of marginal means (``em.pairs()``, a ContrastResult)."""
    means = pairs.means
    subject = (f"slopes of {means.trend}" if means.trend else "estimated marginal means") + " of " + _join(means.pri)
    averaged = [v for v in means.averaged_over if v not in means.pri + means.by]
    used = sorted(set(pairs.used.values()))
    adjust = ("unadjusted p-values" if used == ["none"]
              else _join([PAIR_ADJUST_LABELS.get(u, u) for u in used]) + "-adjusted p-values")
    tab = pairs.table
    items = []
    for _, row in tab.iterrows():
        where = " at " + ", ".join(f"{b} = {row[b]}" for b in pairs.by) if pairs.by else ""
        if not np.isfinite(row.estimate):
            items.append(f"{row.contrast}{where} not estimable")
            continue
        stat = "z" if not np.isfinite(row.df) else f"t({fmt_num(row.df, 3)})"
        items.append(f"{row.contrast}{where} {fmt_num(row.estimate)} (SE {fmt_num(row.std_error)}; "
                     f"{stat} = {row.t_ratio:.2f}, {fmt_p(row.p_value)})")
    head = (f"Pairwise comparisons of the {subject}"
            + (f" (averaged over {_join(averaged)})" if averaged else "")
            + f", with {DDF_LABELS.get(pairs.method, pairs.method)} degrees of freedom and {adjust}, were ")
    return head + _join(items) + "."


def _counts(fit) -> str:
    groups = _join([f"{k} levels of {g}" for g, k in fit.ngroups.items()])
    crit = "REML criterion" if fit.reml else "deviance"
    return (f"The model used {fit.nobs} observations and {groups}; {crit} {fmt_num(fit.deviance, 6)}, "
            f"log-likelihood {fmt_num(fit.loglik, 6)}, AIC {fmt_num(fit.aic, 6)}, BIC {fmt_num(fit.bic, 6)}"
            f"{' (from the REML likelihood)' if fit.reml else ''}.")


def _diagnostics(flags) -> str:
    if not flags and not flags.notes:
        return ("Diagnostic checks (lmmjax fit.check(): singularity, boundary correlations, negligible or "
                "imprecise variance components, few levels, convergence, nesting coding, numeric codes, "
                "heteroscedasticity) raised no red flags.")
    parts = []
    if flags:
        parts.append("Diagnostic checks raised the following red flags: "
                     + " ".join(f"({i + 1}) {f.message}" for i, f in enumerate(flags)))
    else:
        parts.append("Diagnostic checks raised no red flags.")
    if flags.notes:
        parts.append("Notes: " + " ".join(f.message for f in flags.notes))
    return " ".join(parts)


def _markdown_table(df: pd.DataFrame, formatters: dict) -> str:
    cols = list(df.columns)
    lines = [md_row([""] + cols), "|---|" + "---:|" * len(cols)]
    for name, row in df.iterrows():
        lines.append(md_row([name] + [formatters.get(c, fmt_num)(row[c]) for c in cols]))
    return "\n".join(lines)


def report(fit, format: str = "text", vc_ci: str = "auto", bootstrap=None, level: float = 0.95,
           width: int = 88, pairs=None) -> str:
    """A methods-and-results paragraph for a fit.

    Parameters
    ----------
    fit : LmerFit
    format : {"text", "markdown"}
        Plain text (wrapped at ``width``) or Markdown (with tables of the
        fixed effects and variance components).
    vc_ci : {"auto", "profile", "wald", "bootstrap"}
        Intervals for the variance components (see :func:`variance_intervals`).
    bootstrap : BootstrapResult, optional
        Parametric bootstrap replicates (``fit.bootstrap(n)``) to use for them.
    level : float
        Confidence level.
    pairs : result of ``em.pairs()`` (or a list of them), optional
        Pairwise comparisons of estimated marginal means
        (``fit.emmeans("recipe").pairs()``) to add to the results paragraph.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> print(fit.report())  # doctest: +SKIP
    """
    if format not in FORMATS:
        raise ModelSpecError(f"format must be one of {FORMATS}, not {format!r}.")
    ct, df_text = _coef_table(fit)
    fci = _fixed_intervals(ct, level)
    vci, vc_text = variance_intervals(fit, vc_ci, level, bootstrap)
    flags = check(fit)
    methods = _methods(fit, df_text, vc_text, level)
    pair_sets = [] if pairs is None else (list(pairs) if isinstance(pairs, (list, tuple)) else [pairs])
    for pr in pair_sets:
        if getattr(pr, "means", None) is None or getattr(pr.means, "fit", None) is not fit:
            raise ModelSpecError("pairs must be the result of em.pairs() for marginal means of this fit "
                                 "(fit.emmeans(...).pairs()).")
    results = " ".join([_fixed_results(ct, fci)] + [_pairs_results(pr) for pr in pair_sets]
                       + [_variance_results(fit, vci, level), _counts(fit)])
    diag = _diagnostics(flags)
    if format == "text":
        return "\n\n".join(textwrap.fill(p, width=width) for p in (methods, results, diag))
    md_methods = methods.replace(fit.formula, f"`{fit.formula}`", 1)
    fixed = ct.copy()
    fixed.insert(2, "lower", fci["lower"])
    fixed.insert(3, "upper", fci["upper"])
    vc = pd.DataFrame({"estimate": fit.sdcor, "lower": vci["lower"], "upper": vci["upper"]})
    fmts = {"p_value": lambda p: fmt_p(p).replace("p ", "").replace("= ", ""),
            "df": lambda x: fmt_num(x, 3), "t_value": lambda x: f"{x:.2f}"}
    return "\n\n".join([
        "**Methods.** " + md_methods,
        "**Results.** " + results,
        f"*Fixed effects* ({100 * level:g}% CI):\n\n" + _markdown_table(fixed, fmts),
        f"*Random effects* (standard deviations, correlations; {vc_text}):\n\n" + _markdown_table(vc, {}),
        "**Diagnostics.** " + diag,
    ])
