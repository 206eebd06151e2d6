"""The single GLMM fit's host-side search pieces on plain numpy objectives (no compiled program).

- :func:`lmmjax.fitting.glmm._quasi_newton` (stage 2): reaches the optimum of a
  smooth bounded problem, and a boundary optimum (a variance of 0) with the
  bounded coordinate held at the bound.
- :func:`lmmjax.fitting.glmm.checked_forward_hessian` (standard errors):
  forward differences where the gradient is exact, central ones where the
  two triangles disagree (a noisy gradient).
"""
from __future__ import annotations

import numpy as np

from lmmjax.fitting.glmm import _quasi_newton, _se_of_hessian, checked_forward_hessian

A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])


class Quartic:
    """f(x) = ½ (x − c)ᵀA(x − c) + ¼ Σ (x − c)⁴, the duck type of ``_Objective`` that the pieces use."""

    def __init__(self, c, noise=0.0):
        self.c, self.noise, self.evals = np.asarray(c, float), noise, 0
        self.rng = np.random.default_rng(0)

    def value_and_grad(self, x):
        self.evals += 1
        d = np.asarray(x, float) - self.c
        g = A @ d + d ** 3
        if self.noise:
            g = g + self.noise * self.rng.standard_normal(len(g))
        return 0.5 * d @ A @ d + 0.25 * np.sum(d ** 4), g

    def exact_hessian(self, x):
        return A + np.diag(3.0 * (np.asarray(x, float) - self.c) ** 2)

    def gradient_differences(self, y, columns, g0=None, rel=1e-4):
        y = np.asarray(y, float)
        D = np.empty((len(y), len(columns)))
        for j, i in enumerate(columns):
            e = np.zeros(len(y))
            e[i] = h = rel * max(1.0, abs(y[i]))
            lo = self.value_and_grad(y - e)[1] if g0 is None else g0
            D[:, j] = (self.value_and_grad(y + e)[1] - lo) / (h if g0 is not None else 2.0 * h)
        return D

    def hessian(self, y, rel=1e-4, g0=None):
        H = self.gradient_differences(y, range(len(y)), g0, rel)
        return 0.5 * (H + H.T)

    def start_hessian(self, y, g):
        return self.hessian(y, g0=g)


def test_quasi_newton_reaches_an_interior_optimum():
    obj = Quartic([0.7, -1.2, 2.0])
    lower = np.array([0.0, -np.inf, -np.inf])
    x, f, g, nit, ok = _quasi_newton(obj, np.array([1.5, 0.0, 0.0]), lower, 1e-12)
    assert ok and nit < 30
    np.testing.assert_allclose(x, obj.c, atol=1e-10)


def test_quasi_newton_holds_a_coordinate_at_its_bound():
    obj = Quartic([-0.5, 1.0, 0.3])  # optimum of the first coordinate below its bound 0
    lower = np.array([0.0, -np.inf, -np.inf])
    x, f, g, nit, ok = _quasi_newton(obj, np.array([1.0, 0.0, 0.0]), lower, 1e-12)
    assert ok and x[0] == 0.0 and g[0] > 0
    # the other coordinates minimise f with x[0] = 0: their gradient is 0
    np.testing.assert_allclose(g[1:], 0.0, atol=1e-10)


def test_checked_forward_hessian_uses_forward_differences_of_an_exact_gradient():
    obj = Quartic([0.7, -1.2, 2.0])
    x = obj.c + np.array([0.1, 0.2, -0.1])
    H = checked_forward_hessian(obj, x, 1)
    assert obj.evals == len(x) + 1
    np.testing.assert_allclose(_se_of_hessian(H, 1), _se_of_hessian(obj.exact_hessian(x), 1), rtol=1e-5)


def test_checked_forward_hessian_falls_back_to_central_differences_on_a_noisy_gradient():
    obj = Quartic([0.7, -1.2, 2.0], noise=1e-7)  # forward step 1e-6: errors ~0.1 in the entries
    x = obj.c + np.array([0.1, 0.2, -0.1])
    H = checked_forward_hessian(obj, x, 1)
    assert obj.evals == len(x) + 1 + 2 * len(x)
    np.testing.assert_allclose(_se_of_hessian(H, 1), _se_of_hessian(obj.exact_hessian(x), 1), rtol=1e-3)
