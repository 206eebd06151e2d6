"""The GLMM objective in JAX: PIRLS for the conditional modes, the Laplace and
adaptive Gauss–Hermite deviances, and their exact derivatives.

Model: η = Xβ + ZΛθ u + offset, u ~ N(0, I), y | u from a GLM family with
prior weights ``wt``. For fixed (θ, β) the conditional mode u* minimises the
penalised deviance ``Σ dev_resids(y, μ(η), wt) + |u|²``; PIRLS finds it by
penalised weighted least squares at the working weights
``w = wt·(dμ/dη)²/V(μ)`` and working response ``z = η + (y − μ)/(dμ/dη)``:
exactly the linear mixed model's factorization
(:func:`lmmjax.objective.crossprod.cross_products`,
:func:`lmmjax.objective.deviance.factorize`) with ``w`` as row weights and
``z`` as response, and :func:`lmmjax.objective.modes.solve_modes` for u.
Step halving on the penalised deviance, as lme4's ``pwrssUpdate``.

Stages (lme4's ``glmer``): ``joint=True`` updates (u, β) together in PIRLS
(nAGQ = 0, stage 1: the objective is a function of θ alone);
``joint=False`` updates u at a fixed β (stage 2: a function of (θ, β)).

Objective (lme4's ``glmerLaplace``, which is −2 × lme4's ``logLik``):
``−2 Σ loglik_rows(y, μ*) + |u*|² + log|L|²``, L L' = Λ'Z'W*ZΛ + I at the
working weights of the mode. The binomial constant lchoose(n, k) is in
``loglik_rows``. Adaptive Gauss–Hermite (nAGQ > 1, one scalar term) is
lme4's ``glmerAGQ``, which sums deviance residuals instead (its ``logLik``
then lacks the saturated-model constant; see :func:`agq_deviance`).

Derivatives. The mode is found with the gradient switched off; then
``newton_steps`` exact Newton steps on the penalised deviance (observed
weights ``½ ∂²dev/∂η²``, which equal the working weights for canonical
links) are taken from it with gradients on. At the root the Newton map has
zero derivative in u, so one step carries the implicit-function-theorem
derivative du*/d(θ, β) exactly; two steps carry the exact second
derivatives (used for the Hessian, hence the standard errors). Nothing of
the PIRLS loop itself is differentiated. The one step of first derivatives
holds its Hessian fixed (:func:`implicit_newton_step`): the same
derivative without differentiating a factorization.

Large data (:data:`LARGE_ROWS` padded rows and more) finds the mode by
:func:`pirls_chord`, which refactors only when the kept factor stops
serving.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .crossprod import cross_products
from .deviance import factorize
from .estimates import estimates_from_factor
from ..structure.lambda_map import t_from_theta
from .modes import solve_modes, solve_penalized, z_lambda_times

jax.config.update("jax_enable_x64", True)

PIRLS_MAXIT = 60
PIRLS_HALVINGS = 20
PIRLS_STEP_TOL = 1e-10  # converged when the largest change of (u, β) is below this (relative)
#: Padded rows from which the large-data route is taken: PIRLS by :func:`pirls_chord` here, and
#: the outer search's own shortcuts (:mod:`lmmjax.fitting.glmm`).
LARGE_ROWS = 250_000


def large_rows(data) -> bool:
    """True for at least :data:`LARGE_ROWS` padded rows (static: the arrays' shape)."""
    return data["y"].shape[0] >= LARGE_ROWS


def linear_predictor(theta, u, beta, data, dims):
    """η = Xβ + ZΛu + offset on the padded rows."""
    return data["X"] @ beta + data["offset"] + z_lambda_times(theta, u, data, dims)


def penalized_deviance(theta, u, beta, data, dims, family):
    """Σ dev_resids + |u|² (PIRLS's criterion)."""
    eta = linear_predictor(theta, u, beta, data, dims)
    mu = family.linkinv(eta)
    return jnp.sum(family.dev_resids(data["y"], mu, data["wt"])) + u @ u


def _mu_eta_over_var(family, eta):
    mu = family.linkinv(eta)
    return family.mu_eta(eta) / family.variance(mu)


def canonical(family) -> bool:
    """True for a canonical link (observed and Fisher weights agree)."""
    return (family.name, family.link) in (("binomial", "logit"), ("poisson", "log"))


def working_values(eta, data, family, observed: bool):
    """Row weights and working response (offset included) for a Newton/PIRLS step at η.

    ``observed=False``: Fisher scoring weights ``wt·(dμ/dη)²/V``, as PIRLS.
    ``observed=True``: ``½ ∂²dev/∂η²``, the exact Hessian of the deviance
    (the same for canonical links), for exact derivatives of the mode.
    The working response is ``η − ½ ∂dev/∂η / w``; rows with w = 0 get z = η.
    """
    y, wt = data["y"], data["wt"]
    mu = family.linkinv(eta)
    me = family.mu_eta(eta)
    var = family.variance(mu)
    half_grad = -wt * (y - mu) * me / var  # ½ ∂dev/∂η
    w = wt * me * me / var
    if observed and not canonical(family):
        g = partial(_mu_eta_over_var, family)
        dg = jax.jvp(g, (eta,), (jnp.ones_like(eta),))[1]
        w = w - wt * (y - mu) * dg
    ok = w > 0
    z = eta - jnp.where(ok, half_grad / jnp.where(ok, w, 1.0), 0.0)
    return jnp.where(ok, w, 0.0), z


def pls_step(theta, eta, beta, data, dims, family, joint, observed: bool):
    """:func:`pls_solve` that also returns its factor and row weights: (f, w, u, β)."""
    w, z = working_values(eta, data, family, observed)
    arrays = {**data, **cross_products(data, w, z, data["offset"], dims)}
    f = factorize(theta, arrays, dims, True)
    beta = jnp.where(joint, estimates_from_factor(f, dims).beta, beta)
    coef = arrays["xy_map"] @ jnp.append(-beta, 1.0)
    return f, w, solve_modes(theta, f, arrays, w, coef, dims), beta


def pls_solve(theta, eta, beta, data, dims, family, joint, observed: bool):
    """One PIRLS / Newton step from η: the new (u, β).

    ``joint`` (a traced bool) takes β̂ from the step (stage 1); else β stays.
    """
    return pls_step(theta, eta, beta, data, dims, family, joint, observed)[2:]


def start_eta(data, family):
    """lme4's first η: g(family.initialize(y, wt)) (0 on padded rows)."""
    mu0 = family.initialize(data["y"], data["wt"])
    return jnp.where(data["wt"] > 0, family.linkfun(jnp.where(data["wt"] > 0, mu0, 0.5)), 0.0)


def _halve_and_test(pdev, u, b, un, bn, old, warm_start, last_step=None):
    """A PIRLS step from (u, b) towards (un, bn), halved while the criterion rose; and the stopping test.

    One loop evaluates the criterion at every point (one copy in the compiled
    program): pass −1 (first iteration of a warm start only) the start, pass 0
    the full step, then halvings while the criterion rose beyond rounding (or
    is NaN). Converged: a step below PIRLS_STEP_TOL, or one below 1e-7 that no
    longer changes the criterion beyond rounding (at the noise floor the step
    cannot shrink further), or one below 1e-7 that shrank less than half from
    ``last_step`` (the gradient's rounding over 1e6 rows, where the criterion's
    own rounding hides the flatness test; only when ``last_step`` is given).
    Returns (u, b, criterion, passes, step, converged).
    """
    def halve_cond(h):
        rose = ~(h[2] <= h[4] + 1e-13 * jnp.abs(h[4]))
        return (h[3] <= 0) | ((h[3] <= PIRLS_HALVINGS) & rose)

    def halve(h):
        uh, bh, _, count, ref = h
        first = count == 0
        uh = jnp.where(count < 0, u, jnp.where(first, un, 0.5 * (u + uh)))
        bh = jnp.where(count < 0, b, jnp.where(first, bn, 0.5 * (b + bh)))
        val = pdev(uh, bh)
        return uh, bh, val, count + 1, jnp.where(count < 0, val, ref)

    un, bn, new, count, old = lax.while_loop(halve_cond, halve, (un, bn, old, jnp.where(warm_start, -1, 0), old))
    scale = 1.0 + jnp.maximum(jnp.max(jnp.abs(un), initial=0.0), jnp.max(jnp.abs(bn), initial=0.0))
    step = jnp.maximum(jnp.max(jnp.abs(un - u), initial=0.0), jnp.max(jnp.abs(bn - b), initial=0.0))
    flat = jnp.abs(old - new) <= 1e-14 * jnp.abs(new)
    floor = flat if last_step is None else flat | (step >= 0.5 * last_step)
    done = (step <= PIRLS_STEP_TOL * scale) | (floor & (step <= 1e-7 * scale))
    return un, bn, new, count, step, done


def pirls(theta, beta, u0, beta0, data, dims, family, joint, cold, maxit: int = PIRLS_MAXIT):
    """Conditional modes by PIRLS with step halving (no gradients flow through).

    Starts from (u0, β0) (β0 only when ``joint``; else β is the given one),
    or, when ``cold`` (traced bool), from lme4's η = g(initialize(y)).
    Returns (u, β, penalised deviance, iterations, converged).
    """
    theta, beta, u0, beta0 = (lax.stop_gradient(a) for a in (theta, beta, u0, beta0))
    b_start = jnp.where(joint, beta0, beta)
    eta_cold = start_eta(data, family)

    def pdev(u, b):
        return penalized_deviance(theta, u, b, data, dims, family)

    def cond(s):
        return (s[3] < maxit) & ~s[4]

    def body(s):
        u, b, old, it, _ = s
        eta = jnp.where(cold & (it == 0), eta_cold, linear_predictor(theta, u, b, data, dims))
        un, bn = pls_solve(theta, eta, beta, data, dims, family, joint, False)
        un, bn, new, _, step, done = _halve_and_test(pdev, u, b, un, bn, old, (it == 0) & ~cold)
        return un, bn, new, it + 1, done

    start = (u0, b_start, jnp.asarray(jnp.inf, u0.dtype), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    return lax.while_loop(cond, body, start)


def half_gradient(theta, u, beta, data, dims, family):
    """½ ∂PDEV/∂u = Λ'Z'g + u and ½ ∂PDEV/∂β = X'g at (θ, u, β), g = ½ ∂dev/∂η per row."""
    eta = linear_predictor(theta, u, beta, data, dims)
    mu = family.linkinv(eta)
    g = -data["wt"] * (data["y"] - mu) * family.mu_eta(eta) / family.variance(mu)
    _, z_t = jax.vjp(lambda v: z_lambda_times(theta, v, data, dims), u)
    return z_t(g)[0] + u, data["X"].T @ g


def hessian_solve(theta, f, w, r_u, r_b, data, dims, joint):
    """(s_u, s_β) = H⁻¹ (r_u, r_β), H the Hessian of ½·PDEV in u (and β when ``joint``, a traced
    bool; else s_β = 0) at row weights ``w``, from their kept factor ``f``.

    u is eliminated first: s_β solves the factor's β block of the [X y]
    Schur complement (X'WX − X'WZΛ M⁻¹ Λ'Z'WX), then s_u = M⁻¹(r_u − Λ'Z'WX s_β),
    M = Λ'Z'WZΛ + I. Two solves with M, O(rows) work besides.
    """
    n1 = dims.l1 * dims.p1

    def m_solve(c):  # M⁻¹ c
        return solve_penalized(theta, f, data, w, c[:n1].reshape(dims.l1, dims.p1), c[n1:], dims)

    t = m_solve(r_u)
    X = data["X"]
    r_b = jnp.where(joint, r_b - X.T @ (w * z_lambda_times(theta, t, data, dims)), 0.0)
    s_b = jnp.where(joint, jnp.linalg.solve(f.SXX[: dims.p, : dims.p], r_b), 0.0)
    _, z_t = jax.vjp(lambda v: z_lambda_times(theta, v, data, dims), t)
    return t - m_solve(z_t(w * (X @ s_b))[0]), s_b


def implicit_newton_step(theta, beta, u, b, data, dims, family, joint):
    """One exact Newton step on the penalised deviance from the mode (u, b), its Hessian held fixed.

    ``(u, b) − H⁻¹ G(θ, β; u, b)`` with G = ½ ∇PDEV in u (and in β when
    ``joint``) and H its Jacobian at the mode (observed weights), factored
    once with the gradient switched off. At the mode G = 0, so the step
    changes nothing (beyond PIRLS's tolerance) and its derivative in (θ, β)
    is the implicit-function-theorem one, −H⁻¹ ∂G/∂(θ, β): the same first
    derivatives as a fully differentiated Newton step (the terms from dH
    multiply G = 0), without differentiating a factorization — the reverse
    pass is two more solves with the kept factor and O(rows) work. Second
    derivatives need H's derivative: :func:`mode_with_derivatives` with two
    steps takes full ones. Returns (u, β, 2 × the factor's β block of the
    [X y] Schur complement).
    """
    sg = lax.stop_gradient
    theta0, u = sg(theta), sg(u)
    point = jnp.where(joint, sg(b), beta)  # β̂ of a joint PIRLS, or the given β
    w, z = working_values(linear_predictor(theta0, u, sg(point), data, dims), data, family, True)
    f = jax.tree_util.tree_map(sg, factorize(theta0, {**data, **cross_products(data, w, z, data["offset"], dims)},
                                             dims, True))
    g_u, g_b = half_gradient(theta, u, point, data, dims, family)
    s_u, s_b = hessian_solve(theta0, f, sg(w), g_u, g_b, data, dims, joint)
    return u - s_u, point - s_b, 2.0 * f.SXX[: dims.p, : dims.p]


def pirls_chord(theta, beta, u0, beta0, data, dims, family, joint, cold, maxit: int = 2 * PIRLS_MAXIT):
    """:func:`pirls` for large data: Newton steps on a factor kept while it serves (a chord method).

    The factorization (the Schur complement of the later blocks: seconds on
    1e6 crossed rows) is redone only on the first iteration and after a
    step that shrank the last one less than tenfold or needed halving; the
    steps in between are ``(u, β) − H₀⁻¹ G(u, β)`` with G = ½ ∇PDEV exact
    and H₀ the kept factor's (:func:`hessian_solve`, O(rows)). Near the
    mode the factor's weights hardly change, so the steps contract fast.
    Same stopping rule (and the noise floor: a step below 1e-7 that no
    longer shrinks), step halving and returns as :func:`pirls`; the
    first iteration of a cold start is lme4's (the weighted least-squares
    solution from η = g(initialize(y))).
    """
    theta, beta, u0, beta0 = (lax.stop_gradient(a) for a in (theta, beta, u0, beta0))
    b_start = jnp.where(joint, beta0, beta)
    eta_cold = start_eta(data, family)

    def pdev(u, b):
        return penalized_deviance(theta, u, b, data, dims, family)

    def factor_at(eta):
        return pls_step(theta, eta, beta, data, dims, family, joint, False)

    def cond(s):
        return (s[3] < maxit) & ~s[4]

    def body(s):
        u, b, old, it, _, f, w, refactor, last = s
        first = it == 0
        eta = jnp.where(cold & first, eta_cold, linear_predictor(theta, u, b, data, dims))
        f, w, u_ls, b_ls = lax.cond(first | refactor, factor_at, lambda e: (f, w, u, b), eta)
        g_u, g_b = half_gradient(theta, u, b, data, dims, family)
        s_u, s_b = hessian_solve(theta, f, w, g_u, g_b, data, dims, joint)
        lme4_start = cold & first
        un = jnp.where(lme4_start, u_ls, u - s_u)
        bn = jnp.where(lme4_start, b_ls, jnp.where(joint, b - s_b, beta))
        un, bn, new, count, step, done = _halve_and_test(pdev, u, b, un, bn, old, first & ~cold, last)
        slow = lme4_start | (step > 0.1 * last) | (count > 1)  # the kept factor no longer serves
        return un, bn, new, it + 1, done, f, w, slow, jnp.where(lme4_start, jnp.inf, step)

    f0, w0, _, _ = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(factor_at, eta_cold))
    start = (u0, b_start, jnp.asarray(jnp.inf, u0.dtype), jnp.zeros((), jnp.int32), jnp.zeros((), bool),
             f0, w0, jnp.zeros((), bool), jnp.asarray(jnp.inf, u0.dtype))
    return lax.while_loop(cond, body, start)[:5]


def mode_with_derivatives(theta, beta, u0, beta0, data, dims, family, joint, cold, newton_steps):
    """(u, β, converged, H_ββ): the mode, then ``newton_steps`` differentiable exact Newton steps.

    One step (first derivatives) is :func:`implicit_newton_step`; with more,
    every step is differentiated in full (second derivatives). H_ββ (NaN
    with more steps) is the step's 2·(X'WX − X'WZΛ M⁻¹ Λ'Z'WX): the
    Hessian in β of the penalised deviance with u profiled out, that of the
    Laplace objective but for log|L|'s curvature (a start for quasi-Newton
    updates, :func:`lmmjax.fitting.glmm._quasi_newton`).
    """
    search = pirls_chord if large_rows(data) else pirls
    u, b, _, _, conv = search(theta, beta, u0, beta0, data, dims, family, joint, cold)
    b = jnp.where(joint, b, beta)
    if newton_steps == 1:
        u, b, h_bb = implicit_newton_step(theta, beta, u, b, data, dims, family, joint)
        return u, b, conv, h_bb
    for _ in range(newton_steps):
        eta = linear_predictor(theta, u, b, data, dims)
        u, b = pls_solve(theta, eta, beta, data, dims, family, joint, True)
    return u, b, conv, jnp.full((dims.p, dims.p), jnp.nan, u.dtype)


def laplace_deviance(theta, u, beta, data, dims, family):
    """lme4's Laplace objective at (θ, u, β): −2 Σ loglik + |u|² + log|L|² (= −2 logLik)."""
    eta = linear_predictor(theta, u, beta, data, dims)
    w, z = working_values(eta, data, family, False)
    arrays = {**data, **cross_products(data, w, z, data["offset"], dims)}
    f = factorize(theta, arrays, dims)
    mu = family.linkinv(eta)
    return -2.0 * jnp.sum(family.loglik_rows(data["y"], mu, data["wt"])) + u @ u + f.logdet_L


def gh_rule(n: int):
    """Gauss–Hermite nodes, weights (summing to 1) and log φ(z) for the standard normal (lme4's GHrule)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2.0 * np.pi)
    return z, w, -0.5 * z * z - 0.5 * np.log(2.0 * np.pi)


def agq_deviance(theta, u, beta, data, dims, family, nagq: int):
    """lme4's adaptive Gauss–Hermite objective for one scalar random-effect term.

    ``Σ_j devc0_j + log|L|² − 2 Σ_j log Σ_k w_k exp(−½(devc_jk − devc0_j) + z_k²/2)``
    with ``devc`` the per-level sum of deviance residuals plus u², at
    ``u_j + z_k / L_jj``. As lme4, deviance residuals (not −2 loglik) are
    summed, so for aggregated binomial or Poisson data the value lacks the
    saturated model's constant that the Laplace objective has.
    """
    eta = linear_predictor(theta, u, beta, data, dims)
    w, z = working_values(eta, data, family, False)
    arrays = {**data, **cross_products(data, w, z, data["offset"], dims)}
    f = factorize(theta, arrays, dims)
    y, wt = data["y"], data["wt"]
    codes, Z1 = data["codes1"], data["Z1"][:, 0]
    t1 = t_from_theta(theta, data["T1_index"])[0, 0]  # the single scalar term
    sd = jnp.sqrt(f.M11inv[:, 0, 0])  # 1 / L_jj
    nodes, weights, _ = gh_rule(nagq)

    def devc(shift):  # per level: Σ dev_resids + (u + shift)² with u_j → u_j + shift_j
        e = eta + Z1 * t1 * shift[codes]
        d = family.dev_resids(y, family.linkinv(e), wt)
        return jax.ops.segment_sum(d, codes, num_segments=dims.l1) + (u + shift) ** 2

    devc0 = devc(jnp.zeros_like(u))
    dev_k = jax.vmap(lambda zk: devc(zk * sd))(jnp.asarray(nodes))  # (K, l1)
    logterms = jnp.log(jnp.asarray(weights))[:, None] - 0.5 * (dev_k - devc0[None, :]) \
        + 0.5 * jnp.asarray(nodes)[:, None] ** 2
    log_mult = jax.scipy.special.logsumexp(logterms, axis=0)
    return jnp.sum(devc0) + f.logdet_L - 2.0 * jnp.sum(log_mult)


def glmm_objective(theta, beta, u0, beta0, joint, cold, data, dims, family, nagq: int, newton_steps: int = 1):
    """The fit's objective at θ (``joint``: β from PIRLS, stage 1) or (θ, β), and the mode.

    ``joint`` and ``cold`` are traced booleans, so both stages and the first
    (cold) evaluation share one compiled program. Returns
    (deviance, (u, β, converged, H_ββ)) (see :func:`mode_with_derivatives`).
    """
    u, b, conv, h_bb = mode_with_derivatives(theta, beta, u0, beta0, data, dims, family, joint, cold, newton_steps)
    if nagq > 1:
        dev = agq_deviance(theta, u, b, data, dims, family, nagq)
    else:
        dev = laplace_deviance(theta, u, b, data, dims, family)
    return dev, (lax.stop_gradient(u), lax.stop_gradient(b), conv, lax.stop_gradient(h_bb))


_STATIC = (7, 8, 9, 10)  # dims, family, nagq, newton_steps


def _objective_x(x, u0, beta0, joint, data, dims, family, nagq, newton_steps=2):
    """The objective as a function of x = (θ, β) (for the Hessian; β = x[k:])."""
    k = dims.n_theta
    return glmm_objective(x[:k], x[k:], u0, beta0, joint, False, data, dims, family, nagq, newton_steps)[0]


#: ((deviance, (u, β, converged, H_ββ)), (∂/∂θ, ∂/∂β)): the one program of the search.
value_and_grad_jit = jax.jit(jax.value_and_grad(glmm_objective, argnums=(0, 1), has_aux=True),
                             static_argnums=_STATIC)
#: Exact Hessian in x = (θ, β), two Newton steps from the mode (β̂ from PIRLS when ``joint``).
hessian_jit = jax.jit(jax.hessian(_objective_x), static_argnums=(5, 6, 7, 8))


def fisher_vcov(theta, u, beta, data, dims, family):
    """(R_XᵀR_X)⁻¹ at the mode's working weights: lme4's cov(β̂) without the Hessian (σ = 1)."""
    eta = linear_predictor(theta, u, beta, data, dims)
    w, z = working_values(eta, data, family, False)
    arrays = {**data, **cross_products(data, w, z, data["offset"], dims)}
    return estimates_from_factor(factorize(theta, arrays, dims), dims).vcov_unscaled


fisher_vcov_jit = jax.jit(fisher_vcov, static_argnums=(4, 5))
