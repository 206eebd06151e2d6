"""GLMM simulation and parametric bootstrap (issue 11) against standalone refits and lme4's bootMer."""
import json
import warnings

import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.glmer import refit_glmm
from lmmjax.simulate.glmm import refit_glmm_many, simulate_glmm

from ..reference_data import FIXTURES
from .test_bootstrap import quantile_se

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.glmer(CBPP, lmm.datasets.load("cbpp"), family="binomial")


@pytest.fixture(scope="module")
def bootmer():
    return json.loads((FIXTURES / "glmer" / "bootstrap" / "cbpp_bootmer.json").read_text())


def test_simulated_responses_are_proportions_of_the_trials(cbpp_fit):
    Y = simulate_glmm(cbpp_fit, 400, seed=5)
    n = cbpp_fit.model.weights
    assert Y.shape == (400, 56)
    np.testing.assert_allclose(Y * n, np.round(Y * n), atol=1e-9)
    assert np.all((Y >= 0) & (Y <= 1))
    # with the fitted random effects kept, the mean response is the fitted mean (4 MC standard errors)
    Yu = cbpp_fit.simulate(4000, seed=6, use_u=True)
    mu = cbpp_fit.fitted
    se = np.sqrt(mu * (1 - mu) / n / 4000)
    assert np.all(np.abs(Yu.mean(axis=0) - mu) < 4.5 * se)
    np.testing.assert_array_equal(simulate_glmm(cbpp_fit, 3, seed=5), Y[:3])  # reproducible by seed


@pytest.mark.slow  # compiles the batched GLMM refit (~15-35 s); the tests below reuse it
def test_batched_refits_equal_standalone_fits(cbpp_fit):
    # seed 1, replicates 0 and 11: the default quasi-Newton batch stopped at θ = 0 below the optimum
    Y = simulate_glmm(cbpp_fit, 12, seed=1)
    res = refit_glmm_many(cbpp_fit, Y)
    assert res["converged"].all()
    for i in (0, 1, 11):
        one = refit_glmm(cbpp_fit, Y[i])
        np.testing.assert_allclose(res["theta"][i], one.theta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res["beta"][i], one.estimates.beta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res["deviance"][i], one.deviance, rtol=1e-10)


@pytest.mark.slow
def test_percentile_intervals_agree_with_bootmer(cbpp_fit, bootmer):
    """256 replicates here against bootMer's 1,000: each 2.5%/97.5% quantile within 4 combined
    Monte Carlo standard errors (quantile_se of each sample)."""
    boot = cbpp_fit.bootstrap(256, seed=1)
    assert boot.n_converged == 256
    assert list(boot.replicates.columns[:5]) == ["Intercept", "period[T.2]", "period[T.3]", "period[T.4]",
                                                "sd(Intercept|herd)"]
    R = np.array(bootmer["replicates"], float)
    ours = boot.replicates.iloc[:, :5].to_numpy(float)
    # bootMer's original is lme4's default-control fit (the tight fixture differs by ~4e-4)
    np.testing.assert_allclose(boot.original.to_numpy(float), bootmer["original"], rtol=1e-3, atol=1e-3)
    ci = boot.ci()
    for j, name in enumerate(bootmer["replicate_names"]):
        for p, col in ((0.025, "lower"), (0.975, "upper")):
            q_r, q_o = np.quantile(R[:, j], p), ci.iloc[j][col]
            tol = 4 * np.hypot(quantile_se(R[:, j], p), quantile_se(ours[:, j], p))
            assert abs(q_o - q_r) < tol, (name, p, q_o, q_r, tol)


@pytest.mark.slow
def test_the_bootstrap_of_a_glmm_has_no_sigma(cbpp_fit):
    boot = cbpp_fit.bootstrap(8, seed=2)
    assert "sigma" not in boot.replicates.columns and boot.replicates.shape == (8, 7)
    assert not boot.reml and boot.formula == CBPP
