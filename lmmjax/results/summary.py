"""lme4-style summary of a fit, as text and HTML."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd


def residual_structure_lines(fit) -> list:
    """"Residual correlation: AR(1) within Rat, phi = …" and the VarIdent SD ratios."""
    rows, rp = fit.model.residual, fit.residual_params
    c, v = rows.correlation, rows.variance
    out = [f"Residual correlation: {c.label} within {c.group} ({c.ordering}), phi = {rp['phi']:.4f}"
           ] if c is not None else []
    if v is not None:
        ratios = ", ".join(f"{lev}: {rp[f'sd_ratio[{lev}]']:.4f}" for lev in rows.var_levels[1:])
        out.append(f"Residual SD by {v.column} (VarIdent), ratio to level "
                   f"{rows.var_levels[0]} (SD {fit.sigma:.4g}): {ratios}")
    return out


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def _table(rows: list, header: list, align_left: int = 1) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        cells = [str(c).ljust(w) if i < align_left else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append(" " + " ".join(cells).rstrip())
    return "\n".join(lines)


def fixed_effect_correlation_lines(vcov: pd.DataFrame) -> list:
    """lme4's "Correlation of Fixed Effects" block (lower triangle) from cov(β̂)."""
    V = vcov.to_numpy()
    if V.shape[0] < 2:
        return []
    sd = np.sqrt(np.diag(V))
    R = V / np.outer(sd, sd)
    names = list(vcov.index)
    rows = [[names[i]] + [f"{R[i, j]:.3f}" for j in range(i)] + [""] * (len(names) - 1 - i)
            for i in range(1, len(names))]
    return ["", "Correlation of Fixed Effects:", _table(rows, [""] + [n[:6] for n in names[:-1]])]


def scaled_residual_lines(pearson: np.ndarray) -> list:
    """lme4's "Scaled residuals" block: the five-number summary of the Pearson residuals."""
    q = np.quantile(pearson, [0, 0.25, 0.5, 0.75, 1.0])
    return ["", "Scaled residuals:",
            _table([[f"{v:.4f}" for v in q]], ["Min", "1Q", "Median", "3Q", "Max"], align_left=0)]


def note_lines(fit, singular_note: str) -> list:
    """The closing notes of a summary: a singular fit, a convergence doubt."""
    notes = [singular_note] if fit.singular else []
    if not fit.converged:
        notes.append(f"convergence doubt: projected gradient {fit.optsummary.projected_gradient:.2g}")
    return ([""] + notes) if notes else []


