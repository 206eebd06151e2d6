"""Batched GLMM refits (fit_glmm_batch) agree with one-at-a-time refits."""
from __future__ import annotations

import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.fitting.glmm_batch import fit_glmm_batch
from lmmjax.glmer import refit_glmm


@pytest.mark.slow  # compiles the vmapped Newton loop (~30 s here)
def test_batch_equals_single_refits():
    fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", lmm.datasets.load("cbpp"))
    rng = np.random.default_rng(0)
    trials = fit.model.weights
    Y = rng.binomial(trials.astype(int), fit.fitted, size=(3, len(trials))) / trials
    Y[2] = fit.model.y  # the data themselves: the fit again
    out = fit_glmm_batch(fit, Y)
    assert out["converged"].all()
    for i in range(3):
        single = refit_glmm(fit, Y[i])
        assert -0.5 * out["deviance"][i] == pytest.approx(single.loglik, abs=1e-6)
        np.testing.assert_allclose(out["beta"][i], single.fixef.to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["theta"][i], single.theta, rtol=1e-5, atol=1e-6)
    assert -0.5 * out["deviance"][2] == pytest.approx(fit.loglik, abs=1e-8)
