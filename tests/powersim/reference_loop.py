"""Test-only reference for the batched engine: one L-BFGS-B fit per response."""
import numpy as np

from lmmjax.fitting.optimize import minimize_deviance
from lmmjax.powersim.engine import SINGULAR_TOL, BatchFit, batch_estimates


def fit_loop(model, Y: np.ndarray, theta0: np.ndarray) -> BatchFit:
    """Reference: one L-BFGS-B fit per response (correct, slow: ~50 ms per sleepstudy fit)."""
    thetas, devs, conv = [], [], []
    for b in range(Y.shape[0]):
        arrays = model.with_response(Y[b]).arrays
        try:
            opt = minimize_deviance(arrays, model.dims, model.layout, theta0=theta0)
            thetas.append(opt.theta)
            devs.append(opt.deviance)
            conv.append(opt.success)
        except Exception:  # one bad replicate must not stop the run
            thetas.append(np.full(model.layout.size, np.nan))
            devs.append(np.nan)
            conv.append(False)
    theta = np.asarray(thetas)
    est = batch_estimates(model, theta, Y)
    ok = np.all(np.isfinite(theta), axis=1)
    singular = np.any(theta[:, model.layout.diagonal] < SINGULAR_TOL, axis=1) & ok
    return BatchFit(theta, np.asarray(devs, float), np.asarray(conv, bool), singular,
                    est["beta"], est["sigma"], est["vcov_unscaled"])
