"""Fit a GLMM: the outer search over θ (stage 1) and (θ, β) (stage 2) with exact gradients.

As lme4's ``glmer``: stage 1 optimises θ with β updated inside PIRLS
(nAGQ = 0); stage 2 optimises (θ, β) jointly, u by PIRLS at fixed β, on the
Laplace (nAGQ = 1) or adaptive Gauss–Hermite (nAGQ > 1) deviance. Where
lme4 uses derivative-free searches (bobyqa, Nelder–Mead) and a
finite-difference Hessian, both stages here use exact gradients
(:mod:`lmmjax.objective.glmm`: implicit differentiation through the mode):
stage 1, only a start, is scipy's L-BFGS-B stopped early
(:data:`STAGE1_FTOL`); stage 2 is a projected quasi-Newton method started
from a Hessian by differences of exact gradients (:func:`_quasi_newton`,
with Newton steps and L-BFGS-B as fallbacks), with the boundary logic of
:mod:`lmmjax.fitting.bounds` (bounds θ_diag ≥ 0, saddle probes at the bound,
snapping tiny variances to 0). nAGQ = 0 is stage 1 run to convergence.

Each evaluation starts PIRLS from the previous evaluation's mode (the
objective does not depend on the start, PIRLS converging to 1e-10); a
repeat of the last point is not evaluated again.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import jax
import numpy as np
import scipy.optimize as so

from ..objective.glmm import fisher_vcov_jit, hessian_jit, large_rows, value_and_grad_jit
from ..blas_threads import single_threaded_scipy_blas
from .bounds import SNAP_TOL, boundary_saddle_escape, projected_gradient, start_theta
from .newton import bfgs_update
from .optimize import free_coordinates, newton_direction, polish
from .record import STOP_GRADIENT, STOP_LINESEARCH, STOP_NONFINITE, OptSummary

OPTIONS = dict(maxiter=5000, maxfun=10000, ftol=1e-13, gtol=1e-9, maxcor=20)
#: The Newton polish aims for a projected gradient below this × max(1, |objective|) (convergence
#: itself is judged at ``gtol``): on VerbAgg (objective 8151) L-BFGS-B stopped at 3e-4, which
#: passes gtol = 1e-6 but left the intercept 4.5e-4 (relative) from lme4's tight optimum.
POLISH_GTOL = 1e-10
#: Stage 1 (θ, β in PIRLS) before stage 2 only gives its start: L-BFGS-B stops at this ftol
#: (relative decrease per iteration). From 1e-8 to 1e-4 stage 1 took 15 -> 12 evaluations on
#: VerbAgg, 16 -> 9 on grouseticks, and stage 2 (quasi-Newton) 0 and 2 more.
STAGE1_FTOL = 1e-4
QN_MAXITER = 100
#: Relative step of the forward differences of exact gradients behind the standard errors, and the
#: largest relative gap allowed between the standard errors of the two triangles of that matrix
#: (:func:`checked_forward_hessian`; beyond it central differences are taken).
VCOV_STEP = 1e-6
VCOV_CHECK = 1e-5
#: Relative changes of the objective below this are rounding (its sums run over thousands of rows).
QN_NOISE = 1e-12


def glmm_data(model, y=None) -> dict:
    """Padded row arrays of the GLMM objective for a :class:`~lmmjax.model.Model`.

    The pattern's rows, the structure's index arrays, and ``y`` (the
    response; binomial: the proportion), ``wt`` (prior weights; binomial:
    the trials) and ``offset``, padded with zeros. ``y`` replaces the
    model's response (one value per model-frame row): a refit with a new
    response is ``minimize_glmm(glmm_data(model, y_new), ...)``.
    """
    pat = model.pattern
    y = model.y if y is None else np.asarray(y, float)
    return {**pat.arrays, **model.structure.index, "y": pat.pad(y), "wt": pat.pad(model.weights),
            "offset": pat.pad(model.offset)}


def large_data(data) -> bool:
    """True when the fit takes the large-data route (:func:`lmmjax.objective.glmm.large_rows`).

    Each evaluation costs seconds there (1e6 Bernoulli rows, 20,000 × 2,000
    crossed): PIRLS runs as a chord method (:func:`lmmjax.objective.glmm.pirls_chord`)
    and vcov's Hessian comes from forward differences of exact gradients
    (k + p + 1 evaluations instead of 2(k + p), :func:`glmm_vcov`).
    """
    return large_rows(data)


class GlmmOptimum(NamedTuple):
    """The optimum of a GLMM fit.

    Attributes
    ----------
    opt : OptSummary (θ; the deviance is the objective, −2·logLik for Laplace)
    beta : (p,) fixed effects
    u : (q,) spherical conditional modes (flat: block 1 level-major, then later blocks)
    pirls_converged : PIRLS converged at the optimum
    """

    opt: OptSummary
    beta: np.ndarray
    u: np.ndarray
    pirls_converged: bool


class _Objective:
    """The objective of one stage as numpy callables of y, keeping the last mode for warm starts.

    Every call goes through one compiled program (value and gradient);
    ``joint`` selects stage 1 (y = θ, β from PIRLS) or stage 2. In stage 2 the
    search runs in y = (θ, γ) with β = β₀ + C γ (:meth:`precondition`), so that
    a fixed effect on a large scale (a height in cm) does not stall L-BFGS-B.
    """

    def __init__(self, data, dims, family, joint, nagq, u, beta, on_evaluation=None):
        self.data, self.dims, self.family, self.nagq = data, dims, family, nagq
        self.on_evaluation = on_evaluation  # called with (value, stage name) at each evaluation
        self.joint = np.bool_(joint)
        self.u, self.beta = u, beta
        self.k = dims.n_theta
        self.beta0, self.C = np.zeros(dims.p), np.eye(dims.p)
        self.evals = 0
        self.last = None  # (x, the program's output) of the last evaluation

    def to_x(self, y):
        """(θ, β) of the optimizer's y (θ alone in stage 1)."""
        y = np.asarray(y, float)
        if self.joint:
            return y
        return np.concatenate([y[: self.k], self.beta0 + self.C @ y[self.k:]])

    def to_y(self, x):
        x = np.asarray(x, float)
        if self.joint:
            return x
        return np.concatenate([x[: self.k], np.linalg.solve(self.C, x[self.k:] - self.beta0)])

    def _call(self, y, cold=False):
        """The program's output at y; a repeat of the last point (L-BFGS-B's first call after the
        cold start, the mode at a stage's end) is not evaluated again."""
        x = self.to_x(y)
        if self.last is not None and np.array_equal(self.last[0], x):
            return self.last[1]
        self.evals += 1
        beta = self.beta if self.joint else x[self.k:]
        out = value_and_grad_jit(x[: self.k], beta, self.u, self.beta, self.joint, np.bool_(cold), self.data,
                                 self.dims, self.family, self.nagq, 1)
        self.last = (x, out)
        if self.on_evaluation is not None:
            self.on_evaluation(float(out[0][0]), "stage 1" if self.joint else "stage 2")
        return out

    def value_and_grad(self, y):
        (val, (u, b, conv, _)), (g_theta, g_beta) = self._call(y)
        val = float(val)
        if not np.isfinite(val):
            return np.inf, np.zeros(len(y))
        self.u, self.beta = u, (b if self.joint else self.beta)
        if self.joint:
            return val, np.asarray(g_theta, float)
        return val, np.concatenate([np.asarray(g_theta, float), self.C.T @ np.asarray(g_beta, float)])

    def scipy_fun(self, y):
        val, g = self.value_and_grad(y)
        return (1e300, g) if not np.isfinite(val) else (val, g)

    def value(self, y):
        (val, _), _ = self._call(y)
        return float(val)

    def gradient_differences(self, y, columns, g0=None, rel=1e-4):
        """Columns of the Hessian in y by differences of exact gradients along the coordinates
        ``columns``: central, or forward from ``g0`` (the gradient at y; half the evaluations,
        error O(step): a start for quasi-Newton updates, not for standard errors)."""
        y = np.asarray(y, float)
        D = np.empty((len(y), len(columns)))
        for j, i in enumerate(columns):
            e = np.zeros(len(y))
            e[i] = h = rel * max(1.0, abs(y[i]))
            if g0 is None:
                D[:, j] = (self.value_and_grad(y + e)[1] - self.value_and_grad(y - e)[1]) / (2.0 * h)
            else:
                D[:, j] = (self.value_and_grad(y + e)[1] - g0) / h
        return D

    def hessian(self, y, rel=1e-4, g0=None):
        """Hessian in y by central (or, with ``g0``, forward) differences of the exact gradient, symmetrised."""
        H = self.gradient_differences(y, range(len(y)), g0, rel)
        return 0.5 * (H + H.T)

    def start_hessian(self, y, g):
        """A Hessian at y (gradient g) to start quasi-Newton updates from: forward differences of
        exact gradients; in stage 2 only along θ (k evaluations, not k + p), the β block being
        the program's H_ββ at y (:func:`lmmjax.objective.glmm.mode_with_derivatives`).
        Stage 2 of VerbAgg: 14 -> 8 evaluations, grouseticks 18 -> 14 (same optimum)."""
        y = np.asarray(y, float)
        (_, (_, _, _, h_bb)), _ = self._call(y)  # y was evaluated last: no new evaluation
        h_bb = np.asarray(h_bb, float)
        if self.joint or not np.all(np.isfinite(h_bb)):
            return self.hessian(y, g0=g)
        k = self.k
        D = self.gradient_differences(y, range(k), g0=g)
        H = np.empty((len(y), len(y)))
        H[:, :k] = D
        H[:k, :k] = 0.5 * (D[:k] + D[:k].T)
        H[:k, k:] = D[k:].T
        H[k:, k:] = self.C.T @ h_bb @ self.C
        return H

    def precondition(self, y):
        """Set C so that the β block of the Hessian at y becomes the identity (kept if not PD)."""
        if self.joint:
            return y
        x = self.to_x(y)
        Hbb = self.hessian(y)[self.k:, self.k:]
        try:
            L = np.linalg.cholesky(Hbb)
        except np.linalg.LinAlgError:
            return y
        C = self.C @ np.linalg.inv(L).T
        self.beta0, self.C = x[self.k:].copy(), C
        return self.to_y(x)

    def mode(self, y, cold=False):
        """(u, β, PIRLS converged) at y (the last evaluation's when it was at y)."""
        (_, (u, b, conv, _)), _ = self._call(y, cold)
        return np.asarray(u), np.asarray(b), bool(conv)


