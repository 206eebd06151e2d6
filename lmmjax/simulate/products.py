"""The design as JAX-ready arrays, and the cross-products that depend on y.

Of the arrays the objective reads (:mod:`lmmjax.structure.crossprod`) only
the last column of ``A1X``, ``AXX`` and ``A2X`` depends on the response
(MixedModels.jl's ``reevaluateAend!``). :func:`response_arrays` recomputes
them for one response in JAX — segment sums over the grouping codes and one
product with X — so that, vmapped, a whole chunk of responses is handled on
the device that fits it, without a trip through the host.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

Y_KEYS = ("A1X", "AXX", "A2X")


def design_arrays(model) -> dict:
    """X, the first block's Z and codes, and the later blocks' Z as COO triplets."""
    b1 = model.blocks[0]
    out = dict(X=np.asarray(model.X, float), Z1=np.asarray(b1.Z, float), codes1=np.asarray(b1.codes, np.int32))
    if model.dims.q2 > 0:
        coo = model.Z2.tocoo()
        out.update(z2_rows=coo.row.astype(np.int32), z2_cols=coo.col.astype(np.int32),
                   z2_vals=coo.data.astype(float))
    return out


def shared_arrays(model) -> dict:
    """The model's cross-product arrays (the y columns are replaced per response)."""
    return {k: np.asarray(v) for k, v in model.arrays.items()}


def response_arrays(y, design: dict, shared: dict, dims) -> dict:
    """A1X, AXX (and A2X) for one response ``y`` (n,): equal to
    ``model.with_response(y).arrays`` up to rounding.

    Examples
    --------
    >>> yarr = jax.vmap(lambda y: response_arrays(y, design, shared, dims))(Y)  # doctest: +SKIP
    """
    p = dims.p
    z1y = jax.ops.segment_sum(design["Z1"] * y[:, None], design["codes1"], num_segments=dims.l1)
    xy = design["X"].T @ y
    yy = jnp.dot(y, y)
    A1X = shared["A1X"].at[:, :, p].set(z1y)
    AXX = shared["AXX"].at[:p, p].set(xy).at[p, :p].set(xy).at[p, p].set(yy)
    out = dict(A1X=A1X, AXX=AXX)
    if dims.q2 > 0:
        z2y = jax.ops.segment_sum(design["z2_vals"] * y[design["z2_rows"]], design["z2_cols"],
                                  num_segments=dims.q2)
        out["A2X"] = shared["A2X"].at[:, p].set(z2y)
    return out
