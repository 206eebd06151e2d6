"""Satterthwaite degrees of freedom with exact derivatives (lmerTest's method).

lmerTest (Kuznetsova, Brockhoff & Christensen 2017, JSS 82(13)) works with the
variance parameters ``varpar = (θ, σ)`` and

- the deviance as a function of varpar with β profiled out but σ *not*
  profiled: ML ``log|L|² + pwrss(θ)/σ² + n log(2πσ²)``; REML adds
  ``log|R_X|²`` and has ``n − p`` in place of ``n``;
- ``A = 2 H⁻¹``, H its Hessian at the estimate (the asymptotic covariance
  of varpar);
- the Jacobian of ``cov(β̂)(varpar) = σ² (X'V_θ⁻¹X)⁻¹`` (``X'V_θ⁻¹X`` is the
  leading p×p block of the blocked factorisation's Schur complement).

lmerTest takes H and the Jacobian by numerical differentiation (numDeriv);
here both come from JAX through :func:`lmmjax.objective.deviance.factorize`,
compiled once per model structure. For a linear combination ``l'β`` the
degrees of freedom are ``2 (l'Cl)² / (g'Ag)`` with ``g_k = l'(∂C/∂varpar_k)l``;
F tests of several rows use lmerTest's ``contestMD`` (eigen-decomposition
of ``L C L'`` and the combination of the per-direction df).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..fitting.reparam import reparametrisation
from ..heap import release_free_memory
from ..objective.deviance import LOG2PI, factorize, fixed_columns
from ..objective.padding import pad_theta, varpar_positions
from ..program_cache import cached_jit
from ..progress import Progress, first_use

jax.config.update("jax_enable_x64", True)

EIGEN_TOL = 1e-8  # lmerTest's tolerance on the Hessian's eigenvalues


def _theta_parts(theta, arrays, dims):
    """The deviance's pieces that depend on θ: ``(a, pwrss, c, C₀)``.

    The deviance in varpar = (θ, σ) is ``a(θ) + pwrss(θ)/σ² + c·log(2πσ²)``
    (``a = log|L|² − Σ log wᵢ``, plus ``log|R_X|²`` by REML; ``c = n − p``
    by REML, n by ML) and ``cov(β̂) = σ² C₀(θ)``, ``C₀ = (X'V_θ⁻¹X/σ²)⁻¹``.
    """
    f = factorize(theta, arrays, dims)
    p = dims.p
    LXX = f.LXX
    n = arrays["nobs"]
    a = f.logdet_L - f.sum_log_w
    if dims.reml:
        a = a + 2.0 * jnp.sum(jnp.log(jnp.diagonal(LXX)[:p]))
        c = n - fixed_columns(f, dims)  # columns padded to a shape bucket count for nothing
    else:
        c = n
    R = LXX[:p, :p]  # lower Cholesky factor of σ²X'V⁻¹X
    Rinv = jax.scipy.linalg.solve_triangular(R, jnp.eye(p, dtype=R.dtype), lower=True)
    return a, LXX[p, p] ** 2, c, Rinv.T @ Rinv


def _deviance_and_covbeta(varpar, arrays, dims):
    theta, sigma = varpar[:-1], varpar[-1]
    a, pwrss, c, C0 = _theta_parts(theta, arrays, dims)
    s2 = sigma ** 2
    return a + pwrss / s2 + c * (LOG2PI + jnp.log(s2)), s2 * C0


def varpar_deviance(varpar, arrays, dims):
    """Deviance (ML) or REML criterion at ``varpar = (θ, σ)``, β profiled, σ explicit.

    Examples
    --------
    >>> dev = varpar_deviance(np.append(fit.theta, fit.sigma), fit.model.arrays, fit.model.dims)  # doctest: +SKIP
    """
    return _deviance_and_covbeta(varpar, arrays, dims)[0]


def covbeta(varpar, arrays, dims):
    """cov(β̂) = σ² (X'V_θ⁻¹X)⁻¹ as a function of ``varpar = (θ, σ)``."""
    return _deviance_and_covbeta(varpar, arrays, dims)[1]


def _gradient_in_theta(sigma, arrays, dims):
    """θ ↦ (∇_θ deviance at (θ, σ), (pwrss, c, C₀)): what each forward direction differentiates."""
    def dev_theta(theta):
        a, pwrss, c, C0 = _theta_parts(theta, arrays, dims)
        return a + pwrss / sigma ** 2, (pwrss, c, C0)

    return jax.grad(dev_theta, has_aux=True)


def theta_pieces(theta, sigma, arrays, dims):
    """Second derivatives in θ from one trace of the factorisation (forward-over-reverse).

    Only θ is differentiated: the deviance and cov(β̂) are explicit in σ
    (:func:`_theta_parts`), so its derivatives are put together on the host
    (:func:`assemble`). Returns ``(H_θθ, ∂pwrss/∂θ, pwrss, c, C₀, ∂C₀/∂θ)``.
    """
    grad = _gradient_in_theta(sigma, arrays, dims)

    def differentiated(t):
        g, (pw, c, C0) = grad(t)
        return (g, pw, C0), (pw, c, C0)

    (H, dpw, dC0), (pw, c, C0) = jax.jacfwd(differentiated, has_aux=True)(theta)
    return H, dpw, pw, c, C0, dC0


def _pieces_one_direction_at_a_time(theta, sigma, arrays, dims):
    """:func:`theta_pieces` with the n_θ forward directions taken one after another (``lax.map``).

    ``jax.jacfwd`` carries every direction's tangents at once, so a large
    model's reverse pass (q2 × q2 matrices, the Schur update's pairs) is held
    n_θ times over; here once. Same arithmetic, same numbers.
    """
    grad = _gradient_in_theta(sigma, arrays, dims)

    def one(direction):
        (_, (pw, c, C0)), (dg, (dpw, _, dC0)) = jax.jvp(grad, (theta,), (direction,))
        return dg, dpw, pw, c, C0, dC0

    dg, dpw, pw, c, C0, dC0 = lax.map(one, jnp.eye(theta.shape[0], dtype=theta.dtype))
    return dg.T, dpw, pw[0], c[0], C0[0], jnp.moveaxis(dC0, 0, -1)


def assemble(sigma, H_tt, dpwrss, pwrss, c, C0, dC0):
    """The Hessian in varpar = (θ, σ), cov(β̂) and its Jacobian (…, n_varpar) from the θ pieces.

    With ``dev = a(θ) + pwrss(θ)/σ² + c·log(2πσ²)`` and ``cov(β̂) = σ² C₀(θ)``:
    ``∂²dev/∂θ∂σ = −2 ∂pwrss/∂θ / σ³``, ``∂²dev/∂σ² = 6 pwrss/σ⁴ − 2c/σ²``,
    ``∂cov/∂θ = σ² ∂C₀/∂θ``, ``∂cov/∂σ = 2σ C₀``. The arguments may carry
    leading batch axes (one per simulation, :mod:`lmmjax.powersim.engine`).
    """
    sigma, pwrss, c = (np.asarray(v, float) for v in (sigma, pwrss, c))
    k = H_tt.shape[-1]
    H = np.empty(H_tt.shape[:-2] + (k + 1, k + 1))
    H[..., :k, :k] = H_tt
    H[..., :k, k] = H[..., k, :k] = -2.0 * dpwrss / sigma[..., None] ** 3
    H[..., k, k] = 6.0 * pwrss / sigma ** 4 - 2.0 * c / sigma ** 2
    s = sigma[..., None, None]
    J = np.concatenate([(s ** 2)[..., None] * dC0, (2.0 * s * C0)[..., None]], axis=-1)
    return H, s ** 2 * C0, J


pieces_jit = cached_jit(theta_pieces, static_argnums=3)
pieces_sequential_jit = cached_jit(_pieces_one_direction_at_a_time, static_argnums=3)
SEQUENTIAL_FROM = 2_000_000  # numbers in the largest array of a model from which directions go one at a time


def pieces_function(arrays):
    """The compiled Hessian-and-Jacobian program for a model.

    Large models (an array of :data:`SEQUENTIAL_FROM` numbers or more, e.g.
    a dense later block with q2 ≥ 1,415 or millions of Schur pairs) take
    the forward directions one at a time, so that summary() needs little
    more memory than the fit.

    A variant compiled without XLA's backend optimisations (about 40 % less
    compile time on small models) was dropped: test processes compiling it
    among several hundred programs crashed inside XLA (jax 0.10.2, CPU).
    """
    largest = max((int(np.size(a)) for a in arrays.values()), default=0)
    return pieces_sequential_jit if largest >= SEQUENTIAL_FROM else pieces_jit


def run_pieces(theta, sigma, arrays, dims):
    """:func:`theta_pieces` at (θ, σ) by the program :func:`pieces_function` picks.

    A large model's program is compiled first and the memory the compiler
    freed is handed back (:func:`lmmjax.heap.release_free_memory`) before it
    runs: otherwise the compiler's leftovers (about 0.2 GB for a 1e6-row
    crossed model) add to the run's buffers in summary()'s peak memory.
    """
    program = pieces_function(arrays)
    if program is not pieces_sequential_jit:
        return program(theta, sigma, arrays, dims)
    release_free_memory()  # the fit's leftovers
    run = program.compiled(theta, sigma, arrays, dims)
    release_free_memory()  # the compiler's
    return run()


@dataclass(frozen=True)
class SatterthwaiteInfo:
    """What lmerTest stores in an ``lmerModLmerTest`` object.

    Attributes
    ----------
    varpar : ndarray, (θ, σ) at the estimate
    hessian : ndarray, Hessian of :func:`varpar_deviance` in varpar
    vcov_varpar : ndarray, ``2 H⁺`` (pseudo-inverse over eigenvalues > 1e-8)
    vcov_beta : ndarray, cov(β̂)
    jacobian : ndarray (n_varpar, p, p), ∂cov(β̂)/∂varpar_k
    notes : tuple of str, lmerTest's warnings about the Hessian
    """

    varpar: np.ndarray
    hessian: np.ndarray
    vcov_varpar: np.ndarray
    vcov_beta: np.ndarray
    jacobian: np.ndarray
    notes: tuple


def satterthwaite_info(model, theta: np.ndarray, sigma: float) -> SatterthwaiteInfo:
    """Hessian and Jacobian at (θ, σ), exact, from one compiled function.

    Cost: one forward-over-reverse Hessian of the deviance in θ (n_θ JVPs of
    its gradient, cov(β̂)'s Jacobian carried along; σ's rows by hand,
    :func:`assemble`): a few times one gradient evaluation of the
    objective. Measured (2 cores): 1e6 crossed rows (tiled kind) 8–13 s
    with compilation and no rise of the fit's peak memory; 1e7
    MovieLens-shaped rows (iterative kind) 36 s, peak 4.56 GB against the
    fit's 4.03 GB.

    Scale-free: the Hessian is decomposed and inverted in (θ, σ/σ̂), where
    its entries do not depend on the units of y (with y in units of 1e-9,
    H_σσ ~ n/σ̂² ~ 1e17 swamped the θ block in the eigen-decomposition and
    the df drifted from 17 to 16.6), then mapped back: ``A = D A_s D``,
    ``D = diag(1, …, 1, σ̂)``. The eigenvalue tolerance and lmerTest's notes
    apply in the scaled variables. A model whose random-effect columns are
    badly scaled is evaluated in the centred and scaled parametrisation of
    its fit (:mod:`lmmjax.fitting.reparam`); the df are invariant to it.
    """
    plan = reparametrisation(model)
    if plan is not None:
        model, theta = plan.model, plan.to_scaled(theta)
    varpar = np.append(np.asarray(theta, float), float(sigma))
    # on the model's shape bucket (one program for every model of the bucket), cut to the true sizes
    dims, arrays = model.fit_dims, model.fit_arrays
    with Progress(desc="Satterthwaite df", unit="s", compiling=first_use(("satterthwaite", dims))):
        out = run_pieces(pad_theta(theta, dims), np.float64(sigma), arrays, dims)
        H, C, J = assemble(float(sigma), *(np.asarray(a, float) for a in out))
    keep, p = varpar_positions(len(varpar) - 1, dims), model.dims.p
    H, C, J = H[np.ix_(keep, keep)], C[:p, :p], J[:p, :p][..., keep]
    H = 0.5 * (H + H.T)
    D = np.ones(varpar.size)
    if np.isfinite(sigma) and sigma > 0:
        D[-1] = float(sigma)
    evals, evecs = np.linalg.eigh(D[:, None] * H * D[None, :])
    notes = []
    neg = evals < -EIGEN_TOL
    zero = np.abs(evals) <= EIGEN_TOL
    if neg.any():
        notes.append("Model failed to converge: the Hessian of the deviance in (θ, σ) has negative "
                     f"eigenvalue(s) {', '.join(f'{v:.1e}' for v in evals[neg])}.")
    if zero.any():
        notes.append("Model may not have converged: eigenvalue(s) of the Hessian close to zero: "
                     f"{', '.join(f'{v:.1e}' for v in evals[zero])}.")
    pos = evals > EIGEN_TOL
    Hinv = D[:, None] * ((evecs[:, pos] / evals[pos]) @ evecs[:, pos].T) * D[None, :]
    return SatterthwaiteInfo(varpar=varpar, hessian=H, vcov_varpar=2.0 * Hinv, vcov_beta=C,
                             jacobian=np.moveaxis(J, -1, 0), notes=tuple(notes))


def t_test(info: SatterthwaiteInfo, beta: np.ndarray, l: np.ndarray):
    """Estimate, SE, df of ``l'β`` (lmerTest's ``contest1D``)."""
    l = np.asarray(l, float)
    var = float(l @ info.vcov_beta @ l)
    grad = np.einsum("i,kij,j->k", l, info.jacobian, l)
    denom = float(grad @ info.vcov_varpar @ grad)
    df = 2.0 * var ** 2 / denom if denom > 0 else np.inf
    return float(l @ beta), np.sqrt(var), df


def combine_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: one denominator df from per-direction df."""
    nu = np.asarray(nu, float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2.0))
    return float(2.0 * E / (E - nu.size))


def f_test(info: SatterthwaiteInfo, beta: np.ndarray, L: np.ndarray, eps: float = np.sqrt(np.finfo(float).eps)):
    """F statistic, numerator and denominator df of ``Lβ = 0`` (lmerTest's ``contestMD``).

    Rows of L that are linear combinations of others are dropped through the
    eigen-decomposition of ``L C L'``.
    """
    L = np.atleast_2d(np.asarray(L, float))
    VL = L @ info.vcov_beta @ L.T
    d, P = np.linalg.eigh(0.5 * (VL + VL.T))
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    tol = max(eps * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q == 0:
        return np.nan, 0, np.nan
    PtL = (P.T @ L)[:q]
    if q == 1:
        est, se, df = t_test(info, beta, PtL[0])
        return (est / se) ** 2, 1, df
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    grads = np.einsum("mi,kij,mj->mk", PtL, info.jacobian, PtL)
    nu = 2.0 * d[:q] ** 2 / np.einsum("mk,kl,ml->m", grads, info.vcov_varpar, grads)
    return F, q, combine_df(nu)
