"""The immutable result of a GLMM fit: :class:`GlmerFit`, with lme4's accessors.

A record like :class:`~lmmjax.results.fit.LmerFit` without σ and with the
family. Its model, θ, β and the spherical modes u are kept
(``fit.model``, ``fit.theta``, ``fit.estimates.beta``, ``fit.estimates.u``)
so that refits and batched work start from them; the padded row arrays the
objective reads are :func:`lmmjax.fitting.glmm.glmm_data` of the model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special

from ..errors import ModelSpecError
from ..fitting.glmm import glmm_data, glmm_vcov
from ..fitting.record import OptSummary
from ..memo import memoized
from ..model import Model
from .estimates import conditional_variances, point_estimates, spherical_to_blocks
from .glmer_summary import GlmerSummary
from .fit_accessors import FitAccessors
from .predict import predict as predict_link
from .varcorr import term_covariances, varcorr_table

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the diagonal of Λ


@dataclass(frozen=True)
class GlmmEstimates:
    """Estimates of a GLMM fit (numpy).

    Attributes
    ----------
    theta : (k,) relative covariance parameters
    beta : (p,) fixed effects
    u : (q,) spherical conditional modes (block 1 level-major, then later blocks)
    objective : the minimised objective (Laplace: −2·logLik)
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    objective: float


