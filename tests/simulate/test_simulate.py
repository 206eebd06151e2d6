"""fit.simulate: shapes, seeds, moments of the simulated responses, use_u and newparams."""
import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm
from lmmjax.structure.lambda_map import t_matrix
from lmmjax.simulate import SimulationParameters, simulate_model


def test_shape_and_seed(sleep_fit):
    Y = sleep_fit.simulate(5, seed=3)
    assert Y.shape == (5, sleep_fit.nobs)
    np.testing.assert_array_equal(Y, sleep_fit.simulate(5, seed=3))
    assert not np.allclose(Y, sleep_fit.simulate(5, seed=4))
    # replicate i does not depend on how many are drawn or on the chunking
    np.testing.assert_array_equal(sleep_fit.simulate(12, seed=3, batch_size=5)[:5], Y)


def test_moments_match_the_model(sleep_fit):
    """Mean Xβ and covariance σ²(Z T Tᵀ Zᵀ + I); 5 Monte Carlo SDs (4,000 draws)."""
    n = 4000
    Y = sleep_fit.simulate(n, seed=11)
    model = sleep_fit.model
    blk = model.blocks[0]
    T = t_matrix(blk.theta_index, sleep_fit.theta)
    G = sleep_fit.sigma ** 2 * T @ T.T
    Zi = blk.Z
    var = sleep_fit.sigma ** 2 + np.einsum("ia,ab,ib->i", Zi, G, Zi)
    mu = model.X @ sleep_fit.fixef.to_numpy()
    assert np.all(np.abs(Y.mean(0) - mu) < 5 * np.sqrt(var / n))
    rel = Y.var(0, ddof=1) / var - 1
    assert np.all(np.abs(rel) < 5 * np.sqrt(2 / (n - 1)))
    # same subject (rows 0 and 9): covariance z0ᵀ G z9; different subjects: 0
    c_same = np.cov(Y[:, 0], Y[:, 9])[0, 1]
    expected = Zi[0] @ G @ Zi[9]
    sd = np.sqrt(var[0] * var[9])
    assert abs(c_same - expected) < 5 * sd * np.sqrt((1 + (expected / sd) ** 2) / n)
    assert blk.codes[0] != blk.codes[10]
    assert abs(np.corrcoef(Y[:, 0], Y[:, 10])[0, 1]) < 5 / np.sqrt(n)


def test_use_u_keeps_the_fitted_random_effects(sleep_fit):
    n = 2000
    Y = sleep_fit.simulate(n, seed=5, use_u=True)
    s = sleep_fit.sigma
    assert np.all(np.abs(Y.mean(0) - sleep_fit.fitted) < 5 * s / np.sqrt(n))
    assert np.all(np.abs(Y.var(0, ddof=1) / s ** 2 - 1) < 5 * np.sqrt(2 / (n - 1)))


def test_newparams(sleep_fit):
    beta = pd.Series({"Days": 5.0, "Intercept": 200.0})
    Y = sleep_fit.simulate(3, seed=0, newparams=dict(beta=beta, theta=np.zeros(3), sigma=0.0))
    np.testing.assert_allclose(Y, np.broadcast_to(200.0 + 5.0 * sleep_fit.model.X[:, 1], Y.shape))
    Y2 = sleep_fit.simulate(3, seed=0, newparams=dict(sigma=2 * sleep_fit.sigma))
    Y1 = sleep_fit.simulate(3, seed=0)
    mu = sleep_fit.model.X @ sleep_fit.fixef.to_numpy()
    np.testing.assert_allclose(Y2 - mu, 2 * (Y1 - mu), rtol=1e-12, atol=1e-9)


def test_bad_newparams(sleep_fit):
    with pytest.raises(lmm.ModelSpecError):
        sleep_fit.simulate(2, newparams=dict(theta=[1.0]))
    with pytest.raises(lmm.ModelSpecError):
        sleep_fit.simulate(2, newparams=dict(beta=[1.0, 2.0, 3.0]))
    with pytest.raises(lmm.ModelSpecError):
        sleep_fit.simulate(2, newparams=dict(sigma=-1.0))
    with pytest.raises(lmm.ModelSpecError):
        sleep_fit.simulate(2, newparams=dict(rho=1.0))


def test_crossed_design_from_a_model(penicillin_fit):
    """simulate_model draws from a Model without a fit (power simulations): crossed factors."""
    model = penicillin_fit.model
    params = SimulationParameters(beta=np.array([20.0]), theta=np.array([0.0, 2.0]), sigma=1.0)
    Y = simulate_model(model, params, 2000, seed=1)
    # only the second grouping factor varies: observations sharing its level covary by σ²θ² = 4
    names = [b.group for b in model.blocks]
    sample = model.blocks[names.index("sample")]
    same = np.nonzero(sample.codes == sample.codes[0])[0]
    other = np.nonzero(sample.codes != sample.codes[0])[0][0]
    c = np.cov(Y[:, same[0]], Y[:, same[1]])[0, 1]
    assert abs(c - 4.0) < 5 * 5.0 * np.sqrt(2 / 2000)
    assert abs(np.corrcoef(Y[:, same[0]], Y[:, other])[0, 1]) < 5 / np.sqrt(2000)
