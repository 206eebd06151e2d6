"""The GLMM objective against a dense brute-force Laplace approximation, for every block kind.

The brute force builds Z and Λ as dense matrices, finds the conditional
mode with scipy (Newton on the penalised deviance) and forms
−2 Σ loglik + |u|² + log|Λ'Z'WZΛ + I| directly. It must equal the blocked
JAX objective (one term, a nested later block, a dense crossed later
block, a random slope) — and the gradient through the mode must equal
central differences.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import scipy.optimize as so

import lmmjax as lmm
from lmmjax.fitting.glmm import _Objective, glmm_data, objective_at  # the driver's objective: gradient check
from lmmjax.model import build_model
from lmmjax.structure.kinds import DenseLaterBlocks, NestedLaterBlock, NoLaterBlocks
from lmmjax.structure.lambda_map import lambda2_sparse, t_matrix
from lmmjax.structure.blocks import sparse_z, sparse_z1


def dense_z_lambda(model, theta):
    """Z Λ as a dense (n, q) matrix in the engine's u order (block 1 level-major, then the rest)."""
    b1 = model.blocks[0]
    Z1 = sparse_z1(b1).toarray()
    Lam1 = np.kron(np.eye(b1.nlevels), t_matrix(b1.theta_index, theta))
    parts = [Z1 @ Lam1]
    if len(model.blocks) > 1:
        parts.append(sparse_z(model.blocks, model.n_rows).toarray() @ lambda2_sparse(model.blocks, theta).toarray())
    return np.hstack(parts)


def brute_laplace(model, family, theta, beta):
    y, wt, off = model.y, model.weights, model.offset
    ZL = dense_z_lambda(model, theta)
    fixed = model.X @ beta + off

    def pdev(u):
        mu = np.asarray(family.linkinv(fixed + ZL @ u))
        return float(np.sum(np.asarray(family.dev_resids(y, mu, wt)))) + u @ u

    u = so.minimize(pdev, np.zeros(ZL.shape[1]), method="BFGS", options=dict(gtol=1e-11)).x
    eta = fixed + ZL @ u
    mu = np.asarray(family.linkinv(eta))
    w = wt * np.asarray(family.mu_eta(eta)) ** 2 / np.asarray(family.variance(mu))
    M = ZL.T @ (w[:, None] * ZL) + np.eye(ZL.shape[1])
    logdet = 2.0 * np.sum(np.log(np.diag(sla.cholesky(M, lower=True))))
    return -2.0 * float(np.sum(np.asarray(family.loglik_rows(y, mu, wt)))) + u @ u + logdet


def small_data(seed=1):
    rng = np.random.default_rng(seed)
    n = 240
    a = rng.integers(0, 12, n)
    b = rng.integers(0, 5, n)
    school = rng.integers(0, 6, n)
    cls = school * 3 + rng.integers(0, 3, n)  # nested in school
    x = rng.normal(size=n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.7, 12)[a] + rng.normal(0, 0.5, 5)[b]
    return pd.DataFrame({
        "y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float),
        "k": rng.poisson(np.exp(0.2 + 0.3 * x + rng.normal(0, 0.4, 12)[a])).astype(float),
        "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b],
        "school": [f"s{i}" for i in school], "cls": [f"c{i}" for i in cls]})


CASES = [
    pytest.param("y ~ x + (1 | a)", "binomial", NoLaterBlocks, marks=pytest.mark.slow),  # also golden (cbpp)
    pytest.param("y ~ x + (x | a)", "binomial", NoLaterBlocks, marks=pytest.mark.slow),  # also golden (slope)
    pytest.param("y ~ x + (1 | a) + (1 | b)", "binomial", DenseLaterBlocks, marks=pytest.mark.slow),
    ("k ~ x + (1 | school/cls)", "poisson", NestedLaterBlock),  # the only nested-kind GLMM check
]


@pytest.mark.parametrize("formula,family,kind", CASES)
def test_objective_equals_dense_brute_force(formula, family, kind):
    fam = lmm.families.get_family(family)
    model = build_model(formula, small_data(), reml=False, family=fam)
    assert isinstance(model.dims.kind, kind)
    k, p = model.dims.n_theta, model.dims.p
    rng = np.random.default_rng(3)
    obj = objective_at(model, fam)
    for _ in range(2):
        theta = np.where(np.isfinite(model.layout.lower), rng.uniform(0.3, 1.2, k), rng.uniform(-0.3, 0.3, k))
        beta = rng.normal(0, 0.3, p)
        assert obj(np.concatenate([theta, beta])) == pytest.approx(brute_laplace(model, fam, theta, beta), abs=2e-6)


@pytest.mark.parametrize("link", ["logit", pytest.param("probit", marks=pytest.mark.slow)])
def test_gradient_through_the_mode_equals_central_differences(link):
    """Implicit differentiation (one exact Newton step at the mode) gives the true gradient,
    also for a non-canonical link, whose Newton step needs the observed information."""
    fam = lmm.families.Binomial(link=link)
    model = build_model("y ~ x + (1 | a) + (1 | b)", small_data(), reml=False, family=fam)
    dims = model.dims
    q = dims.l1 * dims.p1 + dims.q2
    objective = _Objective(glmm_data(model), dims, fam, False, 1, np.zeros(q), np.zeros(dims.p))
    x = np.array([0.8, 0.5, -0.2, 0.4])
    _, g = objective.value_and_grad(x)
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = 1e-5
        fd = (objective.value(x + e) - objective.value(x - e)) / 2e-5
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-6)
