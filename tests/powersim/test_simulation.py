"""Simulated responses and the batched pieces behind the statistics."""
import numpy as np
import pytest

import lmmjax as lmm
from lmmjax.fitting.optimize import minimize_deviance
from lmmjax.powersim import crossed
from lmmjax.objective.crossprod import response_arrays
from lmmjax.powersim.engine import batch_estimates, batch_satterthwaite
from lmmjax.powersim.hypotheses import resolve_hypothesis
from lmmjax.powersim.parameters import Truth, resolve_truth
from lmmjax.powersim.run import design_model
from lmmjax.powersim.responses import simulate_responses
from lmmjax.results.estimates import point_estimates


def test_draws_do_not_depend_on_batching(sleep_fit):
    m = sleep_fit.model
    truth = Truth(sleep_fit.fixef, sleep_fit.theta, sleep_fit.sigma)
    all10 = simulate_responses(m, truth, np.arange(10), seed=3)
    part = simulate_responses(m, truth, np.arange(6, 9), seed=3)
    np.testing.assert_array_equal(all10[6:9], part)
    assert not np.allclose(simulate_responses(m, truth, [0], seed=4)[0], all10[0])


def test_moments_match_the_model():
    """Mean Xβ and covariance Z Σ Zᵀ + σ² I, within Monte Carlo error, on a small crossed design."""
    d = crossed(4, 3)
    d["x"] = np.tile([-1.0, 0.0, 1.0], 4)
    m = design_model("y ~ x + (x | Subject) + (1 | Item)", d, reml=True)
    truth = resolve_truth(m, fixef={"Intercept": 1.0, "x": 2.0},
                          varcorr={"Subject": {"sd": [1.5, 0.8], "cor": -0.4}, "Item": 0.6}, sigma=0.5)
    Y = simulate_responses(m, truth, np.arange(40000), seed=1)
    mean = m.X @ truth.fixef.to_numpy()
    S = np.array([[1.5 ** 2, -0.4 * 1.5 * 0.8], [-0.4 * 1.5 * 0.8, 0.8 ** 2]])
    Zs = np.column_stack([np.ones(12), d["x"].to_numpy()])
    subj, item = d["Subject"].cat.codes.to_numpy(), d["Item"].cat.codes.to_numpy()
    same_s = subj[:, None] == subj[None, :]
    V = same_s * (Zs @ S @ Zs.T) + 0.36 * (item[:, None] == item[None, :]) + 0.25 * np.eye(12)
    np.testing.assert_allclose(Y.mean(0), mean, atol=5 * np.sqrt(np.diag(V).max() / 40000))
    np.testing.assert_allclose(np.cov(Y.T), V, atol=0.06)


def test_batched_arrays_and_estimates_equal_single_fits(sleep_fit):
    m = sleep_fit.model.with_reml(False)
    truth = Truth(sleep_fit.fixef, sleep_fit.theta, sleep_fit.sigma)
    Y = simulate_responses(m, truth, np.arange(3), seed=0)
    thetas = []
    for b in range(3):
        single = m.with_response(Y[b])
        thetas.append(minimize_deviance(single.arrays, m.dims, m.layout).theta)
    est = batch_estimates(m, np.array(thetas), Y)
    for b in range(3):
        pe = point_estimates(m.with_response(Y[b]), thetas[b])
        np.testing.assert_allclose(est["beta"][b], pe.beta, rtol=1e-10)
        np.testing.assert_allclose(est["sigma"][b], pe.sigma, rtol=1e-10)
        np.testing.assert_allclose(est["vcov_unscaled"][b], pe.vcov_unscaled, rtol=1e-9)
        np.testing.assert_allclose(est["deviance"][b], pe.deviance, rtol=1e-12)


def test_crossed_arrays_match_with_response():
    d = crossed(6, 5)
    d["x"] = np.random.default_rng(0).normal(size=len(d))
    m = design_model("y ~ x + (1 | Subject) + (1 | Item)", d, reml=True)
    Y = np.random.default_rng(1).normal(size=(2, len(d)))
    inputs = m.response_inputs()
    Ypad = m.pad_responses(Y)
    for b in range(2):
        single = m.with_response(Y[b])
        batch = response_arrays(Ypad[b], inputs, m.dims)
        for k in ("A1X", "AXX", "A2X"):
            np.testing.assert_allclose(batch[k], single.arrays[k], rtol=1e-12, atol=1e-12)


