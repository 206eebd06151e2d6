"""Curvature of the likelihood at the optimum: convergence checks and the
approximate uncertainty of the variance components.

The engine profiles σ out of the deviance. Here σ comes back in: the
deviance (ML) or REML criterion as a function of φ = (θ, log σ) is

    D(θ, σ) = log|L_θ|² [+ log|R_X|²] + d·log(2πσ²) + r²(θ)/σ²,

with d = n (ML) or n − p (REML) and r² the penalised residual sum of
squares; minimising over σ gives back the profiled criterion. Its Hessian
is taken by central differences of G and R over θ (σ enters analytically),
evaluated with the already compiled factorization: no new compilation,
1 + 2k² evaluations for k free θ entries. From it:

- the Hessian of the profiled criterion in θ (the Schur complement of the
  σ row), whose eigenvalues and Newton step H⁻¹g are lme4's convergence
  checks;
- ``cov(φ) ≈ 2 H⁻¹`` and, by the delta method, standard errors of the
  standard deviations and correlations (Wald intervals on the log scale for
  standard deviations, on the atanh scale for correlations).

Parameters on the boundary (a diagonal entry of Λ at 0) are held at 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd
from scipy import stats

from ..objective.deviance import LOG2PI, factorize_jit, value_and_grad_jit
from ..results.varcorr import sdcor_vector
from ..memo import memoized

BOUNDARY_TOL = 1e-4  # as lme4's isSingular


def criterion_parts(fit, theta: np.ndarray, arrays=None) -> tuple:
    """(G, R) at θ: the log-determinant terms log|L|² [+ log|R_X|²] and the
    penalised residual sum of squares r², from one factorization.
    ``arrays``: the model's arrays, ideally already on the device."""
    model = fit.model
    dims = model.dims
    f = factorize_jit(np.asarray(theta, float), model.arrays if arrays is None else arrays, dims)
    p = dims.p
    LXX = np.asarray(f.LXX)
    G = float(f.logdet_L) - float(f.sum_log_w)
    if dims.reml:
        G += 2.0 * np.sum(np.log(np.diagonal(LXX)[:p]))
    return G, float(LXX[p, p] ** 2)


def _dof(fit) -> float:
    n = float(fit.model.arrays["nobs"])
    return n - fit.model.dims.p if fit.model.dims.reml else n


def full_deviance(fit, theta: np.ndarray, log_sigma: float) -> float:
    """D(θ, σ): the (REML) deviance with σ not profiled out."""
    G, R = criterion_parts(fit, theta)
    return G + _dof(fit) * (LOG2PI + 2.0 * log_sigma) + R * np.exp(-2.0 * log_sigma)


@dataclass(frozen=True)
class Curvature:
    """Gradient and Hessian information at the optimum.

    Attributes
    ----------
    free : ndarray of int
        Indices of θ not on the boundary (the ones the Hessian covers).
    hessian_full : ndarray
        Hessian of D in (θ[free], log σ).
    hessian_theta : ndarray
        Hessian of the profiled criterion in θ[free].
    gradient : ndarray
        Exact gradient of the profiled criterion in θ[free].
    """

    free: np.ndarray
    hessian_full: np.ndarray
    hessian_theta: np.ndarray
    gradient: np.ndarray

    @property
    def eigenvalues(self) -> np.ndarray:
        if self.hessian_theta.size == 0:
            return np.zeros(0)
        return np.linalg.eigvalsh(self.hessian_theta)

    @property
    def positive_definite(self) -> bool:
        ev = self.eigenvalues
        return bool(ev.size == 0 or ev.min() > 1e-8 * max(1.0, np.abs(ev).max()))

    @property
    def scaled_gradient(self) -> float:
        """max |H⁻¹ g| (lme4's relative gradient check; tolerance 0.002)."""
        if self.gradient.size == 0:
            return 0.0
        try:
            return float(np.max(np.abs(np.linalg.solve(self.hessian_theta, self.gradient))))
        except np.linalg.LinAlgError:
            return np.inf


def _free_theta(fit) -> np.ndarray:
    return np.nonzero(~(fit.model.layout.diagonal & (fit.theta < BOUNDARY_TOL)))[0]


def _fd_derivatives(f, x: np.ndarray, steps: np.ndarray):
    """Central-difference gradients and Hessians of a vector-valued f
    (here (G, R)): 1 + 2k + 2k(k − 1) evaluations."""
    k = len(x)
    f0 = np.asarray(f(x))
    m = len(f0)
    grad, hess = np.zeros((m, k)), np.zeros((m, k, k))
    fp, fm = np.empty((k, m)), np.empty((k, m))
    for i in range(k):
        e = np.zeros(k)
        e[i] = steps[i]
        fp[i], fm[i] = f(x + e), f(x - e)
        grad[:, i] = (fp[i] - fm[i]) / (2 * steps[i])
        hess[:, i, i] = (fp[i] - 2 * f0 + fm[i]) / steps[i] ** 2
    for i in range(k):
        for j in range(i):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = steps[i], steps[j]
            val = (np.asarray(f(x + ei + ej)) - np.asarray(f(x + ei - ej)) - np.asarray(f(x - ei + ej))
                   + np.asarray(f(x - ei - ej))) / (4 * steps[i] * steps[j])
            hess[:, i, j] = hess[:, j, i] = val
    return f0, grad, hess


