"""lme4's accessors shared by :class:`~lmmjax.results.fit.LmerFit` and
:class:`~lmmjax.results.glmer_fit.GlmerFit`.

A fit class that inherits :class:`FitAccessors` supplies ``model``,
``estimates`` (with ``theta`` and ``beta``), ``optsummary``, ``loglik``,
``n_params`` and the per-block arrays ``_modes`` and ``_condvar``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..memo import memoized
from .ranef_tables import condvar_sd_frames, group_order, ranef_frames


class FitAccessors:
    """θ, β, information criteria, grouping factors and random-effect tables of a fit.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (1 | Subject)", lmm.datasets.load("sleepstudy"))
    >>> fit.ngroups
    {'Subject': 18}
    """

    @property
    def theta(self) -> np.ndarray:
        """Relative covariance parameters θ (lme4's ``getME(m, "theta")``), a copy."""
        return self.estimates.theta.copy()

    @property
    @memoized
    def fixef(self) -> pd.Series:
        return pd.Series(self.estimates.beta, index=self.model.frame.fixed_names, name="estimate")

    @property
    def nobs(self) -> int:
        return self.model.nobs

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.n_params

    @property
    def ngroups(self) -> dict:
        return {b.group: b.nlevels for b in group_order(self.model.blocks)}

    @property
    def converged(self) -> bool:
        return bool(self.optsummary.success)

    @property
    @memoized
    def ranef(self) -> dict:
        """Conditional modes of the random effects per grouping factor (DataFrames)."""
        return ranef_frames(self.model.blocks, self._modes)

    @property
    @memoized
    def ranef_condvar(self) -> dict:
        """Conditional covariance matrices of the random effects: per group (nlevels, p, p)."""
        return {blk.group: cv for blk, cv in zip(self.model.blocks, self._condvar)}

    @property
    @memoized
    def ranef_sd(self) -> dict:
        """Conditional standard deviations of the random effects (lme4's condVar), per group."""
        return condvar_sd_frames(self.model.blocks, self._condvar)
