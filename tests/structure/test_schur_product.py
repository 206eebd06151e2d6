"""The iterative kind's Schur product Z₂ᵀZ₁ W Z₁ᵀZ₂ x: scipy host kernel (CPU) against a dense reference and the JAX form.

Checked: values for p1 = 2 with one vector, vmapped vectors and a vmapped
operator (the host kernel's per-element fallback); derivatives (the rule
goes through the JAX form) against the JAX form's own.
"""
import jax
import jax.numpy as jnp
import numpy as np

from lmmjax.structure.schur_product import level_pointers, schur_product, schur_product_jax


def random_entries(seed=0, l1=40, q2=15, p1=2, per_level=4):
    rng = np.random.default_rng(seed)
    rows = [np.sort(rng.choice(q2, rng.integers(1, per_level + 1), replace=False)) for _ in range(l1)]
    ent_row = np.concatenate(rows).astype(np.int32)
    ent_level = np.repeat(np.arange(l1), [len(r) for r in rows]).astype(np.int32)
    ent_a = rng.normal(size=(len(ent_row), p1))
    G = rng.normal(size=(l1, p1, p1))
    W = G @ np.swapaxes(G, 1, 2) / p1
    return jnp.asarray(ent_a), jnp.asarray(W), jnp.asarray(ent_row), jnp.asarray(ent_level), l1, q2


def dense_product(ent_a, W, x, ent_row, ent_level, l1, q2):
    B = np.zeros((ent_a.shape[1], l1, q2))
    for c in range(ent_a.shape[1]):
        np.add.at(B[c], (np.asarray(ent_level), np.asarray(ent_row)), np.asarray(ent_a)[:, c])
    return np.einsum("cjr,jcd,djs,s->r", B, np.asarray(W), B, np.asarray(x))


def test_host_product_matches_dense_one_vector_batches_and_batched_operator():
    ent_a, W, ent_row, ent_level, l1, q2 = random_entries()
    ptr = level_pointers(ent_level, l1)
    assert ptr.tolist()[0] == 0 and ptr.tolist()[-1] == len(ent_row)
    X = jnp.asarray(np.random.default_rng(1).normal(size=(3, q2)))
    want = np.stack([dense_product(ent_a, W, x, ent_row, ent_level, l1, q2) for x in X])
    np.testing.assert_allclose(schur_product(ent_a, W, X[0], ent_row, ent_level, ptr), want[0], rtol=1e-12)
    f = jax.jit(jax.vmap(lambda x: schur_product(ent_a, W, x, ent_row, ent_level, ptr)))
    np.testing.assert_allclose(f(X), want, rtol=1e-12)
    Ws = jnp.stack([W, 2.0 * W, 0.5 * W])  # the operator batched too (one host product per element)
    g = jax.vmap(lambda w, x: schur_product(ent_a, w, x, ent_row, ent_level, ptr))
    np.testing.assert_allclose(g(Ws, X), want * np.array([1.0, 2.0, 0.5])[:, None], rtol=1e-12)
    np.testing.assert_allclose(schur_product_jax(ent_a, W, X.T, ent_row, ent_level).T, want, rtol=1e-12)


def test_product_derivatives_are_the_jax_forms():
    ent_a, W, ent_row, ent_level, l1, q2 = random_entries(seed=2)
    ptr = level_pointers(ent_level, l1)
    x = jnp.asarray(np.random.default_rng(3).normal(size=q2))
    v = jnp.asarray(np.random.default_rng(4).normal(size=q2))

    def loss(product, a, w, x):
        return v @ product(a, w, x) + 0.5 * jnp.sum(product(a, w, x) ** 2)

    host = jax.grad(lambda a, w, x: loss(lambda *z: schur_product(*z, ent_row, ent_level, ptr), a, w, x),
                    argnums=(0, 1, 2))(ent_a, W, x)
    ref = jax.grad(lambda a, w, x: loss(lambda *z: schur_product_jax(*z, ent_row, ent_level), a, w, x),
                   argnums=(0, 1, 2))(ent_a, W, x)
    for h, r in zip(host, ref):
        np.testing.assert_allclose(h, r, rtol=1e-11, atol=1e-12)
        assert float(jnp.max(jnp.abs(r))) > 0