def test_batched_satterthwaite_equals_coef_table(sleep_fit):
    """df per simulation from the vmapped derivatives = fit.coef_table() on the same data."""
    from lmmjax.powersim.hypotheses import resolve_hypothesis, satterthwaite_statistics

    m = sleep_fit.model
    truth = Truth(sleep_fit.fixef, sleep_fit.theta, sleep_fit.sigma)
    Y = simulate_responses(m, truth, np.arange(2), seed=5)
    data = sleep_fit.model.frame.data.copy()
    fits = []
    for b in range(2):
        data["Reaction"] = Y[b]
        fits.append(lmm.lmer("Reaction ~ Days + (Days | Subject)", data))
    theta = np.array([f.theta for f in fits])
    est = batch_estimates(m, theta, Y)
    H, C, J = batch_satterthwaite(m, theta, est["sigma"], Y)
    st = satterthwaite_statistics(est["beta"], H, C, J, resolve_hypothesis(m, "Days"))
    for b, f in enumerate(fits):
        ct = f.coef_table("satterthwaite").loc["Days"]
        assert st["df"][b] == pytest.approx(ct["df"], rel=1e-6)
        assert st["statistic"][b] == pytest.approx(ct["t_value"], rel=1e-8)
        assert st["p_value"][b] == pytest.approx(ct["p_value"], rel=1e-6)


def test_batched_theta_pieces_equal_the_full_hessian_in_theta_and_sigma(sleep_fit):
    """batch_satterthwaite (θ differentiated, σ's rows by hand) = jax.hessian / jacfwd over (θ, σ), per simulation."""
    import jax
    from lmmjax.inference.satterthwaite import covbeta, varpar_deviance

    m = sleep_fit.model
    Y = simulate_responses(m, Truth(sleep_fit.fixef, sleep_fit.theta, sleep_fit.sigma), np.arange(2), seed=3)
    theta = np.array([sleep_fit.theta, 1.2 * sleep_fit.theta])
    sigma = np.array([sleep_fit.sigma, 0.8 * sleep_fit.sigma])
    H, C, J = batch_satterthwaite(m, theta, sigma, Y)
    inputs = m.with_schur("pairs").response_inputs()
    for b in range(2):
        arrays = response_arrays(m.pad_responses(Y)[b], inputs, m.dims)
        vp = np.append(theta[b], sigma[b])
        H_ref = np.asarray(jax.hessian(varpar_deviance)(vp, arrays, m.dims))
        np.testing.assert_allclose(H[b], H_ref, rtol=1e-8, atol=1e-10 * np.abs(H_ref).max())
        np.testing.assert_allclose(C[b], covbeta(vp, arrays, m.dims), rtol=1e-10)
        J_ref = np.moveaxis(np.asarray(jax.jacfwd(covbeta)(vp, arrays, m.dims)), -1, 0)
        np.testing.assert_allclose(J[b], J_ref, rtol=1e-8, atol=1e-10 * np.abs(J_ref).max())


def test_batched_engine_equals_singlefit_loop():
    """lmmjax.simulate.fit_batch (used by power) and one L-BFGS-B fit per response agree."""
    from lmmjax.powersim import repeated_measures
    from lmmjax.powersim.engine import _fit_many
    from tests.powersim.reference_loop import fit_loop

    d = repeated_measures(12, times=4, between={"group": ["a", "b", "c"]})  # shared with test_power/test_curve
    m = design_model("y ~ Time + group + (1 | Subject)", d, reml=True)
    truth = resolve_truth(m, fixef={"Time": 0.3}, varcorr={"Subject": 1.0}, sigma=1.0)
    Y = simulate_responses(m, truth, np.arange(4), seed=8)
    a, b = _fit_many(m, Y, truth.theta), fit_loop(m, Y, truth.theta)
    np.testing.assert_allclose(a.deviance, b.deviance, rtol=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-6)
    np.testing.assert_allclose(a.vcov_unscaled, b.vcov_unscaled, rtol=1e-4, atol=1e-12)
    assert a.converged.all() and b.converged.all()


def test_device_draws_equal_host_draws_and_lrt_pairs(sleep_fit):
    """Power draws and fits on the device (model and null on the same draw) = host draws fitted."""
    from lmmjax.powersim.engine import _fit_many
    from lmmjax.powersim.hypotheses import null_model
    from lmmjax.powersim.run import _fit_simulated

    m = sleep_fit.model.with_reml(False)
    truth = Truth(sleep_fit.fixef, sleep_fit.theta, sleep_fit.sigma)
    hyp = resolve_hypothesis(m, "Days")
    null = null_model(m, hyp)
    idx = np.arange(8, 16)
    fits, fits0 = _fit_simulated(m, null, truth, idx, 4, sleep_fit.theta, None)
    Y = simulate_responses(m, truth, idx, seed=4)
    host, host0 = _fit_many(m, Y, sleep_fit.theta), _fit_many(null, Y, sleep_fit.theta)
    np.testing.assert_allclose(fits.deviance, host.deviance, rtol=1e-9)
    np.testing.assert_allclose(fits.beta, host.beta, rtol=1e-7)
    np.testing.assert_allclose(fits0.deviance, host0.deviance, rtol=1e-9)
    assert fits.beta.shape == (8, 2) and fits0.beta.shape == (8, 1)
