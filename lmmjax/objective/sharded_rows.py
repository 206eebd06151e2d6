"""Cross-products with the rows sharded across devices (``jax.sharding``), the same to the last bit as on one.

The per-row work of a fit is the cross-products ``[Z X y]'W[Z X y]``
(:func:`lmmjax.objective.crossprod.cross_products`): weighted sums over
rows scattered into per-level slots. A model with at least
:data:`ROW_SHARD_MIN` rows takes these sums in fixed blocks of rows, one
after another (:class:`lmmjax.objective.row_sums.RowBlocks`), on one device
or on several, so that its values, and so its fit, do not depend on how
many devices there are:

* one device runs the blocks in a ``lax.scan``;
* with several (:class:`ShardedRowBlocks`), the row arrays of the pattern
  (:data:`lmmjax.structure.pattern.ROW_KEYS`) and the weights, response and
  offset are split over a one-axis mesh ``("rows",)`` of ``jax.devices()``,
  and everything else is replicated. Each sum is a chain: device 0 adds its
  blocks to the carry, hands it to device 1 (a ``psum`` in which every
  other device adds exact zeros), and so on. No device holds more than its
  rows and one carry, and every block is added in the same order, by the
  same compiled step, as on one device.

The chain does not make the sums faster (they run one device at a time);
the fit's cost after them is a function of the number of random effects,
not of rows. What sharding buys is room: rows that do not fit one device.
The values come back to the first device, where the factorization runs as
on one device. A multi-host run (``jax.distributed.initialize()`` first)
works the same way: every process holds the host arrays and the mesh spans
all processes' devices, as the bootstrap's replicate sharding does
(:mod:`lmmjax.simulate.batched`). Tested on 4 forced host devices:
``tests/objective/test_row_sharding.py``. On GPUs a scatter-add adds its
updates in no fixed order, so there the values agree to rounding, not to
the bit, even between two runs on one device.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ..structure.pattern import ROW_KEYS
from .crossprod import cross_products_jit
from .row_sums import WHOLE_ROWS, RowBlocks, row_block

ROW_SHARD_MIN = 200_000  # rows from which sums are taken in fixed row blocks, split over the devices there are
DEVICES = None  # the devices rows may be split over; None: jax.devices()

@dataclass(frozen=True)
class ShardedRowBlocks(RowBlocks):
    """:class:`~lmmjax.objective.row_sums.RowBlocks` with the rows split over ``mesh``'s axis ``"rows"``.

    Device k runs its blocks on the carry device k − 1 handed it, so the
    result equals the one-device scan's bit for bit.
    """

    mesh: Mesh = None

    def total(self, step, init, rows: dict, params=()):
        """The carry after every block, first to last, the devices in mesh order."""
        n_dev = self.mesh.size
        scan = RowBlocks(self.block).total

        def chain(carry, local, params):
            me = lax.axis_index("rows")
            for k in range(n_dev):
                new = lax.cond(me == k, lambda c: scan(step, c, local, params), lambda c: c, carry)
                carry = jax.tree.map(lambda v: lax.psum(jnp.where(me == k, v, jnp.zeros_like(v)), "rows"), new)
            return carry

        mapped = jax.shard_map(chain, mesh=self.mesh, in_specs=(P(), P("rows"), P()), out_specs=P(),
                               check_vma=False)
        return mapped(init, rows, params)


def row_devices(n_rows: int, devices=None, block: int = 1) -> list:
    """The devices to split ``n_rows`` over: the most of ``devices`` whose count divides ``n_rows``
    into whole blocks of ``block`` rows.

    Examples
    --------
    >>> len(row_devices(10, jax.devices()[:1]))
    1
    """
    devices = list(devices) if devices is not None else jax.devices()
    k = max(c for c in range(1, len(devices) + 1) if n_rows % (c * block) == 0)
    return devices[:k]


def row_sums_for(n_rows: int, devices=None):
    """How the sums over ``n_rows`` padded rows are taken: all at once below :data:`ROW_SHARD_MIN`
    rows, else in fixed blocks, split over the devices when there are several.

    Examples
    --------
    >>> row_sums_for(1000)
    WholeRows()
    """
    if n_rows < ROW_SHARD_MIN:
        return WHOLE_ROWS
    block = row_block(n_rows)
    devices = row_devices(n_rows, DEVICES if devices is None else devices, block)
    if len(devices) == 1:
        return RowBlocks(block)
    return ShardedRowBlocks(block, Mesh(np.asarray(devices), ("rows",)))


def _put(x, sharding):
    """A global array from a host array that every process holds in full."""
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def row_cross_products(pattern: dict, w, y, offset, dims, devices=None) -> dict:
    """:func:`~lmmjax.objective.crossprod.cross_products` of a model's padded rows, the sums taken as
    :func:`row_sums_for` says (split over ``devices``, default :data:`DEVICES`, when there are several).

    Returns the values on the first device.

    Examples
    --------
    >>> vals = row_cross_products(pat.arrays, pat.pad(w), pat.pad(y), pat.pad(off), dims)  # doctest: +SKIP
    """
    sums = row_sums_for(len(w), devices)
    if not isinstance(sums, ShardedRowBlocks):
        return cross_products_jit(pattern, w, y, offset, dims, sums)
    mesh = sums.mesh
    rows, rep = NamedSharding(mesh, P("rows")), NamedSharding(mesh, P())
    placed = {k: _put(v, rows if k in ROW_KEYS else rep) for k, v in pattern.items()}
    # a mesh has no description for the program store, so this runs as a plain jax.jit (program_cache)
    out = cross_products_jit(placed, _put(w, rows), _put(y, rows), _put(offset, rows), dims, sums)
    return jax.device_put(out, mesh.devices.flat[0])
