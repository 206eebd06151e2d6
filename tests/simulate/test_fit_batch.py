"""The batched refit engine against standalone fits; failures kept as values."""
import numpy as np
import pytest

from lmmjax.simulate import fit_batch
from lmmjax.fitting.record import STOP_NONFINITE

from .conftest import PENICILLIN, SLEEP, quiet_lmer

N = 64  # one compiled chunk shape for every sleepstudy test in this file


def _standalone(formula, data, response, y, reml):
    return quiet_lmer(formula, data.assign(**{response: y}), reml=reml)


@pytest.fixture(scope="module")
def sleep_Y(sleep_fit):
    return sleep_fit.simulate(N, seed=7)


@pytest.mark.parametrize("reml", [True, False])
def test_matches_standalone_fits(sleep_fit, sleep_data, sleep_Y, reml):
    """θ, β, σ of batched refits equal scipy L-BFGS-B fits (lmer) to 1e-6."""
    model = sleep_fit.model.with_reml(reml)
    res = fit_batch(model, sleep_Y, theta0=sleep_fit.theta, batch_size=N)
    assert res["converged"].all()
    for i in range(0, N, 8):
        ref = _standalone(SLEEP, sleep_data, "Reaction", sleep_Y[i], reml)
        # the deviance is never worse than the standalone fit's (up to rounding)
        assert res["deviance"][i] <= ref.deviance + 1e-9 * abs(ref.deviance)
        np.testing.assert_allclose(res["theta"][i], ref.theta, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(res["beta"][i], ref.fixef.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(res["sigma"][i], ref.sigma, rtol=1e-6)
        np.testing.assert_allclose(res["deviance"][i], ref.deviance, rtol=1e-10)
        vc = res["vcov_unscaled"][i] * res["sigma"][i] ** 2
        ref_vc = ref.vcov.to_numpy()
        np.testing.assert_allclose(vc, ref_vc, rtol=1e-5, atol=1e-5 * np.abs(ref_vc).max())


def test_crossed_model(penicillin_fit):
    """Crossed factors (a dense later block). The standalone fits stop at a projected
    gradient up to ~5e-5 against ~1e-11 here, so θ agrees to ~1e-5 (relative 2e-6)
    and the batched deviance is never worse beyond rounding (~1e-12 relative)."""
    data = penicillin_fit.model.frame.data
    Y = penicillin_fit.simulate(16, seed=2)
    res = fit_batch(penicillin_fit.model, Y, theta0=penicillin_fit.theta)
    assert res["converged"].all()
    for i in range(0, 16, 3):
        ref = _standalone(PENICILLIN, data, "diameter", Y[i], True)
        assert res["deviance"][i] <= ref.deviance + 1e-11 * abs(ref.deviance) + 1e-9
        np.testing.assert_allclose(res["theta"][i], ref.theta, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(res["beta"][i], ref.fixef.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(res["sigma"][i], ref.sigma, rtol=1e-6)


def test_failed_replicates_are_flagged_and_isolated(sleep_fit, sleep_Y):
    """A response with a missing value and a constant one (zero residual) fail as
    values; every other replicate is exactly what it is in a clean batch."""
    clean = fit_batch(sleep_fit.model, sleep_Y, theta0=sleep_fit.theta, batch_size=N)
    Y = sleep_Y.copy()
    Y[3, 17] = np.nan
    Y[9] = 250.0
    res = fit_batch(sleep_fit.model, Y, theta0=sleep_fit.theta, batch_size=N)
    assert not res["converged"][3] and not res["converged"][9]
    assert res["status"][3] == STOP_NONFINITE and res["status"][9] == STOP_NONFINITE
    assert res["message"][3] == "non-finite deviance"
    others = np.setdiff1d(np.arange(N), [3, 9])
    assert res["converged"][others].all()
    for key in ("theta", "beta", "sigma", "deviance", "n_iter"):
        np.testing.assert_array_equal(res[key][others], clean[key][others])


def test_iteration_limit_is_reported(sleep_fit, sleep_Y):
    res = fit_batch(sleep_fit.model, sleep_Y[:8], theta0=sleep_fit.theta, batch_size=N, options={"maxiter": 1})
    assert (~res["converged"]).sum() >= 6
    assert set(res["message"][~res["converged"]]) == {"iteration limit"}
    assert np.isfinite(res["theta"]).all()


def test_theta0_and_shapes(sleep_fit, sleep_Y):
    start = np.tile(sleep_fit.theta, (8, 1))
    a = fit_batch(sleep_fit.model, sleep_Y[:8], theta0=start, batch_size=N)
    b = fit_batch(sleep_fit.model, sleep_Y[:8], theta0=sleep_fit.theta, batch_size=N)
    np.testing.assert_array_equal(a["theta"], b["theta"])
    with pytest.raises(ValueError):
        fit_batch(sleep_fit.model, sleep_Y[:, :10])
    with pytest.raises(ValueError):
        fit_batch(sleep_fit.model, sleep_Y[:8], theta0=np.ones(2))


def test_quasi_newton_mode(sleep_fit, sleep_data, sleep_Y):
    """The one-gradient-per-iteration mode (default for large dense blocks) reaches
    the same optima."""
    res = fit_batch(sleep_fit.model, sleep_Y, theta0=sleep_fit.theta, batch_size=N,
                    options={"derivatives": "quasi-newton"})
    newton = fit_batch(sleep_fit.model, sleep_Y, theta0=sleep_fit.theta, batch_size=N)
    assert res["converged"].all()
    np.testing.assert_allclose(res["deviance"], newton["deviance"], rtol=1e-11)
    np.testing.assert_allclose(res["theta"], newton["theta"], rtol=1e-5, atol=2e-6)
    with pytest.raises(ValueError):
        fit_batch(sleep_fit.model, sleep_Y[:2], options={"derivatives": "values"})


def test_batch_returns_the_single_fit_record(sleep_fit, sleep_Y):
    """A batch carries the same OptSummary record as a single fit, with arrays."""
    from lmmjax.fitting.record import OptSummary

    res = fit_batch(sleep_fit.model, sleep_Y[:8], theta0=sleep_fit.theta, batch_size=N)
    opt = res["optsummary"]
    assert isinstance(opt, OptSummary) and isinstance(sleep_fit.optsummary, OptSummary)
    np.testing.assert_array_equal(opt.theta, res["theta"])
    np.testing.assert_array_equal(opt.success, res["converged"])
    assert opt.status.shape == (8,) and sleep_fit.optsummary.status == 0
