"""The result of a power simulation: :class:`PowerResult`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .hypotheses import METHOD_LABEL


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple:
    """Exact (Clopper-Pearson) confidence interval for a binomial proportion k/n.

    The interval simr reports (R's ``binom.test``): it inverts two one-sided
    binomial tests, so its coverage is at least ``level`` for every true
    proportion (conservative; Wilson's is shorter but can under-cover).

    Examples
    --------
    >>> lo, hi = clopper_pearson(868, 1000)
    >>> round(lo, 4), round(hi, 4)
    (0.8454, 0.8884)
    """
    if n <= 0:
        return (np.nan, np.nan)
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return (lo, hi)


@dataclass(frozen=True)
class PowerResult:
    """Estimated power of a test by simulation.

    Attributes
    ----------
    power : float
        Share of simulations with p < ``alpha``, among those whose test
        could be computed (``nsim - n_failed``).
    ci : tuple (lower, upper)
        Clopper-Pearson (exact binomial) confidence interval for the power.
    level : float
        Confidence level of ``ci``.
    nsim : int
        Simulations run.
    n_significant : int
    n_failed : int
        Simulations whose test statistic could not be computed (a fit failed);
        left out of the power.
    n_not_converged : int
        Simulations in which a fit did not meet the convergence criterion
        (kept in the power, as R users' loops keep them).
    n_singular : int
        Simulations in which a fit was singular (kept).
    alpha : float
    method : str
        ``"lrt"``, ``"wald"`` or ``"satterthwaite"``.
    test : tuple of str
        Fixed-effect columns tested (jointly).
    formula : str
    parameters : dict
        ``fixef`` (Series), ``varcorr`` (DataFrame), ``sigma``, ``theta`` assumed.
    simulations : pandas.DataFrame
        One row per simulation: estimates of the tested effects, ``statistic``,
        ``df`` (and ``ddf``), ``p_value``, ``significant``, ``converged``,
        ``singular`` (and for the LRT the same for the null fit).
    nobs : int
    ngroups : dict
    seed : int
    seconds : float
        Wall time of the run (simulation and fits).
    """

    power: float
    ci: tuple
    level: float
    nsim: int
    n_significant: int
    n_failed: int
    n_not_converged: int
    n_singular: int
    alpha: float
    method: str
    test: tuple
    formula: str
    parameters: dict = field(repr=False)
    simulations: pd.DataFrame = field(repr=False)
    nobs: int = 0
    ngroups: dict = field(default_factory=dict)
    seed: int = 0
    seconds: float = float("nan")

    @property
    def mc_se(self) -> float:
        """Monte Carlo standard error of the power estimate, sqrt(p(1−p)/n)."""
        n = self.nsim - self.n_failed
        return float(np.sqrt(self.power * (1 - self.power) / n)) if n > 0 else np.nan

    def summary(self) -> str:
        n_used = self.nsim - self.n_failed
        groups = ", ".join(f"{g}: {k}" for g, k in self.ngroups.items())
        lines = [
            f"Power for {' + '.join(self.test)} ({METHOD_LABEL.get(self.method, self.method)}, "
            f"alpha = {self.alpha:g})",
            f"  {100 * self.power:.1f}% ({int(round(100 * self.level))}% CI {100 * self.ci[0]:.1f}% to "
            f"{100 * self.ci[1]:.1f}%, Clopper-Pearson)",
            f"  {self.n_significant} of {n_used} simulations significant",
            f"  model: {self.formula}; {self.nobs} observations" + (f" ({groups})" if groups else ""),
        ]
        notes = []
        if self.n_failed:
            notes.append(f"{self.n_failed} failed (left out)")
        if self.n_not_converged:
            notes.append(f"{self.n_not_converged} with a fit not converged")
        if self.n_singular:
            notes.append(f"{self.n_singular} with a singular fit")
        if notes:
            lines.append("  simulations: " + "; ".join(notes))
        if np.isfinite(self.seconds):
            lines.append(f"  {self.nsim} simulations in {self.seconds:.1f} s")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<PowerResult {' + '.join(self.test)} ({self.method}): power={self.power:.3f} "
                f"[{self.ci[0]:.3f}, {self.ci[1]:.3f}], nsim={self.nsim}, failed={self.n_failed}, "
                f"singular={self.n_singular}>")

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(self.summary()) + "</pre>"
