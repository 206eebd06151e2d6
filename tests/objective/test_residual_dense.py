"""Residual structures (AR(1), CAR(1), VarIdent) against the dense likelihood.

nlme cannot fit crossed random effects, so for ``(1 | subject) + (1 | item)``
with AR(1) residuals within subject (items more numerous than subjects: the
blocks are reordered so that subject, constant within the AR groups, is
block 1, and the item block's whitened rows touch two items) the profiled
deviance is checked against −2 log L from the dense marginal covariance
``V = σ²(ZΛΛᵀZᵀ + D^{1/2} C D^{1/2})`` with C built directly from
φ^|t − s| — not from the whitening the engine uses.
"""
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmmjax as lmm
from lmmjax.model import build_model
from lmmjax.objective.deviance import deviance_jit
from lmmjax.objective.residual import natural_params
from tests.objective.test_deviance_property import dense_z_lambda


def dense_residual_deviance(model, params, time):
    """ML deviance / REML criterion from the dense V at (θ, residual parameters)."""
    rows, rd = model.residual, model.dims.residual
    use = model.weights > 0
    nat = natural_params(params, rd)
    phi = nat[0] if rd.correlation else 0.0
    ratios = np.concatenate([[1.0], nat[1:] if rd.correlation else nat])
    d = ratios[rows.var_codes] ** 2 / np.where(use, model.weights, 1.0)
    g, t = rows.group_codes, np.asarray(time, float)
    same = g[:, None] == g[None, :]
    C = np.where(same, phi ** np.abs(t[:, None] - t[None, :]), 0.0) if rd.correlation else np.eye(len(g))
    R = np.sqrt(d)[:, None] * C * np.sqrt(d)[None, :]
    X, y = model.X[use], (model.y - model.offset)[use]
    n, p = X.shape
    Z, Lam = dense_z_lambda(model, params)
    Z = Z[use]
    V0 = Z @ Lam @ Lam.T @ Z.T + R[np.ix_(use, use)]
    Vi = np.linalg.inv(V0)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    rss = r @ Vi @ r
    logdet = np.linalg.slogdet(V0)[1]
    if model.reml:
        return logdet + np.linalg.slogdet(XtViX)[1] + (n - p) * (1 + np.log(2 * np.pi * rss / (n - p)))
    return logdet + n * (1 + np.log(2 * np.pi * rss / n))


@st.composite
def crossed_designs(draw):
    """Subjects × items (more items than subjects), times with gaps, a two-level VarIdent column."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_s, per = draw(st.integers(3, 5)), draw(st.integers(4, 6))
    n_items = n_s + draw(st.integers(1, 4))
    subj = np.repeat(np.arange(n_s), per)
    time = np.tile(np.arange(per), n_s)
    keep = (rng.random(len(subj)) > 0.2) | (time < 3)
    item = rng.integers(0, n_items, len(subj))
    item[:n_items] = np.arange(n_items) % n_items
    x = rng.normal(size=len(subj))
    grp = np.where(np.arange(len(subj)) % 2 == 0, "a", "b")
    y = 1 + 0.5 * x + rng.normal(size=n_s)[subj] + rng.normal(size=n_items)[item] + rng.normal(size=len(subj))
    df = pd.DataFrame({"y": y, "x": x, "subject": [f"s{v}" for v in subj], "item": [f"i{v}" for v in item],
                       "time": time, "grp": grp})[keep]
    kind = draw(st.sampled_from(["ar1", "ar1_time", "car1", "varident", "ar1+varident"]))
    form = draw(st.sampled_from(["y ~ x + (1 | subject) + (1 | item)", "y ~ x + (x | subject) + (1 | item)",
                                 "y ~ x + (1 | subject)"]))
    return df, form, kind, draw(st.booleans()), rng


def _structure(kind):
    corr = {"ar1": lmm.AR1("subject"), "ar1_time": lmm.AR1("subject", "time"),
            "car1": lmm.CAR1("subject", "time"), "varident": None,
            "ar1+varident": lmm.AR1("subject", "time")}[kind]
    var = lmm.VarIdent("grp") if "varident" in kind else None
    return corr, var


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crossed_designs())
def test_residual_deviance_equals_dense_likelihood(case):
    df, form, kind, reml, rng = case
    corr, var = _structure(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(form, df, reml=reml, correlation=corr, variance=var)
    lay = model.layout
    params = np.where(np.isfinite(lay.lower), rng.uniform(0.1, 2.0, lay.size), rng.normal(0, 0.7, lay.size))
    if kind == "ar1":  # row order within subject: the time is the position among the rows kept
        time = model.residual.time
    else:
        time = df["time"].to_numpy(float)
    ours = float(deviance_jit(params, model.arrays, model.dims))
    np.testing.assert_allclose(ours, dense_residual_deviance(model, params, time), rtol=1e-8)


def _crossed_ar1_data(seed=1):
    rng = np.random.default_rng(seed)
    n_s, per, n_items = 12, 8, 20
    subj = np.repeat(np.arange(n_s), per)
    time = np.tile(np.arange(per), n_s)
    item = rng.integers(0, n_items, len(subj))
    e = np.zeros(len(subj))
    for s in range(n_s):  # AR(1) residuals with φ = 0.6 within subject
        z = rng.normal(size=per)
        for k in range(per):
            e[s * per + k] = z[k] * np.sqrt(1 - 0.36) + (0.6 * e[s * per + k - 1] if k else z[k] * 0.8 / np.sqrt(0.64))
    y = 2 + rng.normal(size=n_s)[subj] + 0.7 * rng.normal(size=n_items)[item] + e
    return pd.DataFrame({"y": y, "subject": [f"s{v}" for v in subj], "item": [f"i{v}" for v in item],
                         "time": time})


def test_crossed_ar1_fit_is_the_dense_optimum():
    """The fit of a crossed model with AR(1) residuals: its deviance is the dense one at θ̂,
    and no coordinate step of the dense likelihood improves on it."""
    df = _crossed_ar1_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmm.lmer("y ~ 1 + (1 | subject) + (1 | item)", df, correlation=lmm.AR1("subject", "time"))
    model = fit.model
    assert model.blocks[0].group == "subject" and model.dims.residual.doubled
    time = df["time"].to_numpy(float)
    best = dense_residual_deviance(model, fit.theta, time)
    np.testing.assert_allclose(fit.deviance, best, rtol=1e-9)
    for i in range(len(fit.theta)):
        for step in (-1e-3, 1e-3):
            trial = fit.theta.copy()
            trial[i] += step
            if np.isfinite(model.layout.lower[i]) and trial[i] < 0:
                continue
            assert dense_residual_deviance(model, trial, time) >= best - 1e-9
    assert 0.3 < fit.residual_params["phi"] < 0.85
