"""Minimise the profiled deviance over θ with exact gradients (one fit).

scipy's L-BFGS-B takes the JAX value and gradient and the bounds (diagonal
entries of each T ≥ 0), so variance estimates of exactly zero are reached.
The boundary logic (saddle probes, mirrored and interior restarts, snapping,
the projected-gradient convergence check) is shared with the batched Newton
method (:mod:`lmmjax.fitting.bounds`).
"""
from __future__ import annotations

import time

import jax
import numpy as np
import scipy.optimize as so

from ..objective.deviance import deviance_jit, profiled_deviance, value_and_grad_jit
from ..objective.padding import pad_theta
from ..blas_threads import single_threaded_scipy_blas
from .bounds import (boundary_restarts, boundary_saddle_escape, projected_gradient, snap_deviance,
                     start_theta, SNAP_TOL)
from .record import STOP_GRADIENT, STOP_LINESEARCH, STOP_MAXITER, STOP_NONFINITE, OptSummary


#: Exact Hessian of the deviance in θ (forward over reverse), compiled only when a fit needs polishing.
hessian_jit = jax.jit(jax.jacfwd(jax.grad(profiled_deviance)), static_argnums=2)


def newton_polish(theta, arrays, dims, lower, gtol=1e-6, max_steps=8):
    """Newton steps on the exact Hessian of the profiled deviance (see :func:`polish`).

    For fits where L-BFGS-B stopped with its line search stalled
    ("ABNORMAL_TERMINATION_IN_LNSRCH") or otherwise short of the gradient
    test, often at a point as good as lme4's. Returns (θ, deviance, gradient).
    """
    k = len(lower)  # θ padded to a shape bucket for each call (objective.padding), results cut back

    def value_and_grad(th):
        val, grad = value_and_grad_jit(pad_theta(th, dims), arrays, dims)
        return float(val), np.asarray(grad, float)[:k]

    def hessian(th):
        return np.asarray(hessian_jit(pad_theta(th, dims), arrays, dims))[:k, :k]

    return polish(theta, value_and_grad, hessian, lambda th: float(deviance_jit(pad_theta(th, dims), arrays, dims)),
                  lower, gtol, max_steps)


def free_coordinates(x, g, lower):
    """The coordinates not held at their bound by the gradient (numpy)."""
    return ~((x <= lower) & (g > 0))


def newton_direction(g, H, free):
    """The step ``−|H|⁻¹ g`` on the ``free`` coordinates (0 elsewhere), or None if H is not finite there.

    ``|H|``: the Hessian's eigenvalues in absolute value, floored at 1e-8 of
    the largest, so that the step descends wherever H is indefinite.
    """
    step = np.zeros_like(g)
    Hf = np.asarray(H, float)[np.ix_(free, free)]
    if not np.all(np.isfinite(Hf)):
        return None
    if not np.any(free):
        return step
    lam, V = np.linalg.eigh(0.5 * (Hf + Hf.T))
    lam = np.maximum(np.abs(lam), 1e-8 * max(np.abs(lam).max(), 1e-300))
    step[free] = -(V / lam) @ (V.T @ g[free])
    return step


def polish(x, value_and_grad, hessian, value, lower, gtol=1e-6, max_steps=8):
    """Newton steps on an exact Hessian until the projected gradient passes ``gtol``.

    Free coordinates are those not held at a bound by the gradient; the
    Hessian's eigenvalues are taken in absolute value (floored) so that every
    step descends; steps are halved until the objective falls, and clipped to
    the bounds (``lower``; −inf for a free parameter). ``value_and_grad``,
    ``hessian`` and ``value`` are callables of x returning numpy/float
    values. Returns (x, value, gradient).
    """
    x = np.asarray(x, float)
    dev, g = value_and_grad(x)
    for _ in range(max_steps):
        pg = np.asarray(projected_gradient(x, g, lower))
        if not np.isfinite(dev) or np.max(np.abs(pg), initial=0.0) <= gtol * max(1.0, abs(dev)):
            break
        step = newton_direction(g, hessian(x), free_coordinates(x, g, lower))
        if step is None:
            break
        for _ in range(30):
            trial = np.maximum(x + step, lower)
            val = value(trial)
            if np.isfinite(val) and val <= dev:
                break
            step = 0.5 * step
        else:
            break
        x = trial
        dev, g = value_and_grad(x)
    return x, dev, g


