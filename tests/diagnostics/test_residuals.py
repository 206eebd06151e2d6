"""Residuals of each kind and leverages, against dense matrix algebra."""
import numpy as np
import pytest

from lmmjax import ModelSpecError
from lmmjax.diagnostics import leverage, marginal_variance, residuals
from lmmjax.structure.lambda_map import t_matrix


def dense_design(fit):
    """[ZΛ X] and the augmented cross-product M = F'F + diag(I_q, 0)."""
    m = fit.model
    cols = []
    for blk in m.blocks:
        ZT = blk.Z @ t_matrix(blk.theta_index, fit.theta)
        Wb = np.zeros((m.n_rows, blk.nlevels * blk.p))
        for a in range(blk.p):
            Wb[np.arange(m.n_rows), blk.codes * blk.p + a] = ZT[:, a]
        cols.append(Wb)
    W = np.hstack(cols)
    F = np.hstack([W, m.X])
    M = F.T @ F
    q = W.shape[1]
    M[:q, :q] += np.eye(q)
    return W, F, M


@pytest.mark.parametrize("name", ["sleep_unbalanced_fit", "penicillin_fit", "pastes_crossed_fit",
                                  "pastes_nested_fit"])
def test_leverage_is_diagonal_of_conditional_hat_matrix(name, request):
    fit = request.getfixturevalue(name)
    _, F, M = dense_design(fit)
    H = F @ np.linalg.solve(M, F.T)
    np.testing.assert_allclose(leverage(fit), np.diag(H), atol=1e-12)
    # ŷ = H y
    np.testing.assert_allclose(H @ fit.model.y, fit.fitted, rtol=1e-9)


def test_marginal_variance_matches_dense_V(penicillin_fit):
    fit = penicillin_fit
    W, _, _ = dense_design(fit)
    V = fit.sigma ** 2 * (W @ W.T + np.eye(fit.nobs))
    np.testing.assert_allclose(marginal_variance(fit), np.diag(V), rtol=1e-12)


def test_residual_kinds(sleep_unbalanced_fit):
    fit = sleep_unbalanced_fit
    r = residuals(fit)
    np.testing.assert_allclose(r, fit.residuals())
    np.testing.assert_allclose(residuals(fit, "pearson"), r / fit.sigma)
    h = leverage(fit)
    np.testing.assert_allclose(residuals(fit, "studentized"), r / (fit.sigma * np.sqrt(1 - h)))
    rm = residuals(fit, type="marginal")
    np.testing.assert_allclose(rm, fit.model.y - fit.predict(re_form="~0"), atol=1e-9)
    np.testing.assert_allclose(residuals(fit, "pearson", type="marginal"), rm / np.sqrt(marginal_variance(fit)))
    # Marginal residuals carry the random effects: larger spread than conditional ones.
    assert rm.std() > r.std()
    with pytest.raises(ModelSpecError):
        residuals(fit, "deviance")
    with pytest.raises(ModelSpecError):
        residuals(fit, type="level0")
    with pytest.raises(ModelSpecError):
        residuals(fit, "studentized", type="marginal")