@memoized
def curvature(fit) -> Curvature:
    """Gradient and Hessians of the fit's criterion at θ̂ (see module doc).

    D depends on σ analytically, D = G(θ) + d·2 log σ + R(θ)/σ², so only G
    and R are differenced, over θ: with t = log σ at σ̂² = R/d,
    ∂²D/∂t² = 4d, ∂²D/∂θ∂t = −2∇R/σ̂², ∂²D/∂θ² = ∇²G + ∇²R/σ̂².
    """
    theta = fit.theta
    free = _free_theta(fit)
    x0 = theta[free]
    arrays = jax.device_put(fit.model.arrays)  # once, not at every evaluation

    def parts(x):
        th = theta.copy()
        th[free] = x
        return criterion_parts(fit, th, arrays)

    # Steps of 1e-3 (relative) balance truncation against the rounding error
    # of the factorization (checked against jax.hessian on sleepstudy: 1e-6
    # relative); bounded parameters never step across their bound.
    steps = 1e-3 * np.maximum(np.abs(x0), 0.1)
    bounded = fit.model.layout.diagonal[free]
    steps[bounded] = np.minimum(steps[bounded], 0.5 * np.abs(x0[bounded]))
    (_, R), grad, hess = _fd_derivatives(parts, x0, steps)
    s2 = R / _dof(fit)
    k = len(x0)
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = hess[0] + hess[1] / s2
    H[:k, k] = H[k, :k] = -2.0 * grad[1] / s2
    H[k, k] = 4.0 * _dof(fit)
    Htt = H[:k, :k] - np.outer(H[:k, k], H[k, :k]) / H[k, k]
    _, g = value_and_grad_jit(theta, arrays, fit.model.dims)
    return Curvature(free, H, Htt, np.asarray(g)[free])


def variance_component_uncertainty(fit, level: float = 0.95) -> pd.DataFrame:
    """Approximate standard errors and Wald intervals of the variance components.

    Delta-method standard errors from the curvature of the likelihood (REML
    criterion for a REML fit); intervals are Wald intervals on the log scale
    for standard deviations and on the atanh scale for correlations, so they
    stay inside the parameter space. Profile or bootstrap intervals
    (``fit.confint(method="profile")``, ``fit.bootstrap(n).ci()``) are more
    accurate; these are a fast fallback and the basis of the
    ``imprecise_variance`` red flag.

    Returns
    -------
    DataFrame indexed like ``fit.sdcor`` with columns
    ``estimate, std_error, lower, upper``.

    Examples
    --------
    >>> variance_component_uncertainty(fit).round(2)  # doctest: +SKIP
    """
    est = fit.sdcor
    cv = curvature(fit)
    theta = fit.theta
    free = cv.free
    x0 = np.append(theta[free], np.log(fit.sigma))

    def psi(x):
        th = theta.copy()
        th[free] = x[:-1]
        return sdcor_vector(fit.model, th, float(np.exp(x[-1]))).to_numpy()

    J = np.empty((len(est), len(x0)))
    for i in range(len(x0)):
        h = 1e-6 * max(abs(x0[i]), 0.1)
        e = np.zeros(len(x0))
        e[i] = h
        J[:, i] = (psi(x0 + e) - psi(x0 - e)) / (2 * h)
    try:
        cov_phi = 2.0 * np.linalg.inv(cv.hessian_full)
        se = np.sqrt(np.maximum(np.einsum("ia,ab,ib->i", J, cov_phi, J), 0.0))
        if not np.all(np.isfinite(cov_phi)) or np.any(np.linalg.eigvalsh(cv.hessian_full) <= 0):
            se = np.full(len(est), np.nan)
    except np.linalg.LinAlgError:
        se = np.full(len(est), np.nan)
    z = stats.norm.ppf(0.5 + level / 2)
    lower, upper = np.full(len(est), np.nan), np.full(len(est), np.nan)
    values = est.to_numpy()
    for i, name in enumerate(est.index):
        if not np.isfinite(se[i]):
            continue
        if name == "phi" and fit.model.dims.residual.correlation == "car1":  # logit scale: inside (0, 1)
            r = np.clip(values[i], 1e-12, 1 - 1e-12)
            s = se[i] / (r * (1 - r))
            lo, hi = np.log(r / (1 - r)) - z * s, np.log(r / (1 - r)) + z * s
            lower[i], upper[i] = 1 / (1 + np.exp(-lo)), 1 / (1 + np.exp(-hi))
        elif name.startswith("cor(") or name == "phi":
            r = np.clip(values[i], -1 + 1e-12, 1 - 1e-12)
            s = se[i] / (1 - r ** 2)
            lower[i], upper[i] = np.tanh(np.arctanh(r) - z * s), np.tanh(np.arctanh(r) + z * s)
        elif values[i] > 0:
            s = se[i] / values[i]
            lower[i], upper[i] = values[i] * np.exp(-z * s), values[i] * np.exp(z * s)
    # Components on the boundary: no curvature-based uncertainty.
    boundary = _boundary_parameters(fit)
    for name in boundary:
        se[list(est.index).index(name)] = np.nan
    return pd.DataFrame({"estimate": values, "std_error": se, "lower": lower, "upper": upper}, index=est.index)


def _boundary_parameters(fit) -> list:
    """sd/cor names whose estimate lies on the boundary (sd 0 or |cor| 1)."""
    out = []
    for name, value in fit.sdcor.items():
        if name.startswith("sd(") and value <= BOUNDARY_TOL * fit.sigma:
            out.append(name)
        if name.startswith("cor(") and (not np.isfinite(value) or abs(value) > 1 - 1e-6):
            out.append(name)
    return out
