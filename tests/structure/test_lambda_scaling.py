"""Λ₂ᵀBΛ₂ with a diagonal Λ₂ (lmmjax.structure.lambda_map.diagonal_scaled): its hand-written
derivative rule equals differentiating the plain product, to first and second order, forward and reverse."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from lmmjax.structure.lambda_map import diagonal_scaled


def plain(B, w):
    return w[:, None] * B * w[None, :]


def test_diagonal_scaling_and_its_derivatives_equal_the_plain_product():
    rng = np.random.default_rng(0)
    B, w = rng.normal(size=(7, 7)), rng.normal(size=7)
    np.testing.assert_array_equal(diagonal_scaled(B, w), plain(B, w))
    check_grads(diagonal_scaled, (B, w), order=2, modes=("fwd", "rev"))
    # a scalar function of the scaled matrix: gradient and (forward-over-reverse) Hessian in w
    f = lambda fn: (lambda w: jnp.sum(jnp.sin(fn(B, w)) * B))
    np.testing.assert_allclose(jax.grad(f(diagonal_scaled))(w), jax.grad(f(plain))(w), rtol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(jax.grad(f(diagonal_scaled)))(w), jax.hessian(f(plain))(w),
                               rtol=1e-10, atol=1e-12)
