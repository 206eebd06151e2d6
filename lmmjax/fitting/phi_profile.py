"""The profile of the deviance over a grid of φ (AR(1)/CAR(1) residuals): where a fresh fit starts.

The likelihood in φ can have two optima (BodyWeight with ``(Time | Rat)``:
φ = 0.53, the optimum nlme reaches, and φ = 0.989, 1.84 log-likelihood
units lower), and which one a single L-BFGS-B search reaches turns on
rounding. The profile — the deviance minimised over the other parameters
with φ held at each grid value (:data:`AR1_PHI_GRID`)
— does not depend on the search path when each inner search reaches its
minimum, so the full search starts from its best point. Two ways to
compute it, chosen by the cost of one evaluation (:func:`use_batched`):

- :func:`profile_batched`, for models whose evaluation is cheap (its time is
  Python and dispatch): all grid points at once, in one compiled, vmapped
  run of the bound-constrained trust-region Newton method
  (:func:`lmmjax.fitting.newton.minimize_theta`). Its column reflections and
  saddle checks keep the inner searches off the false minima that the bound
  on a diagonal of T makes (L-BFGS-B inner searches on BodyWeight stopped
  there, with the slope's diagonal at 0, at 6 of 11 grid points, up to 39
  units of deviance above the profile; the old grid chose its start by
  luck). BodyWeight: 8 ms warm for the grid, against ~85 ms for 11
  L-BFGS-B searches; compiled once per model structure (a few seconds of
  a first call, kept on disk by :func:`lmmjax.program_cache.cached_jit`).
- :func:`profile_sequential`, for large models (the time is arithmetic and
  eleven lanes cost eleven times one) and row-whitening engines: L-BFGS-B
  per grid point, in a continuation from the full search's optimum
  outwards, each point started from its neighbour's optimum. A large model
  profiles a coarser grid (:data:`AR1_PHI_GRID_LARGE`): on 10⁶ rows an
  evaluation costs ~10 ms and each point ~5 of them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..objective.deviance import profiled_deviance
from ..objective.padding import pad_theta
from ..objective.residual import natural_params, unconstrained_value
from ..program_cache import cached_jit
from ..structure.residual import LagProducts
from .bounds import column_mates
from .derivatives import choose_derivatives
from .newton import NewtonOptions, minimize_theta

jax.config.update("jax_enable_x64", True)

#: φ values of the grid a fresh fit with AR(1)/CAR(1) residuals profiles before its full search
#: (dense towards 1, where a second optimum was seen)
AR1_PHI_GRID = (-0.6, -0.3, 0.0, 0.2, 0.4, 0.55, 0.7, 0.8, 0.9, 0.95, 0.98)
CAR1_PHI_GRID = (0.05, 0.2, 0.4, 0.55, 0.7, 0.8, 0.9, 0.95, 0.98)

#: the grids of large models (more numbers in their arrays than :data:`BATCHED_MAX_SIZE`), where
#: every evaluation is arithmetic over all groups: every other point, and the ends
AR1_PHI_GRID_LARGE = (-0.6, 0.0, 0.4, 0.7, 0.9, 0.98)
CAR1_PHI_GRID_LARGE = (0.05, 0.4, 0.7, 0.9, 0.98)

#: models with at most this many numbers in their arrays profile the full grid (in one batched
#: run where their engine allows, :func:`use_batched`)
BATCHED_MAX_SIZE = 50_000

#: the inner searches only rank grid points: a looser stop than a fit's
GRID_NEWTON = NewtonOptions(stop_gtol=1e-8, maxiter=60)


def array_size(model) -> int:
    """How many numbers the model's fit arrays hold (what one evaluation reads)."""
    return sum(int(np.size(a)) for a in model.fit_arrays.values())


def phi_grid(model) -> tuple:
    """The φ values to profile for the model's AR(1)/CAR(1) residuals (coarser for a large model);
    empty without."""
    rd = model.dims.residual
    if rd is None or rd.correlation is None:
        return ()
    if array_size(model) > BATCHED_MAX_SIZE:
        return AR1_PHI_GRID_LARGE if rd.correlation == "ar1" else CAR1_PHI_GRID_LARGE
    return AR1_PHI_GRID if rd.correlation == "ar1" else CAR1_PHI_GRID


def phi_mask(model) -> np.ndarray:
    """True at φ's position in θ (AR(1)/CAR(1) residuals; all False without)."""
    held = np.zeros(model.layout.size, dtype=bool)
    rd = model.dims.residual
    if rd is not None and rd.correlation is not None:
        held[rd.start] = True
    return held


