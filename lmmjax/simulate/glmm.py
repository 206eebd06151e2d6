"""GLMM responses drawn from a fit, and many GLMM refits in one compiled, vmapped loop.

- :func:`simulate_glmm` — responses from a ``GlmerFit`` (lme4's
  ``simulate``): new random effects b = Λu, u ~ N(0, I) (or the fitted ones
  with ``use_u=True``), μ = g⁻¹(offset + Xβ + Zb), then binomial counts out
  of the prior-weight trials (returned as proportions, glm's y) or Poisson
  counts.
- :func:`refit_glmm_many` — the fit's design fitted to each response
  (:func:`lmmjax.fitting.glmm_batch.fit_glmm_batch`: one compiled, vmapped
  program; failures are status codes), optionally with each refit's cov(β̂).
- :func:`bootstrap_glmm` — the parametric bootstrap (bootMer) as a
  :class:`~lmmjax.simulate.bootstrap.BootstrapResult`.

Examples
--------
>>> fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)  # doctest: +SKIP
>>> boot = bootstrap_glmm(fit, 1000, seed=1)  # doctest: +SKIP
>>> boot.ci()  # doctest: +SKIP
"""
from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..fitting.glmm import glmm_data
from ..fitting.glmm_batch import fit_glmm_batch
from ..fitting.record import STATUS_TEXT
from ..objective.glmm import glmm_objective
from ..results.estimates import spherical_to_blocks
from ..validate import check_bool, check_count, check_seed
from .bootstrap import BootstrapResult
from .tables import sdcor_matrix, sdcor_names

SINGULAR_TOL = 1e-4

jax.config.update("jax_enable_x64", True)