def test_vectors_split_over_threads_give_the_same_product(monkeypatch):
    import lmmjax.structure.schur_product as module
    ent_a, W, ent_row, ent_level, l1, q2 = random_entries(seed=5)
    ptr = level_pointers(ent_level, l1)
    X = jnp.asarray(np.random.default_rng(6).normal(size=(5, q2)))
    f = jax.vmap(lambda x: schur_product(ent_a, W, x, ent_row, ent_level, ptr))
    serial = np.asarray(f(X))
    monkeypatch.setattr(module, "PARALLEL_FROM", 0)
    monkeypatch.setattr(module, "_CORES", 2)
    np.testing.assert_array_equal(np.asarray(jax.jit(f)(X)), serial)
    np.testing.assert_allclose(serial, schur_product_jax(ent_a, W, X.T, ent_row, ent_level).T, rtol=1e-12)


def test_second_derivatives_forward_over_reverse_are_the_jax_forms():
    """Satterthwaite's Hessian is jacfwd of grad: the host product must survive reverse mode's partial evaluation."""
    ent_a, W, ent_row, ent_level, l1, q2 = random_entries(seed=7)
    ptr = level_pointers(ent_level, l1)
    x = jnp.asarray(np.random.default_rng(8).normal(size=q2))

    def loss(product, s):  # W and x scaled by the parameters, as θ scales them in the objective
        u = product(ent_a, W * s[0], x * s[1])
        return jnp.sum(u * x) + jnp.sum(jnp.sin(u))

    s = jnp.array([0.7, 1.3])
    host = jax.jacfwd(jax.grad(lambda s: loss(lambda *z: schur_product(*z, ent_row, ent_level, ptr), s)))(s)
    ref = jax.jacfwd(jax.grad(lambda s: loss(lambda *z: schur_product_jax(*z, ent_row, ent_level), s)))(s)
    np.testing.assert_allclose(host, ref, rtol=1e-10)
    assert float(jnp.max(jnp.abs(ref))) > 0


def test_operator_tangent_through_b_and_bt_matches_the_jax_form_batched():
    """The tangent in W (entries fixed, as θ moves them) goes through B x and Bᵀ y: vmapped vectors and
    tangents, forward and reverse, against the JAX form; B and Bᵀ are each other's transpose."""
    from lmmjax.structure.schur_product import level_spread, level_sums

    ent_a, W, ent_row, ent_level, l1, q2 = random_entries(seed=9)
    ptr = level_pointers(ent_level, l1)
    rng = np.random.default_rng(10)
    X = jnp.asarray(rng.normal(size=(4, q2)))
    dWs = jnp.asarray(rng.normal(size=(3, l1, 2, 2)))
    host = jax.vmap(lambda dw: jax.vmap(lambda x: jax.jvp(
        lambda w: schur_product(ent_a, w, x, ent_row, ent_level, ptr), (W,), (dw,))[1])(X))(dWs)
    ref = jax.vmap(lambda dw: jax.vmap(lambda x: jax.jvp(
        lambda w: schur_product_jax(ent_a, w, x, ent_row, ent_level), (W,), (dw,))[1])(X))(dWs)
    np.testing.assert_allclose(host, ref, rtol=1e-11, atol=1e-12)
    y = jnp.asarray(rng.normal(size=(4, l1, 2)))
    lhs = jnp.sum(level_sums(ent_a, X, ent_row, ent_level, ptr) * y)
    rhs = jnp.sum(X * level_spread(ent_a, y, ent_row, ent_level, ptr, q2))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    g_host = jax.grad(lambda w: jnp.sum(jnp.sin(jax.vmap(lambda x: schur_product(ent_a, w * w, x, ent_row,
                                                                                  ent_level, ptr))(X))))(W)
    g_ref = jax.grad(lambda w: jnp.sum(jnp.sin(jax.vmap(lambda x: schur_product_jax(ent_a, w * w, x, ent_row,
                                                                                    ent_level))(X))))(W)
    np.testing.assert_allclose(g_host, g_ref, rtol=1e-11, atol=1e-12)


def test_b_and_bt_jax_forms_match_the_host_kernels():
    """The JAX forms (other backends; a batched operator on the CPU) of B x and Bᵀ y against scipy's."""
    from lmmjax.structure.schur_product import _spread_host, _spread_jax, _sums_host, _sums_jax

    ent_a, W, ent_row, ent_level, l1, q2 = random_entries(seed=11)
    ptr = level_pointers(ent_level, l1)
    rng = np.random.default_rng(12)
    X, Y = rng.normal(size=(2, 3, q2)), rng.normal(size=(2, 3, l1, 2))
    np.testing.assert_allclose(_sums_jax(ent_a, X, ent_row, ent_level, ptr), _sums_host(ent_a, X, ent_row, ptr),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_spread_jax(ent_a, Y, ent_row, ent_level, ptr, q2),
                               _spread_host(ent_a, Y, ent_row, ptr, q2), rtol=1e-12, atol=1e-12)