def _status(res, ok: bool, dev: float) -> int:
    if not np.isfinite(dev):
        return STOP_NONFINITE
    if ok:
        return STOP_GRADIENT
    return STOP_MAXITER if res.status == 1 else STOP_LINESEARCH


def _scipy_objective(arrays, dims, k: int, evals: list, on_evaluation=None):
    """θ (true size) → (deviance, gradient) for scipy, θ padded to ``dims``; counts evaluations in ``evals``
    and passes each deviance to ``on_evaluation`` (e.g. a progress bar's reporter) when given."""
    def fun(th):
        evals[0] += 1
        val, grad = value_and_grad_jit(pad_theta(th, dims), arrays, dims)
        val, grad = float(val), np.asarray(grad, dtype=float)[:k]
        fun.last = (np.array(th, dtype=float), val, grad)
        if on_evaluation is not None:
            on_evaluation(val)
        if not np.isfinite(val):
            return 1e300, np.zeros_like(th)
        return val, grad
    fun.last = None  # (θ, deviance, gradient) of the latest evaluation: the optimum's, when L-BFGS-B ends there
    return fun


#: relative decrease at which a profile step's L-BFGS-B stops: its values only rank grid points
HELD_FTOL = 1e-8


def minimize_held(arrays, dims, layout, theta0, held, on_evaluation=None) -> tuple:
    """L-BFGS-B over θ with the entries where ``held`` is True kept at their ``theta0`` values.

    A quick profile step for choosing a start (no restarts, snapping or
    polishing); returns (θ, deviance). ``on_evaluation``: as :func:`minimize_deviance`'s.

    Examples
    --------
    >>> theta, dev = minimize_held(model.fit_arrays, model.fit_dims, model.layout, start, held)  # doctest: +SKIP
    """
    theta0 = np.asarray(theta0, float)
    fun = _scipy_objective(jax.device_put(arrays), dims, len(theta0), [0], on_evaluation)
    bounds = [(v, v) if h else b for v, h, b in zip(theta0, held, layout.bounds)]
    with single_threaded_scipy_blas():
        res = so.minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                          options=dict(maxiter=1000, ftol=HELD_FTOL, gtol=1e-7, maxcor=20))
    return np.asarray(res.x, float), float(res.fun)