def with_phi(theta, model, phi) -> np.ndarray:
    """A copy of ``theta`` with φ (on its unconstrained scale) set to ``phi``."""
    rd = model.dims.residual
    out = np.array(theta, float)
    out[rd.start] = unconstrained_value(phi, rd.kinds[0])
    return out


def use_batched(model) -> bool:
    """Whether the grid is profiled in one batched run: cheap evaluations (combined lag sets,
    :class:`~lmmjax.structure.residual.LagProducts`, of a small model) with exact-gradient
    Hessians. Row whitening (VarIdent, CAR(1) with many distinct steps) scatters every row at
    every evaluation, which vmapped costs more than eleven sequential searches (BodyWeight
    with VarIdent: 0.3 s against 0.1 s)."""
    return (isinstance(model.dims.residual.engine, LagProducts) and array_size(model) <= BATCHED_MAX_SIZE
            and choose_derivatives(model.fit_dims) == "gradient")


def _grid_searches(free0, full0, psi, free_idx, phi_pos, lower, mates, arrays, dims, opts):
    """Newton searches over the free entries of θ, one per grid ψ (vmapped over ``free0``, ``psi``)."""
    def one(start, psi_i):
        def objective(th):
            return profiled_deviance(full0.at[free_idx].set(th).at[phi_pos].set(psi_i), arrays, dims)
        return minimize_theta(start, objective, lower, opts, mates=mates)
    return jax.vmap(one)(free0, psi)


_grid_searches_jit = cached_jit(_grid_searches, static_argnums=(8, 9))


def profile_batched(arrays, model, theta0) -> list:
    """(θ, deviance) at each grid φ, all inner searches from ``theta0`` in one compiled run.

    ``arrays``: the model's fit arrays (on the device).

    Examples
    --------
    >>> points = profile_batched(model.fit_arrays, model, choose_start(model))  # doctest: +SKIP
    """
    grid = phi_grid(model)
    held = phi_mask(model)
    free, pos = np.nonzero(~held)[0], int(np.nonzero(held)[0][0])
    layout = model.layout
    theta0 = np.asarray(theta0, float)
    psi = np.array([with_phi(theta0, model, phi)[pos] for phi in grid])
    res = _grid_searches_jit(np.tile(theta0[free], (len(grid), 1)), pad_theta(theta0, model.fit_dims), psi,
                             free, pos, np.asarray(layout.lower, float)[free],
                             column_mates(layout)[np.ix_(free, free)], arrays, model.fit_dims, GRID_NEWTON)
    thetas, devs = np.asarray(res["theta"]), np.asarray(res["deviance"])
    out = []
    for i in range(len(grid)):
        theta = theta0.copy()
        theta[free], theta[pos] = thetas[i], psi[i]
        dev = float(devs[i])
        out.append((theta, dev if np.isfinite(dev) else np.inf))
    return out


def continuation_order(grid, centre) -> list:
    """(grid index, index whose result it starts from or None): the grid point nearest
    ``centre`` first, then outwards up and down the (sorted) grid, each point after its
    inner neighbour."""
    grid = np.asarray(grid, float)
    i0 = int(np.argmin(np.abs(grid - centre)))
    return ([(i0, None)] + [(i, i - 1) for i in range(i0 + 1, len(grid))]
            + [(i, i + 1) for i in range(i0 - 1, -1, -1)])


def profile_sequential(minimize_at, model, theta, theta0, small=1e-2) -> list:
    """(θ, deviance) at each grid φ by a continuation of single searches.

    The grid point nearest θ's φ starts from ``theta`` (a full search's
    optimum), each further point from its inner neighbour's optimum; where
    that has a diagonal of T below ``small`` (maybe a false minimum on the
    bound, which a gradient search does not leave) the T entries restart
    from ``theta0``. ``minimize_at(start)`` minimises with φ held at its
    value in ``start`` and returns (θ, deviance).
    """
    grid = phi_grid(model)
    rd, layout = model.dims.residual, model.layout
    is_t = np.arange(layout.size) < rd.start
    out = [None] * len(grid)
    phi = float(natural_params(theta, rd)[0])
    for i, prev in continuation_order(grid, phi):
        start = np.array(theta if prev is None else out[prev][0], float)
        if np.any(layout.diagonal[:rd.start] & (np.abs(start[:rd.start]) < small)):
            start[is_t] = np.asarray(theta0, float)[is_t]
        out[i] = minimize_at(with_phi(start, model, grid[i]))
    return out
