"""Draw response vectors from a model structure and assumed parameters.

``y = Xβ + Zb + σε`` with ``b = σ Λθ u`` (u, ε standard normal), so that
cov(b) = σ² Λ Λᵀ as lme4 — drawn by :func:`lmmjax.simulate.draw.simulate_model`,
the same generator as ``fit.simulate``.

Simulation ``i`` draws from ``fold_in(PRNGKey(seed), i)``: its response does
not depend on the batch size or on which other simulations are run, so a
run can be split, resumed or sharded and give the same numbers; and
``lmm.power(fit, nsim=n, seed=s)`` with the fit's own parameters refits
exactly ``fit.simulate(n, seed=s)``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelSpecError
from ..simulate.draw import SimulationParameters, simulate_model


def simulate_responses(model, truth, indices, seed: int = 0) -> np.ndarray:
    """Responses of the simulations ``indices`` (consecutive ints): shape (len(indices), n).

    Parameters
    ----------
    model : Model
    truth : Truth
        β (by the model's fixed-effect names), θ and σ.
    indices : sequence of consecutive int
        Simulation numbers; simulation i always gets the same draw for a seed.
    seed : int

    Examples
    --------
    >>> Y = simulate_responses(model, truth, np.arange(100), seed=1)  # doctest: +SKIP
    """
    idx = np.asarray(indices, dtype=np.int64).ravel()
    if idx.size == 0:
        return np.zeros((0, model.n_rows))
    if np.any(np.diff(idx) != 1):
        raise ModelSpecError("simulate_responses draws consecutive simulation numbers.")
    return simulate_model(model, truth_parameters(model, truth), idx.size, seed=int(seed), start=int(idx[0]),
                          batch_size=idx.size)


def truth_parameters(model, truth) -> SimulationParameters:
    """The assumed β, θ, σ as the simulator's parameters (new random effects per draw)."""
    beta = truth.fixef.reindex(model.frame.fixed_names).to_numpy(dtype=float)
    return SimulationParameters(beta=beta, theta=np.asarray(truth.theta, float), sigma=float(truth.sigma),
                                ranef=None)
