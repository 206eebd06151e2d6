"""Cross-products with the rows sharded across devices (``jax.sharding``).

The per-row work of a fit is the cross-products ``[Z X y]'W[Z X y]``
(:func:`lmmjax.objective.crossprod.cross_products`): weighted sums over
rows scattered into per-level slots. Here the row arrays of the pattern
(:data:`lmmjax.structure.pattern.ROW_KEYS`) and the weights, response and
offset are split over a one-axis mesh ``("rows",)`` of ``jax.devices()``;
everything else (entries, pairs, index arrays) is replicated. The same
jitted function runs on them: XLA partitions each segment sum into partial
sums per device and adds them across devices (an all-reduce), so no device
ever holds all the rows. The sums come back to the first device, where
the factorization (a function of the number of random effects, not of
rows) runs as on one device.

Results equal the one-device values up to the order of the final
additions (relative 1e-15 per cross-product; estimates agree to 1e-10,
``tests/objective/test_row_sharding.py``). A multi-host run
(``jax.distributed.initialize()`` first) works the same way: every process
holds the host arrays and the mesh spans all processes' devices, as the
bootstrap's replicate sharding does (:mod:`lmmjax.simulate.batched`).

Used by :meth:`lmmjax.model.Model.values` when there is more than one
device and at least :data:`ROW_SHARD_MIN` rows.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ..structure.pattern import ROW_KEYS
from .crossprod import cross_products

ROW_SHARD_MIN = 200_000  # rows from which the cross-products are split over several devices

_cross_products = jax.jit(cross_products, static_argnums=4)


def row_devices(n_rows: int, devices=None) -> list:
    """The devices to split ``n_rows`` over: the most of ``devices`` whose count divides ``n_rows``.

    Examples
    --------
    >>> len(row_devices(10, jax.devices()[:1]))
    1
    """
    devices = list(devices) if devices is not None else jax.devices()
    k = max(c for c in range(1, len(devices) + 1) if n_rows % c == 0)
    return devices[:k]


def use_row_sharding(n_rows: int, devices=None) -> bool:
    """Whether :meth:`~lmmjax.model.Model.values` splits rows: several devices and enough rows."""
    return n_rows >= ROW_SHARD_MIN and len(row_devices(n_rows, devices)) > 1


def _put(x, sharding):
    """A global array from a host array that every process holds in full."""
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def cross_products_sharded(pattern: dict, w, y, offset, dims, devices=None) -> dict:
    """:func:`~lmmjax.objective.crossprod.cross_products` with the rows split over ``devices``.

    Parameters are those of ``cross_products`` (padded host arrays) plus
    ``devices`` (default ``jax.devices()``; only as many as divide the
    padded rows are used). Returns the values on the first device.

    Examples
    --------
    >>> vals = cross_products_sharded(pat.arrays, pat.pad(w), pat.pad(y), pat.pad(off), dims)  # doctest: +SKIP
    """
    n = len(w)
    devices = row_devices(n, devices)
    mesh = Mesh(np.asarray(devices), ("rows",))
    rows, rep = NamedSharding(mesh, P("rows")), NamedSharding(mesh, P())
    placed = {k: _put(v, rows if k in ROW_KEYS else rep) for k, v in pattern.items()}
    out = _cross_products(placed, _put(w, rows), _put(y, rows), _put(offset, rows), dims)
    return jax.device_put(out, devices[0])