@dataclass(frozen=True, eq=False)
class GlmerFit(FitAccessors):
    """A fitted generalized linear mixed model (see ``lmmjax.glmer``).

    Attributes follow lme4: ``fixef``, ``vcov``, ``theta``, ``varcorr``,
    ``ranef``, ``loglik``, ``deviance``, ``aic``, ``bic``, ``nobs``,
    ``ngroups``, ``converged``, ``singular``, ``family``; there is no σ.

    ``loglik`` is lme4's ``logLik``: for the Laplace approximation the
    conditional log-likelihood (with the binomial constant lchoose(n, k) of
    aggregated data) − ½|u|² − ½log|L|². ``deviance`` is −2·loglik. lme4's
    ``deviance()`` of a GLMM is another number (the sum of deviance
    residuals plus |u|² + log|L|², without the saturated model's
    log-likelihood). With nAGQ > 1, lme4 (and so ``loglik`` here) sums
    deviance residuals, so for aggregated binomial or Poisson data it lacks
    that constant: compare Laplace and quadrature fits with care.

    Examples
    --------
    >>> fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                 cbpp, family="binomial")  # doctest: +SKIP
    >>> fit.fixef.round(3)  # doctest: +SKIP
    """

    model: Model
    family: object
    estimates: GlmmEstimates
    optsummary: OptSummary
    formula: str
    nagq: int = 1

    # ---- basic attributes -------------------------------------------------
    @property
    def reml(self) -> bool:
        return False

    @property
    @memoized
    def _vcov(self) -> tuple:
        est = self.estimates
        return glmm_vcov(glmm_data(self.model), self.model.dims, self.family, self.nagq, est.theta, est.beta, est.u)

    @property
    def vcov(self) -> pd.DataFrame:
        """cov(β̂), as lme4: 2·[H⁻¹]_ββ from the exact Hessian H of −2·logLik in (θ, β)
        (computed on first use); for nAGQ = 0 (or a Hessian that is not positive
        definite) (R_XᵀR_X)⁻¹ at the working weights (see :attr:`vcov_source`)."""
        names = self.model.frame.fixed_names
        return pd.DataFrame(self._vcov[0], index=names, columns=names)

    @property
    def vcov_source(self) -> str:
        """"hessian" or "fisher": how :attr:`vcov` was computed."""
        return self._vcov[1]

    @property
    def hessian(self):
        """Exact Hessian of −2·logLik in (θ, β) at the optimum (None for nAGQ = 0)."""
        return self._vcov[2]

    @property
    @memoized
    def varcorr(self) -> pd.DataFrame:
        """Variances and correlations of the random effects (lme4's ``as.data.frame(VarCorr(m))``)."""
        vc = varcorr_table(self.model, self.estimates.theta, 1.0)
        return vc[vc.group != "Residual"].reset_index(drop=True)

    @property
    def loglik(self) -> float:
        return -0.5 * self.estimates.objective

    @property
    def deviance(self) -> float:
        """−2·loglik (not lme4's ``deviance()``; see the class docstring)."""
        return self.estimates.objective

    @property
    def n_params(self) -> int:
        """Fixed effects + covariance parameters (lme4's ``df`` of logLik)."""
        return self.model.dims.p + self.model.layout.size

    @property
    def singular(self) -> bool:
        """lme4's test: a diagonal entry of T below 1e-4."""
        diag = self.model.layout.diagonal
        return bool(np.any(self.estimates.theta[diag] < SINGULAR_TOL))

    # ---- random effects ---------------------------------------------------
    @property
    @memoized
    def _modes(self) -> list:
        return spherical_to_blocks(self.model, self.estimates.theta, self.estimates.u)

    @property
    @memoized
    def _condvar(self) -> list:
        """Conditional covariances of b per block: Λ (Λ'Z'WZΛ + I)⁻¹ Λ' at the mode's working
        weights (lme4's ``condVar`` with σ = 1), through the LMM's blocked solver."""
        eta = self.linear_predictor
        fam, model = self.family, self.model
        mu = np.asarray(fam.linkinv(eta), float)
        me = np.asarray(fam.mu_eta(eta), float)
        w = model.weights * me * me / np.asarray(fam.variance(mu), float)
        z = eta + (model.y - mu) / me  # a response for the cross-products; only the weights matter here
        working = replace(model, weights=w, frame=replace(model.frame, y=z), arrays=model.values(weights=w, y=z))
        est = replace(point_estimates(working, self.estimates.theta), sigma=1.0)
        return conditional_variances(working, est)

    # ---- fitted values and residuals -------------------------------------
    @property
    @memoized
    def linear_predictor(self) -> np.ndarray:
        """η = Xβ + Zb + offset on the rows used."""
        return self.model.offset + self.model.X @ self.estimates.beta + self.model.z_times(self._modes)

    @property
    @memoized
    def fitted(self) -> np.ndarray:
        """Fitted means μ = g⁻¹(η) (for binomial data: proportions), as lme4's ``fitted``."""
        return np.asarray(self.family.linkinv(self.linear_predictor), float)

    def residuals(self, kind: str = "deviance") -> np.ndarray:
        """Residuals of the rows used; lme4's default kind is "deviance".

        Parameters
        ----------
        kind : {"deviance", "pearson", "response"}
            ``"response"``: y − μ (y a proportion for binomial data);
            ``"pearson"``: (y − μ)·√wt / √V(μ); ``"deviance"``: sign(y − μ)·√dᵢ with
            dᵢ the unit deviance times the prior weight.
        """
        y, wt, mu = self.model.y, self.model.weights, self.fitted
        r = y - mu
        if kind == "response":
            return r
        if kind == "pearson":
            return r * np.sqrt(wt) / np.sqrt(np.asarray(self.family.variance(mu), float))
        if kind == "deviance":
            d = np.asarray(self.family.dev_resids(y, mu, wt), float)
            return np.sign(r) * np.sqrt(np.maximum(d, 0.0))
        raise ModelSpecError(f"Unknown residual kind {kind!r}; use 'deviance', 'pearson' or 'response'.")

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, type: str = "link") -> np.ndarray:
        """Predictions on the link scale (``type="link"``) or of the mean (``type="response"``).

        ``newdata`` and ``re_form`` as :meth:`lmmjax.LmerFit.predict` (levels
        not seen in the fit get random effects of zero; ``re_form="~0"``
        leaves all random effects out).

        Examples
        --------
        >>> fit.predict(re_form="~0", type="response")[:3]  # doctest: +SKIP
        """
        if type not in ("link", "response"):
            raise ModelSpecError(f"predict(type={type!r}): use 'link' or 'response'.")
        eta = predict_link(self, newdata, re_form)
        return eta if type == "link" else np.asarray(self.family.linkinv(eta), float)

    # ---- tables -----------------------------------------------------------
    def coef_table(self) -> pd.DataFrame:
        """Fixed effects with Wald z tests: ``estimate, std_error, z_value, p_value`` (as lme4's summary)."""
        beta = self.estimates.beta
        se = np.sqrt(np.diag(self._vcov[0]))
        z = beta / se
        return pd.DataFrame({"estimate": beta, "std_error": se, "z_value": z,
                             "p_value": 2.0 * special.ndtr(-np.abs(z))}, index=self.model.frame.fixed_names)

    def summary(self) -> GlmerSummary:
        """lme4-style summary (``str()`` for the text)."""
        return GlmerSummary(self, self.coef_table())

    def random_covariances(self) -> list:
        """Per term: (term matrix, T Tᵀ), the covariance of its random effects."""
        return term_covariances(self.model, self.estimates.theta, 1.0)

    # ---- printing ---------------------------------------------------------
    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<GlmerFit {self.formula!r} ({self.family!r}, nAGQ={self.nagq}): nobs={self.nobs}, "
                f"loglik={self.loglik:.4f}, converged={self.converged}, singular={self.singular}>")
