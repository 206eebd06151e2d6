"""lme4-style summary of a :class:`~lmmjax.results.glmer_fit.GlmerFit`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .summary import _fmt, _table  # noqa: PLC2701  (same package: the one home of these formatters)
from .summary import fixed_effect_correlation_lines, note_lines, scaled_residual_lines


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


class GlmerSummary:
    """Summary of a GLMM fit; ``str(summary)`` gives lme4's layout.

    Parameters
    ----------
    fit : GlmerFit
    coefficients : DataFrame with ``estimate, std_error, z_value, p_value``
    """

    def __init__(self, fit, coefficients: pd.DataFrame):
        self.fit = fit
        self.coefficients = coefficients

    def _header(self) -> list:
        fit = self.fit
        approx = ("Laplace Approximation" if fit.nagq == 1 else
                  "adaptive Gauss-Hermite Quadrature, nAGQ = %d" % fit.nagq if fit.nagq > 1 else
                  "nAGQ = 0: PIRLS estimates of β")
        rows = [[f"{fit.aic:.4f}", f"{fit.bic:.4f}", f"{fit.loglik:.4f}", f"{fit.deviance:.4f}",
                 str(fit.nobs - fit.n_params)]]
        return [f"Generalized linear mixed model fit by maximum likelihood ({approx}) (lmmjax)",
                f" Family: {fit.family.name}  ( {fit.family.link} )",
                f"Formula: {fit.formula}", "",
                _table(rows, ["AIC", "BIC", "logLik", "-2*log(L)", "df.resid"], align_left=0)]

    def _residuals(self) -> list:
        return scaled_residual_lines(self.fit.residuals("pearson"))

    def _random(self) -> list:
        fit = self.fit
        rows, max_cor = [], 0
        for tm, S in fit.random_covariances():
            max_cor = max(max_cor, len(tm.columns) - 1)
        for tm, S in fit.random_covariances():
            sd = np.sqrt(np.diag(S))
            for i, name in enumerate(tm.columns):
                cors = [f"{S[i, j] / (sd[i] * sd[j]):.2f}" if sd[i] * sd[j] > 0 else "" for j in range(i)]
                rows.append([tm.group if i == 0 else "", name, _fmt(S[i, i]), _fmt(sd[i])]
                            + cors + [""] * (max_cor - len(cors)))
        header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (max_cor - 1) if max_cor else [])
        groups = ", ".join(f"{g}, {k}" for g, k in fit.ngroups.items())
        return ["", "Random effects:", _table(rows, header, align_left=2),
                f"Number of obs: {fit.nobs}, groups:  {groups}"]

    def _fixed(self) -> list:
        rows = []
        for name, r in self.coefficients.iterrows():
            p = r["p_value"]
            rows.append([name, _fmt(r["estimate"], 6), _fmt(r["std_error"], 6), f"{r['z_value']:.3f}",
                         f"{p:.3g}" if p >= 2.2e-16 else "< 2e-16", _stars(p)])
        return ["", "Fixed effects:",
                _table(rows, ["", "Estimate", "Std. Error", "z value", "Pr(>|z|)", ""]),
                "---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]

    def __str__(self) -> str:
        singular = "boundary (singular) fit: a random-effect variance is estimated as 0"
        return "\n".join(self._header() + self._residuals() + self._random() + self._fixed()
                         + fixed_effect_correlation_lines(self.fit.vcov) + note_lines(self.fit, singular))

    def __repr__(self) -> str:
        return str(self)
