"""Batched GLMM refits (fit_glmm_batch) agree with one-at-a-time refits."""
from __future__ import annotations

import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.fitting import glmm_batch
from lmmjax.fitting.glmm_batch import fit_glmm_batch
from lmmjax.glmer import refit_glmm

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def cbpp_replicates(n: int, seed: int):
    """The cbpp fit and ``n`` binomial responses drawn at its fitted means (proportions)."""
    fit = lmm.glmer(CBPP, lmm.datasets.load("cbpp"))
    trials = fit.model.weights
    Y = np.random.default_rng(seed).binomial(trials.astype(int), fit.fitted, size=(n, len(trials))) / trials
    return fit, Y


@pytest.mark.slow  # compiles the vmapped Newton loop (~30 s here)
def test_batch_equals_single_refits():
    fit, Y = cbpp_replicates(3, 0)
    Y[2] = fit.model.y  # the data themselves: the fit again
    out = fit_glmm_batch(fit, Y)
    assert out["converged"].all()
    for i in range(3):
        single = refit_glmm(fit, Y[i])
        assert -0.5 * out["deviance"][i] == pytest.approx(single.loglik, abs=1e-6)
        np.testing.assert_allclose(out["beta"][i], single.fixef.to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["theta"][i], single.theta, rtol=1e-5, atol=1e-6)
    assert -0.5 * out["deviance"][2] == pytest.approx(fit.loglik, abs=1e-8)


@pytest.mark.slow  # 64 replicates plus single refits of those at the boundary
def test_default_batch_does_not_stop_at_zero_below_the_optimum():
    """The default batched Newton reaches the single fits' optimum on replicates near θ = 0.

    A quasi-Newton default once stopped at θ = 0, flagged converged, with logLik up to 1.9 below
    the single refit on 13 of 256 cbpp replicates."""
    fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", lmm.datasets.load("cbpp"))
    rng = np.random.default_rng(11)
    trials = fit.model.weights
    # half the replicates without herd effects, so that many estimates sit at or near θ = 0
    mu = np.where(np.arange(64)[:, None] < 32, fit.predict(re_form="~0", type="response"), fit.fitted)
    Y = rng.binomial(trials.astype(int), mu) / trials
    out = fit_glmm_batch(fit, Y)
    assert out["converged"].all()
    near_zero = np.flatnonzero(out["theta"][:, 0] < 0.05)
    checked = np.union1d(near_zero, [0, 1])
    assert len(near_zero) >= 5  # replicates at or near the boundary
    for i in checked:
        single = refit_glmm(fit, Y[i])
        assert -0.5 * out["deviance"][i] >= single.loglik - 1e-6, i
        np.testing.assert_allclose(out["theta"][i], single.theta, atol=1e-4)


@pytest.mark.slow  # compiles the chunk program once (~30 s here)
def test_one_compiled_chunk_serves_every_replicate_count():
    """Counts up to 64 share the 64-replicate chunk; the padding copies are dropped, never counted."""
    fit, Y = cbpp_replicates(10, 3)
    first = fit_glmm_batch(fit, Y[:3])
    compiled = glmm_batch._fit_many._cache_size()
    out = fit_glmm_batch(fit, Y)
    assert glmm_batch._fit_many._cache_size() == compiled  # no new program for 10 replicates
    assert all(v.shape[0] == 10 for v in out.values())
    for key in ("theta", "beta", "deviance", "converged", "n_iter"):  # a replicate's fit does not depend on the count
        np.testing.assert_array_equal(out[key][:3], first[key])