class FitSummary:
    """Summary of an :class:`~lmmjax.results.fit.LmerFit`.

    ``str(summary)`` gives lme4's layout; ``coefficients`` holds the fixed
    effects table it prints. That table is computed upstream and passed in
    (``fit.summary()`` passes ``coef_table(fit, ddf="satterthwaite")``), so
    this printing module needs nothing from the inference stage.

    Parameters
    ----------
    fit : LmerFit
    coefficients : DataFrame
        Index: fixed-effect names; columns ``estimate, std_error`` and any of
        ``df, t_value, p_value`` (as :func:`lmmjax.inference.coef_table`).

    Examples
    --------
    >>> print(fit.summary())  # doctest: +SKIP
    """

    def __init__(self, fit, coefficients: pd.DataFrame):
        self.fit = fit
        self.coefficients = coefficients

    # ---- pieces -----------------------------------------------------------
    def _header(self) -> list:
        fit = self.fit
        method = "REML" if fit.reml else "maximum likelihood"
        lines = [f"Linear mixed model fit by {method} (lmmjax)", f"Formula: {fit.formula}", ""]
        if fit.reml:
            lines.append(f"REML criterion at convergence: {fit.deviance:.4f}")
        else:
            rows = [[f"{fit.aic:.4f}", f"{fit.bic:.4f}", f"{fit.loglik:.4f}", f"{fit.deviance:.4f}",
                     str(fit.nobs - fit.n_params)]]
            lines.append(_table(rows, ["AIC", "BIC", "logLik", "deviance", "df.resid"], align_left=0))
        kind = fit.model.dims.kind
        if getattr(kind, "schur", None) == "iterative":
            lines.append(f"(log|S| estimated by stochastic Lanczos quadrature, {kind.probes} probes: "
                         "the criterion above is an estimate, see fit.check())")
        return lines

    def _residuals(self) -> list:
        return scaled_residual_lines(self.fit.residuals("pearson"))

    def _random(self) -> list:
        fit = self.fit
        vc = fit.varcorr
        rows = []
        max_cor = 0
        by_term = []
        for tm in fit.model.frame.terms:
            sub = vc[(vc.group == tm.group) & vc.term1.isin(tm.columns)]
            var = sub[sub.term2.isna()]
            cov = sub[sub.term2.notna()]
            by_term.append((tm, var, cov))
            max_cor = max(max_cor, len(tm.columns) - 1)
        seen_groups = set()
        for tm, var, cov in by_term:
            for i, r in enumerate(var.itertuples(index=False)):
                cors = []
                for j in range(i):
                    c = cov[(cov.term1 == tm.columns[j]) & (cov.term2 == tm.columns[i])]
                    cors.append(f"{c.sdcor.iloc[0]:.2f}" if len(c) else "")
                group = tm.group if (i == 0 and (tm.group, tuple(tm.columns)) not in seen_groups) else ""
                rows.append([group, r.term1, _fmt(r.vcov), _fmt(r.sdcor)] + cors + [""] * (max_cor - len(cors)))
            seen_groups.add((tm.group, tuple(tm.columns)))
        res = vc[vc.group == "Residual"].iloc[0]
        rows.append(["Residual", "", _fmt(res.vcov), _fmt(res.sdcor)] + [""] * max_cor)
        header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (max_cor - 1) if max_cor else [])
        groups = ", ".join(f"{g}, {k}" for g, k in fit.ngroups.items())
        return ["", "Random effects:", _table(rows, header, align_left=2),
                f"Number of obs: {fit.nobs}, groups:  {groups}"]

    def _residual_structure(self) -> list:
        return [""] + residual_structure_lines(self.fit) if self.fit.model.residual is not None else []

    def _fixed(self) -> list:
        ct = self.coefficients
        labels = {"estimate": "Estimate", "std_error": "Std. Error", "df": "df",
                  "t_value": "t value", "p_value": "Pr(>|t|)"}
        rows = []
        for name, r in ct.iterrows():
            cells = [name]
            for col in ct.columns:
                v = r[col]
                if col == "p_value":
                    cells.append(f"{v:.3g}" if v >= 2.2e-16 else "< 2e-16")  # as R's format.pval
                elif col == "df":
                    cells.append(f"{v:.2f}")
                elif col == "t_value":
                    cells.append(f"{v:.3f}")
                else:
                    cells.append(_fmt(v, 6))
            rows.append(cells)
        out = ["", "Fixed effects:", _table(rows, [""] + [labels.get(c, c) for c in ct.columns])]
        if "df" in ct.columns:
            out.append(f"(degrees of freedom: {ct.attrs.get('ddf', 'satterthwaite')})")
        return out

    def _correlation(self) -> list:
        return fixed_effect_correlation_lines(self.fit.vcov)

    def _notes(self) -> list:
        return note_lines(self.fit, "boundary (singular) fit: see fit.check() or the SingularFitWarning")

    def __str__(self) -> str:
        return "\n".join(self._header() + self._residuals() + self._random() + self._residual_structure()
                         + self._fixed()
                         + self._correlation() + self._notes())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        fit = self.fit
        parts = [f"<p><b>Linear mixed model</b> fit by {'REML' if fit.reml else 'ML'}: "
                 f"<code>{html.escape(fit.formula)}</code></p>",
                 f"<p>nobs = {fit.nobs}; logLik = {fit.loglik:.4f}; AIC = {fit.aic:.2f}; "
                 f"BIC = {fit.bic:.2f}</p>",
                 "<p><b>Random effects</b></p>", fit.varcorr.to_html(index=False, na_rep="", float_format="%.5g"),
                 *[f"<p>{html.escape(line)}</p>" for line in self._residual_structure()[1:]],
                 "<p><b>Fixed effects</b></p>", self.coefficients.to_html(float_format="%.5g")]
        for note in self._notes()[1:]:
            parts.append(f"<p><i>{html.escape(note)}</i></p>")
        return "\n".join(parts)