# ---- simulation --------------------------------------------------------------------------------
def draw_glm_response(family, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Responses on glm's scale: binomial successes / trials (0 where there are none), Poisson counts."""
    if family.name == "binomial":
        trials = np.round(wt).astype(np.int64)
        k = rng.binomial(np.broadcast_to(trials, mu.shape), np.clip(mu, 0.0, 1.0))
        return np.divide(k, trials, out=np.zeros(mu.shape), where=trials > 0)
    return rng.poisson(mu).astype(float)


def simulate_design(model, family, theta, beta, n: int, seed: int = 0, u=None, start: int = 0) -> np.ndarray:
    """Responses (n, model-frame rows) from a GLMM design at (θ, β) (``u``: keep these modes).

    Replicate i uses its own generator ``default_rng((seed, i))`` (new modes
    b = Λu, u ~ N(0, I), then the response), so it does not depend on ``n``
    or on the chunk it is drawn in; ``start`` numbers the first replicate.
    """
    seed = check_seed(seed)
    fixed = np.asarray(model.offset, float) + model.X @ np.asarray(beta, float)
    wt = np.asarray(model.weights, float)
    q = model.dims.l1 * model.dims.p1 + model.dims.q2
    out = np.empty((n, len(fixed)))
    for i in range(n):
        rng = np.random.default_rng((seed, start + i))
        modes = np.asarray(u, float) if u is not None else rng.standard_normal(q)
        eta = fixed + model.z_times(spherical_to_blocks(model, theta, modes))
        out[i] = draw_glm_response(family, np.asarray(family.linkinv(eta), float), wt, rng)
    return out


def simulate_glmm(fit, n: int = 1, seed: int = 0, use_u: bool = False) -> np.ndarray:
    """Responses simulated from a GLMM fit: (n, rows of the model frame), as lme4's ``simulate``.

    Binomial responses are proportions of the prior-weight trials (glm's y),
    so that ``refit`` and :func:`refit_glmm_many` take them as they are.

    Examples
    --------
    >>> Y = simulate_glmm(fit, 100, seed=1)  # doctest: +SKIP
    """
    n = check_count(n, "n")
    u = fit.estimates.u if check_bool(use_u, "use_u") else None
    return simulate_design(fit.model, fit.family, fit.theta, fit.estimates.beta, n, seed, u)


# ---- batched refits ------------------------------------------------------------------------------
def _objective(y, data, dims, family, nagq, u0, beta0):
    """x = (θ, β) → the GLMM objective for response ``y`` (two differentiable Newton steps at the mode)."""
    k = dims.n_theta
    d = {**data, "y": y}
    no = jnp.asarray(False)
    return lambda x: glmm_objective(x[:k], x[k:], u0, beta0, no, no, d, dims, family, nagq, 2)[0]


@partial(jax.jit, static_argnums=(4, 5, 6))
def _vcov_many(Y, X, data, u0, dims, family, nagq):
    def one(y, x):
        H = jax.hessian(_objective(y, data, dims, family, nagq, u0, x[dims.n_theta:]))(x)
        return 2.0 * jnp.linalg.inv(H)[dims.n_theta:, dims.n_theta:]

    return jax.vmap(one)(Y, X)


def vcov_many(fit, Y, theta, beta) -> np.ndarray:
    """lme4's cov(β̂) (2·[H⁻¹]_ββ, H the exact Hessian of the objective in (θ, β)) of each refit: (B, p, p)."""
    model = fit.model
    Ypad = np.pad(np.atleast_2d(np.asarray(Y, float)), ((0, 0), (0, model.pattern.n_rows - model.n_rows)))
    X = np.concatenate([np.asarray(theta, float), np.asarray(beta, float)], axis=1)
    data = jax.device_put(glmm_data(model))
    return np.asarray(_vcov_many(Ypad, X, data, np.asarray(fit.estimates.u, float), model.dims, fit.family,
                                 fit.nagq))


def refit_glmm_many(fit, Y, with_vcov: bool = False) -> dict:
    """The fit's design fitted to each row of ``Y`` (glm's y, one value per model-frame row).

    The refits are :func:`lmmjax.fitting.glmm_batch.fit_glmm_batch` (one
    compiled, vmapped program); ``with_vcov`` adds each refit's cov(β̂)
    (``vcov``, (B, p, p)) for Wald tests, and ``seconds`` the wall time.

    Examples
    --------
    >>> res = refit_glmm_many(fit, simulate_glmm(fit, 100, seed=1))  # doctest: +SKIP
    >>> res["beta"].shape  # doctest: +SKIP
    (100, 4)
    """
    if fit.nagq == 0:
        raise ModelSpecError("Batched refits need nAGQ >= 1 (they optimise θ and β together).")
    Y = np.atleast_2d(np.asarray(Y, float))
    if Y.shape[1] != fit.model.n_rows or not np.all(np.isfinite(Y)):
        raise ModelSpecError(f"Each response must hold {fit.model.n_rows} finite values (one per model-frame row).")
    t0 = time.perf_counter()
    res = fit_glmm_batch(fit, Y)
    if with_vcov:
        res["vcov"] = vcov_many(fit, Y, res["theta"], res["beta"])
    res["seconds"] = time.perf_counter() - t0
    return res


def glmm_estimates_frame(fit, theta: np.ndarray, beta: np.ndarray) -> pd.DataFrame:
    """Fixed effects then ``sd(...)``/``cor(...)`` per row of (θ, β) (names as ``fit.confint``)."""
    names = [n for n in sdcor_names(fit.model, fit.theta, 1.0) if n != "sigma"]
    sd = sdcor_matrix(fit.model, theta, np.ones(len(theta)))[:, : len(names)]
    return pd.concat([pd.DataFrame(beta, columns=list(fit.model.frame.fixed_names)),
                      pd.DataFrame(sd, columns=names)], axis=1)


def bootstrap_glmm(fit, n: int = 1000, seed: int = 0, use_u: bool = False) -> BootstrapResult:
    """Parametric bootstrap of a GLMM fit (lme4's ``bootMer``, ``type = "parametric"``).

    Parameters
    ----------
    fit : GlmerFit (nAGQ ≥ 1)
    n : int
        Replicates.
    seed : int
        Seed of the simulated responses (numpy's Generator).
    use_u : bool
        Keep the fitted random effects (True) or draw new ones (False, bootMer's default).

    Returns
    -------
    BootstrapResult
        ``replicates``: the fixed effects, ``sd(...)``/``cor(...)`` (no σ), ``converged``, ``singular``.

    Examples
    --------
    >>> boot = bootstrap_glmm(fit, 1000, seed=1)  # doctest: +SKIP
    >>> boot.ci(method="percentile")  # doctest: +SKIP
    """
    n = check_count(n, "n")
    t0 = time.perf_counter()
    Y = simulate_glmm(fit, n, seed, use_u)
    res = refit_glmm_many(fit, Y)
    reps = glmm_estimates_frame(fit, res["theta"], res["beta"])
    diag = np.asarray(fit.model.layout.diagonal)
    reps["converged"] = res["converged"].astype(bool)
    reps["singular"] = np.any(res["theta"][:, diag] < SINGULAR_TOL, axis=1)
    original = glmm_estimates_frame(fit, np.asarray(fit.theta)[None, :],
                                    np.asarray(fit.estimates.beta)[None, :]).iloc[0]
    return BootstrapResult(
        replicates=reps, original=original, n=n, seed=int(seed), reml=False, use_u=bool(use_u),
        theta=res["theta"], deviance=res["deviance"], n_iter=res["n_iter"],
        message=np.array([STATUS_TEXT.get(int(s), str(s)) for s in res["status"]]),
        seconds=time.perf_counter() - t0, formula=fit.formula)