@single_threaded_scipy_blas()  # L-BFGS-B's tiny BLAS calls: threads only cost (blas_threads.py)
def _lbfgs(obj: _Objective, x0, bounds, layout, lower_theta, options=OPTIONS):
    """L-BFGS-B, then restarts from any boundary saddle of θ it stopped at."""
    res = so.minimize(obj.scipy_fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    nit = int(res.nit)
    k = len(lower_theta)
    for _ in range(3):
        x = np.asarray(res.x, float)
        escape = boundary_saddle_escape(x[:k], float(res.fun), layout,
                                        lambda th: obj.value(np.concatenate([th, x[k:]])))
        if escape is None:
            break
        res = so.minimize(obj.scipy_fun, np.concatenate([escape, x[k:]]), jac=True, method="L-BFGS-B",
                          bounds=bounds, options=options)
        nit += int(res.nit)
    return res, nit


def _snap(obj: _Objective, x, f, lower):
    """Set θ diagonals below SNAP_TOL to 0 where the objective does not rise."""
    x = np.array(x, float)
    snapped = []
    for i in np.nonzero(np.isfinite(lower) & (x > lower) & (x < SNAP_TOL))[0]:
        trial = x.copy()
        trial[i] = lower[i]
        ft = obj.value(trial)
        if np.isfinite(ft) and ft <= f + 1e-10 * max(1.0, abs(f)):
            x, f = trial, min(f, ft)
            snapped.append(int(i))
    return x, f, tuple(snapped)


def _stage(obj: _Objective, x0, layout, gtol, final=True):
    """One stage: L-BFGS-B, snapping, Newton polish; returns (x, value, gradient, record pieces).

    A stage that only makes the start of the next (``final=False``: stage 1
    before stage 2, as lme4's nAGQ = 0 start) stops at :data:`STAGE1_FTOL` without
    snapping or polishing.
    """
    k = layout.size
    lower = np.concatenate([np.asarray(layout.lower, float), np.full(len(x0) - k, -np.inf)])
    bounds = list(layout.bounds) + [(None, None)] * (len(x0) - k)
    y0 = obj.precondition(obj.to_y(x0))
    res, nit = _lbfgs(obj, y0, bounds, layout, lower[:k], OPTIONS if final else dict(OPTIONS, ftol=STAGE1_FTOL))
    if not final:
        return obj.to_x(res.x), float(res.fun), np.nan, False, nit, str(res.message), ()
    y, f, snapped = _snap(obj, res.x, float(res.fun), lower)
    y, f, g = polish(y, obj.value_and_grad, obj.hessian, obj.value, lower, min(gtol, POLISH_GTOL))
    pg = float(np.max(np.abs(np.asarray(projected_gradient(y, g, lower))), initial=0.0))
    ok = bool(np.isfinite(f) and pg <= gtol * max(1.0, abs(f)))
    return obj.to_x(y), f, pg, ok, nit, str(res.message), snapped


def _max_projected_gradient(y, g, lower) -> float:
    return float(np.max(np.abs(np.asarray(projected_gradient(y, g, lower))), initial=0.0))


def _quasi_newton(obj: _Objective, y, lower, tol, maxiter=QN_MAXITER):
    """Projected quasi-Newton steps from a forward-difference Hessian: (y, f, g, iterations, ok).

    The Hessian starts as forward differences of exact gradients at y
    (n evaluations) and follows Powell-damped BFGS updates; each step is
    :func:`~lmmjax.fitting.optimize.newton_direction` on the coordinates not
    held at a bound, clipped to the bounds, with Armijo backtracking. Near
    the optimum it converges superlinearly where L-BFGS-B from the identity
    crawls (grouseticks: 29 evaluations of stage 2, then a Newton polish).
    ``ok``: the projected gradient reached ``tol · max(1, |f|)``.
    """
    y = np.asarray(y, float)
    f, g = obj.value_and_grad(y)
    if not np.isfinite(f):
        return y, f, g, 0, False
    B = obj.start_hessian(y, g)
    for it in range(maxiter):
        if _max_projected_gradient(y, g, lower) <= tol * max(1.0, abs(f)):
            return y, f, g, it, True
        step = newton_direction(g, B, free_coordinates(y, g, lower))
        if step is None:
            return y, f, g, it, False
        alpha, fscale = 1.0, max(1.0, abs(f))
        for _ in range(40):
            trial = np.maximum(y + alpha * step, lower)
            ft, gt = obj.value_and_grad(trial)
            s = trial - y
            if np.isfinite(ft) and ft <= f + 1e-4 * min(float(g @ s), 0.0):
                break
            # at the noise floor (a decrease below the rounding of f), judge the step on the gradient
            if (np.isfinite(ft) and -(g @ s + 0.5 * s @ B @ s) <= QN_NOISE * fscale
                    and ft <= f + QN_NOISE * fscale
                    and _max_projected_gradient(trial, gt, lower) < _max_projected_gradient(y, g, lower)):
                break
            alpha *= 0.5
        else:  # no decrease along the step (the noise floor, or a wrong Hessian)
            return y, f, g, it, False
        B = bfgs_update(B, trial - y, gt - g)
        y, f, g = trial, ft, gt
    return y, f, g, maxiter, _max_projected_gradient(y, g, lower) <= tol * max(1.0, abs(f))


def _stage_newton(obj: _Objective, x0, layout, gtol, tol, final=True):
    """One stage by :func:`_quasi_newton` (same returns as :func:`_stage`).

    Boundary saddles of θ are probed and escaped as after L-BFGS-B. A final
    stage snaps tiny variances, takes Newton steps on the Hessian if the
    quasi-Newton steps stopped short of ``tol``, and falls back to
    :func:`_stage` (L-BFGS-B) if the gradient test still fails; a start
    stage (``final=False``) returns where it stopped.
    """
    k = layout.size
    lower = np.concatenate([np.asarray(layout.lower, float), np.full(len(x0) - k, -np.inf)])
    y, f, g, nit, _ = _quasi_newton(obj, x0, lower, tol)
    for _ in range(3):
        escape = boundary_saddle_escape(y[:k], f, layout, lambda th, rest=y[k:]: obj.value(np.concatenate([th, rest])))
        if escape is None:
            break
        y, f, g, more, _ = _quasi_newton(obj, np.concatenate([escape, y[k:]]), lower, tol)
        nit += more
    message = "quasi-Newton (BFGS from a finite-difference Hessian of exact gradients)"
    if not final:
        return y, f, np.nan, False, nit, message, ()
    y, f, snapped = _snap(obj, y, f, lower)
    if snapped:
        f, g = obj.value_and_grad(y)
    if np.isfinite(f) and _max_projected_gradient(y, g, lower) > tol * max(1.0, abs(f)):
        y, f, g = polish(y, obj.value_and_grad, obj.hessian, obj.value, lower, tol)
        message += ", then Newton steps"
    pg = _max_projected_gradient(y, g, lower)
    if np.isfinite(f) and pg <= gtol * max(1.0, abs(f)):
        return y, f, pg, True, nit, message, snapped
    x, f, pg, ok, more, message, snapped = _stage(obj, y, layout, gtol)
    return x, f, pg, ok, nit + more, message + " (L-BFGS-B after quasi-Newton stalled)", snapped


def minimize_glmm(data, dims, family, layout, nagq: int = 1, theta0=None, beta0=None,
                  gtol: float = 1e-6, on_evaluation=None) -> GlmmOptimum:
    """Fit θ (and β) of a GLMM.

    Parameters
    ----------
    data : dict of padded row arrays (pattern, index arrays, ``y``, ``wt``, ``offset``)
    dims : Dims of the structure (``reml`` is ignored)
    family : lmmjax.families.Family
    layout : ThetaLayout (bounds of θ)
    nagq : 0 (stage 1 only), 1 (Laplace) or the number of Gauss–Hermite nodes
    theta0, beta0 : optional starts (default: lme4's θ = 1 and β from the first PIRLS)
    gtol : convergence requires the largest projected gradient component below
        ``gtol · max(1, |objective|)``
    on_evaluation : callable, optional
        Called with the objective's value and the stage's name (``"stage 1"``,
        ``"stage 2"``) at each evaluation, e.g.
        :class:`lmmjax.progress.EvaluationReporter`; None (default) costs nothing.

    Examples
    --------
    >>> best = minimize_glmm(data, model.dims, Binomial(), model.layout)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    data = jax.device_put(data)
    theta_start = start_theta(np.asarray(layout.lower, float)) if theta0 is None else np.asarray(theta0, float)
    stage1 = _Objective(data, dims, family, True, 1, np.zeros(dims.l1 * dims.p1 + dims.q2), np.zeros(dims.p),
                        on_evaluation)
    stage1.u, stage1.beta, _ = stage1.mode(theta_start, cold=True)  # lme4's start η = g(initialize(y))
    u, beta = stage1.u, stage1.beta
    if beta0 is not None:
        beta = np.asarray(beta0, float)
    if theta0 is None or nagq == 0:
        x1, f1, pg, ok, nit, msg, snapped = _stage(stage1, theta_start, layout, gtol, final=nagq == 0)
        u, beta, _ = stage1.mode(x1)
    else:
        x1, nit, snapped = theta_start, 0, ()
    evals = stage1.evals
    if nagq == 0:
        theta, x, obj = x1, x1, stage1
        optimizer = "L-BFGS-B (scipy) over θ, β in PIRLS (nAGQ = 0), exact gradients"
    else:
        obj = _Objective(data, dims, family, False, nagq, u, beta, on_evaluation)
        x, f1, pg, ok, nit2, msg, snapped = _stage_newton(obj, np.concatenate([x1, np.asarray(beta)]), layout,
                                                          gtol, min(gtol, POLISH_GTOL))
        nit += nit2
        evals += obj.evals
        theta = x[: layout.size]
        optimizer = ("quasi-Newton over θ then (θ, β): BFGS from a Hessian by differences of exact gradients "
                     "through the mode, Newton steps if it stops short (L-BFGS-B if they fail)")
    u, beta, pirls_ok = obj.mode(obj.to_y(x))
    status = STOP_GRADIENT if ok else (STOP_NONFINITE if not np.isfinite(f1) else STOP_LINESEARCH)
    opt = OptSummary(theta_start=theta_start, theta=np.asarray(theta, float), deviance=float(f1),
                     n_evaluations=evals, n_iterations=nit, optimizer=optimizer, message=msg,
                     projected_gradient=pg, success=ok and pirls_ok, seconds=time.perf_counter() - t0,
                     snapped=snapped, status=status)
    return GlmmOptimum(opt=opt, beta=np.asarray(beta, float), u=np.asarray(u, float), pirls_converged=pirls_ok)


def _se_of_hessian(H, k):
    """Standard errors of β from a Hessian of −2·logLik in (θ, β), or None if it is not invertible."""
    try:
        d = np.diag(2.0 * np.linalg.inv(H)[k:, k:])
    except np.linalg.LinAlgError:
        return None
    return np.sqrt(d) if np.all(np.isfinite(d)) and np.all(d > 0) else None


def checked_forward_hessian(obj: _Objective, x, k):
    """The Hessian at x by forward differences of exact gradients (``len(x) + 1`` evaluations), or by
    central differences (``2·len(x)``) when the forward one fails its check.

    Step ``VCOV_STEP`` (relative): the error is O(step), ~1e-7 to 1e-6 relative in the
    standard errors (3e-7 to 1.2e-6 measured on cbpp, grouseticks, VerbAgg, against central
    differences). The check: the standard errors from the matrix's upper triangle (mirrored)
    and from its lower one differ by at most ``VCOV_CHECK`` (relative) — the two triangles
    carry independent rounding and different truncation, so noisy gradients fail it.
    """
    f0, g0 = obj.value_and_grad(x)
    if np.isfinite(f0):
        D = obj.gradient_differences(x, range(len(x)), g0=g0, rel=VCOV_STEP)
        diag = np.diag(np.diag(D))
        upper, lower = (_se_of_hessian(T + T.T - diag, k) for T in (np.triu(D), np.tril(D)))
        if upper is not None and lower is not None and np.all(np.abs(upper - lower) <= VCOV_CHECK * upper):
            return 0.5 * (D + D.T)
    return obj.hessian(x)


def glmm_vcov(data, dims, family, nagq: int, theta, beta, u, exact: bool = False, large: bool | None = None):
    """cov(β̂) of a GLMM fit, as lme4's ``vcov``: (V, source, H).

    With nAGQ ≥ 1, ``V = 2·[H⁻¹]_ββ`` with H the Hessian of the objective
    (−2·logLik) in (θ, β) — lme4 approximates it by finite differences of the
    deviance. Here H is, by default, forward differences of the exact
    gradient (:func:`checked_forward_hessian`: standard errors within ~1e-6
    relative of central differences, which agree with the exact
    ``jax.hessian`` (``exact=True``) to ~1e-8); it needs no program beyond the
    fit's, where the exact one compiled for 30–40 s and took 8 s per
    evaluation on grouseticks. With ``large`` (default :func:`large_data`)
    forward differences at a relative step of 1e-4, unchecked (each
    gradient costs seconds there): error ~1e-4 relative (1.2e-4 on
    grouseticks' SE), within the 1e-3 asked of standard errors.
    Source "hessian".
    With nAGQ = 0, or where H is not finite or V not positive definite,
    ``V = (R_XᵀR_X)⁻¹`` at the mode's working weights, source "fisher"
    (lme4's ``use.hessian = FALSE``).
    """
    k = dims.n_theta
    H = None
    theta, beta, u = (np.asarray(a, float) for a in (theta, beta, u))
    if nagq > 0:
        x = np.concatenate([theta, beta])
        obj = _Objective(data, dims, family, False, nagq, u, beta)
        if exact:
            H = np.asarray(hessian_jit(x, u, beta, np.bool_(False), data, dims, family, nagq, 2), float)
        elif large_data(data) if large is None else large:
            H = obj.hessian(x, g0=obj.value_and_grad(x)[1])
        else:
            H = checked_forward_hessian(obj, x, k)
        if np.all(np.isfinite(H)):
            try:
                V = 2.0 * np.linalg.inv(H)[k:, k:]
                V = 0.5 * (V + V.T)
                if np.all(np.isfinite(V)) and np.all(np.linalg.eigvalsh(V) > 0):
                    return V, "hessian", H
            except np.linalg.LinAlgError:
                pass
    V = np.asarray(fisher_vcov_jit(theta, u, beta, data, dims, family))
    return V, "fisher", H


def objective_at(model, family, nagq: int = 1):
    """The stage-2 objective (−2·logLik for Laplace) as a function of (θ, β), numpy in and out.

    Each call runs PIRLS from lme4's cold start, so values do not depend on
    earlier calls. For checks against lme4's ``glmer(devFunOnly = TRUE)``.
    """
    data = jax.device_put(glmm_data(model))
    dims = model.dims
    q = dims.l1 * dims.p1 + dims.q2

    def value(par):
        par = np.asarray(par, float)
        k = dims.n_theta
        (val, _), _ = value_and_grad_jit(par[:k], par[k:], np.zeros(q), np.zeros(dims.p), np.bool_(False),
                                         np.bool_(True), data, dims, family, nagq, 1)
        return float(val)

    return value
