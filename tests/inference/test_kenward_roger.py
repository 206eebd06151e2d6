"""Kenward-Roger against pbkrtest's vcovAdj and lmerTest's KR tables."""
import numpy as np
import pytest

import lmmjax as lmm
from tests.inference._helpers import TABLE_IDS, fitted, ref, rel
from tests.inference.test_satterthwaite import check_table


@pytest.mark.parametrize("fid", TABLE_IDS)
def test_adjusted_covariance_matches_pbkrtest(fid):
    from lmmjax.inference.tables import kenward_roger

    r = ref(fid)
    info = kenward_roger(fitted(fid))
    V = np.array(r["vcov_kr"])
    scale = np.max(np.abs(V))
    # KR-adjusted covariance within 1e-5 relative (entrywise, relative to the largest entry)
    assert np.max(np.abs(info.vcov_adj - V)) / scale < 1e-5
    assert np.max(np.abs(info.vcov - np.array(r["vcov"]))) / scale < 1e-5


@pytest.mark.parametrize("fid", TABLE_IDS + ["dyestuff2"])
def test_coef_table_matches_lmertest(fid):
    check_table(fitted(fid).coef_table("kenward-roger"), ref(fid)["coef_kenward_roger"])


def test_kr_differs_from_satterthwaite_when_unbalanced():
    fit = fitted("sleep_missing")
    kr, st = fit.coef_table("kenward-roger"), fit.coef_table()
    assert rel(kr.df, st.df) > 1e-3
    r = ref("sleep_missing")
    assert rel(r["coef_kenward_roger"]["df"], r["coef_satterthwaite"]["df"]) > 1e-3


def test_kr_needs_reml():
    with pytest.raises(lmm.ModelSpecError, match="REML"):
        fitted("sleep", reml=False).coef_table("kenward-roger")


def test_structure_without_dense_block():
    """One grouping factor: M⁻¹ stays sparse (block-diagonal)."""
    from lmmjax.inference.kenward_roger import kr_products

    fit = fitted("sleep")
    prod = kr_products(fit.model, fit.theta, fit.sigma)
    import scipy.sparse as sp

    assert sp.issparse(prod.ZViZ)


def _dense_vcov_adj(fit):
    """pbkrtest's vcovAdj_internal, literally, with n × n matrices built from the data."""
    model = fit.model
    X = model.X
    n = X.shape[0]
    vc = fit.varcorr
    G, gam = [], []
    for tm in model.frame.terms:
        ind = np.zeros((n, len(tm.levels)))
        ind[np.arange(n), tm.codes] = 1.0
        sub = vc[vc.group == tm.group]
        cols = tm.columns
        for c in range(len(cols)):
            for r in range(c, len(cols)):
                A = ind * tm.Z[:, [r]]
                B = ind * tm.Z[:, [c]]
                G.append(A @ B.T if r == c else A @ B.T + B @ A.T)
                if r == c:
                    row = sub[(sub.term1 == cols[r]) & sub.term2.isna()]
                else:
                    row = sub[(sub.term1 == cols[c]) & (sub.term2 == cols[r])]
                gam.append(float(row.vcov.iloc[0]))
    G.append(np.eye(n))
    gam.append(fit.sigma ** 2)
    Sigma = sum(g * Gi for g, Gi in zip(gam, G))
    Si = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(X.T @ Si @ X)
    m = len(G)
    H = [Gi @ Si for Gi in G]
    O = [Hi @ X for Hi in H]
    P = [-(Oi.T @ Si @ X) for Oi in O]
    Q = {(i, j): O[i].T @ Si @ O[j] for i in range(m) for j in range(i, m)}
    K = np.array([[np.sum(H[i].T * H[j]) for j in range(m)] for i in range(m)])
    IE2 = np.array([[K[i, j] - 2 * np.sum(Phi * Q[min(i, j), max(i, j)]) + np.sum((Phi @ P[i]) * (P[j] @ Phi))
                     for j in range(m)] for i in range(m)])
    W = 2 * np.linalg.inv(IE2)
    U = np.zeros_like(Phi)
    for i in range(m):
        for j in range(i, m):
            t = W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
            U += t if i == j else t + t.T
    return Phi, Phi + 2 * Phi @ U @ Phi, Sigma


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject) + (1 | DayF)",
                                     "Reaction ~ Days + (Days || Subject) + (1 | DayF)"])
def test_matches_dense_algorithm_with_crossed_block(formula):
    """A 2-column first block plus a dense crossed block: the Woodbury route equals pbkrtest's n × n route."""
    import warnings

    import pandas as pd

    from lmmjax.inference.kenward_roger import kenward_roger_info

    df = lmm.datasets.load("sleepstudy")
    df["DayF"] = pd.Categorical(df["Days"].astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer(formula, df)
    assert fit.model.dims.q2 > 0 and fit.model.dims.p1 == 2
    Phi, PhiA, Sigma = _dense_vcov_adj(fit)
    np.testing.assert_allclose(Phi, fit.vcov.to_numpy(), rtol=1e-8)
    info = kenward_roger_info(fit.model, fit.theta, fit.sigma)
    np.testing.assert_allclose(info.vcov_adj, PhiA, rtol=1e-8, atol=1e-10 * np.max(np.abs(PhiA)))
    ct = fit.coef_table("kenward-roger")
    assert np.all(np.isfinite(ct.df)) and np.all(ct.df > 1)
