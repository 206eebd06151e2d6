"""Boundary logic shared by the single-fit optimizer and the batched Newton method.

The diagonal entries of each relative covariance factor T are bounded below
by 0 (:attr:`lmmjax.structure.blocks.ThetaLayout.lower`); zero variances are
common optima. Both optimizers:

- judge convergence on the projected gradient (:func:`projected_gradient`);
- set diagonal entries within ``snap_tol`` of 0 to 0 when the deviance does
  not rise (:func:`snap_to_bounds`, pure JAX, used inside the batched loop and
  jitted for single fits);
- know the column symmetry of T (:func:`column_mates`): the deviance depends
  on T only through T Tᵀ, so negating a whole column changes nothing, which
  the bound θ_d ≥ 0 turns into false boundary minima. The single fit
  restarts from the mirrored column and from the interior
  (:func:`boundary_restarts`); the batched Newton reflects inside its loop.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..objective.deviance import profiled_deviance
from ..program_cache import cached_jit

jax.config.update("jax_enable_x64", True)

SNAP_TOL = 1e-4  # diagonal θ below this are tried at 0 (lme4's isSingular tolerance)


def start_theta(lower: np.ndarray) -> np.ndarray:
    """lme4's start: 1 on the diagonals of T, 0 off them."""
    return np.where(np.isfinite(lower), 1.0, 0.0)


def projected_gradient(theta, g, lower):
    """Gradient without the components that push against an active bound (numpy or JAX).

    numpy inputs stay in numpy: an eager ``jnp.where`` would be one more
    small program to compile (or load) per θ size in a fresh process.
    """
    where = np.where if all(isinstance(a, np.ndarray) for a in (theta, g, lower)) else jnp.where
    return where((theta <= lower) & (g > 0), 0.0, g)


def snap_candidates(theta, lower, snap_tol=SNAP_TOL):
    """Bounded entries of θ strictly between their bound and ``snap_tol`` (tried at the bound)."""
    bounded = jnp.isfinite(lower)
    return bounded & (theta > jnp.where(bounded, lower, 0.0)) & (theta < snap_tol)


def snap_accepts(ft, f):
    """A snapped point is kept when its objective ``ft`` is finite and not above ``f`` (beyond 1e-10)."""
    return jnp.isfinite(ft) & (ft <= f + 1e-10 * jnp.maximum(1.0, jnp.abs(f)))


def snap_to_bounds(objective, theta, f, lower, snap_tol=SNAP_TOL):
    """Set small bounded entries of θ to their bound, one at a time, when the
    objective does not rise. Pure JAX; returns (θ, f, snapped mask).

    Unbounded entries (a GLMM's fixed effects) are skipped without
    evaluating the objective (``lax.cond`` on the bound, which vmap keeps
    a branch when ``lower`` is shared by the replicates)."""
    bounded = jnp.isfinite(lower)
    lo = jnp.where(bounded, lower, 0.0)
    idx = jnp.arange(theta.shape[0])

    def one(i, carry):
        theta, f, snapped = carry
        candidate = snap_candidates(theta, lower, snap_tol)[i]
        trial = jnp.where(idx == i, lo, theta)
        ft = lax.cond(bounded[i], lambda t: jnp.asarray(objective(t), f.dtype),
                      lambda t: jnp.asarray(jnp.inf, f.dtype), trial)
        accept = candidate & snap_accepts(ft, f)
        return (jnp.where(accept, trial, theta), jnp.where(accept, jnp.minimum(f, ft), f),
                snapped | (accept & (idx == i)))

    return lax.fori_loop(0, theta.shape[0], one, (theta, f, jnp.zeros(theta.shape, bool)))


@partial(cached_jit, static_argnums=(4,))
def snap_deviance(theta, f, lower, arrays, dims, snap_tol=SNAP_TOL):
    """:func:`snap_to_bounds` on the profiled deviance of one model (jitted)."""
    return snap_to_bounds(lambda th: profiled_deviance(th, arrays, dims), theta, f, lower, snap_tol)


def column_mates(layout):
    """(k, k) bool: ``mates[d, i]`` when θ_i lies below the diagonal entry θ_d in
    the same column of the same term's T."""
    k = layout.size
    mates = np.zeros((k, k), dtype=bool)
    for d in np.nonzero(layout.diagonal)[0]:
        same = (layout.term_of == layout.term_of[d]) & (layout.col == layout.col[d]) & (layout.row > layout.row[d])
        mates[d, same] = True
    return mates


def boundary_restarts(theta, layout, small=1e-2, interior=0.5):
    """Restarts for an optimum where a diagonal entry of a vector term's T is near 0.

    Such a fit (a correlation of ±1 or a zero variance in a term with
    several columns) is often a false minimum created by the bound θ_d ≥ 0:
    the mirror image of the column (its entries below the diagonal negated)
    is the same model seen from the other side of the bound; and a start
    with that term's diagonal moved into the interior (``interior``,
    off-diagonals 0) lets the search reach a basin the first path missed.
    Sleepstudy-like replicates were seen to stop 6.5 units of REML
    criterion above the optimum without this.
    """
    mates = column_mates(layout)
    diag = layout.diagonal
    out = []
    for d in np.nonzero(diag)[0]:
        term = layout.term_of == layout.term_of[d]
        if abs(theta[d]) >= small or term.sum() < 2:
            continue
        if np.any(theta[mates[d]] != 0):
            mirrored = theta.copy()
            mirrored[mates[d]] = -mirrored[mates[d]]
            out.append(mirrored)
        inside = theta.copy()
        inside[term & ~diag] = 0.0
        inside[term & diag] = np.maximum(inside[term & diag], interior)
        out.append(inside)
    return out


def probe_steps(theta, i, layout, rel=(1e-3, 1e-2, 1e-1, 1.0, 10.0), absolute=(1e-2, 1e-1)) -> np.ndarray:
    """Step sizes of the 1-D search into the interior from the bounded θ_i.

    Scaled to the parameter: multiples of the size of the other entries in
    the same row of the term's T (the row that θ_i completes), so that an
    optimum at θ_i = 0.002 beside an off-diagonal entry of 0.0017 is not
    overshot by fixed steps of 0.01 and 0.1 (sleepstudy with Days × 100);
    the fixed steps are kept for well-scaled terms.
    """
    same_row = (layout.term_of == layout.term_of[i]) & (layout.row == layout.row[i]) & (np.arange(len(theta)) != i)
    scale = float(np.max(np.abs(theta[same_row]), initial=0.0))
    scaled = [scale * r for r in rel] if scale > 0 else []
    return np.unique(np.array([s for s in list(absolute) + scaled if s > 0], dtype=float))


def boundary_saddle_escape(theta, dev, layout, deviance, steps=None):
    """A better point next to a diagonal θ that sits on its bound, or None.

    The deviance depends on the diagonal entries of T through their squares
    in some directions, so its gradient there is exactly 0 at the bound:
    a gradient method can stop at such a saddle, and a boundary optimum is
    only declared after a 1-D search along each interior direction at step
    sizes scaled to the parameter (:func:`probe_steps`) finds no descent.
    ``deviance`` is θ → value; ``steps`` fixes the step sizes (tests).
    """
    theta = np.asarray(theta, dtype=float)
    lower = layout.lower
    best, best_dev = None, dev - 1e-10 * max(1.0, abs(dev))
    for i in np.nonzero(layout.diagonal & (theta <= lower))[0]:
        for step in (probe_steps(theta, i, layout) if steps is None else steps):
            trial = theta.copy()
            trial[i] = lower[i] + step
            value = deviance(trial)
            if value < best_dev:
                best, best_dev = trial, value
    return best