def minimize_deviance(arrays, dims, layout, theta0=None, gtol=1e-6, snap_tol=SNAP_TOL,
                      on_evaluation=None) -> OptSummary:
    """Fit θ.

    Parameters
    ----------
    arrays, dims : the model's arrays and Dims, maybe padded to a shape bucket
        (:attr:`lmmjax.model.Model.fit_arrays`, :attr:`~lmmjax.model.Model.fit_dims`):
        θ is padded for each evaluation (:func:`~lmmjax.objective.padding.pad_theta`)
        and the gradient cut back, so θ, the bounds and the record keep the true size
    layout : ThetaLayout
        Bounds, and which entries are diagonals of T (an optimum with a
        diagonal entry of a vector term's T near 0 is re-tried from the
        column's mirror image and from the interior).
    theta0 : ndarray, optional start (default :func:`~lmmjax.fitting.bounds.start_theta`)
    gtol : float
        Convergence requires the max-abs projected gradient below
        ``gtol * max(1, |deviance|)``.
    on_evaluation : callable, optional
        Called with the deviance (a float) after each evaluation of the
        search, e.g. :class:`lmmjax.progress.EvaluationReporter` (the fit's
        progress bar); None (default) costs nothing.

    Returns
    -------
    OptSummary

    Examples
    --------
    >>> opt = minimize_deviance(model.arrays, model.dims, model.layout)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    arrays = jax.device_put(arrays)  # once per fit, not at every evaluation
    lower = np.asarray(layout.lower, float)
    theta0 = start_theta(lower) if theta0 is None else np.asarray(theta0, float)
    evals = [0]
    k = len(lower)
    fun = _scipy_objective(arrays, dims, k, evals, on_evaluation)

    def deviance(th):
        evals[0] += 1
        val = float(deviance_jit(pad_theta(th, dims), arrays, dims))
        if on_evaluation is not None:
            on_evaluation(val)
        return val

    options = dict(maxiter=5000, maxfun=10000, ftol=1e-12, gtol=1e-9, maxcor=20)
    nit = [0]

    def run(start):
        """L-BFGS-B, then restarts from any boundary saddle it stopped at."""
        with single_threaded_scipy_blas():  # its tiny BLAS calls: threads only cost (blas_threads.py)
            res = so.minimize(fun, start, jac=True, method="L-BFGS-B", bounds=layout.bounds, options=options)
            nit[0] += int(res.nit)
            for _ in range(3):
                escape = boundary_saddle_escape(res.x, float(res.fun), layout, deviance)
                if escape is None:
                    break
                res = so.minimize(fun, escape, jac=True, method="L-BFGS-B", bounds=layout.bounds, options=options)
                nit[0] += int(res.nit)
        return res

    res = run(theta0)
    for start in boundary_restarts(np.asarray(res.x, float), layout):
        alt = run(start)
        if alt.fun < res.fun - 1e-10 * max(1.0, abs(res.fun)):
            res = alt
    theta, snapped = np.array(res.x, dtype=float), ()
    if np.any(np.isfinite(lower) & (theta > lower) & (theta < snap_tol)):  # else nothing to snap (no compile)
        # padded θ entries (0, bounded at 0) are never candidates for a snap
        theta, _, snapped = snap_deviance(pad_theta(theta, dims), float(res.fun), pad_theta(lower, dims), arrays,
                                          dims, snap_tol)
        theta, snapped = np.asarray(theta)[:k], tuple(int(i) for i in np.nonzero(np.asarray(snapped)[:k])[0])
    final = 0 if fun.last is not None and np.array_equal(fun.last[0], theta) else 1
    if final:  # else the optimizer's last evaluation was at θ̂ (a large model's evaluation costs seconds)
        val, grad = value_and_grad_jit(pad_theta(theta, dims), arrays, dims)
        dev, grad = float(val), np.asarray(grad)[:k]
    else:
        dev, grad = fun.last[1], fun.last[2]
    pg = float(np.max(np.abs(np.asarray(projected_gradient(theta, grad, lower))), initial=0.0))
    ok = bool(np.isfinite(dev) and pg <= gtol * max(1.0, abs(dev)))
    message = str(res.message)
    if not ok and np.isfinite(dev):  # e.g. L-BFGS-B's line search stalled: judge on the gradient after Newton
        theta, dev, grad = newton_polish(theta, arrays, dims, lower, gtol)
        pg = float(np.max(np.abs(np.asarray(projected_gradient(theta, grad, lower))), initial=0.0))
        ok = bool(np.isfinite(dev) and pg <= gtol * max(1.0, abs(dev)))
        message += "; then Newton steps on the exact Hessian" + (" reached the gradient test" if ok else "")
    return OptSummary(
        theta_start=theta0, theta=theta, deviance=dev, n_evaluations=evals[0] + final + len(lower),
        n_iterations=nit[0], optimizer="L-BFGS-B (scipy) with JAX gradients",
        message=message, projected_gradient=pg, success=ok,
        seconds=time.perf_counter() - t0, snapped=snapped, status=_status(res, ok, dev),
    )
