"""How sums over data rows are taken: all rows at once, or fixed row blocks in order.

Every cross-product is a sum over rows (:mod:`lmmjax.objective.crossprod`).
Floating-point sums depend on their order. A fit must not depend on how many
devices its rows are split over, so a large model takes its sums in fixed
blocks of rows, one after another, whatever the devices: the result is then
the same to the last bit on one device and on several
(:class:`lmmjax.objective.sharded_rows.ShardedRowBlocks`).

A strategy has one method, ``total(step, init, rows, params)``: the carry
``init`` run through ``step(carry, rows, params) -> carry`` over the rows
(dict of arrays with rows first). ``step`` must add the rows' contributions
to the carry (``carry.at[index].add(...)``, ``carry + ...``): with
:class:`WholeRows` it is called once with every row, with :class:`RowBlocks`
once per block.

Examples
--------
>>> import jax.numpy as jnp
>>> step = lambda c, r, p: c + jnp.sum(r["w"])
>>> float(RowBlocks(2).total(step, jnp.zeros(()), {"w": jnp.arange(4.0)}))
6.0
"""
from __future__ import annotations

from dataclasses import dataclass

from jax import lax


@dataclass(frozen=True)
class WholeRows:
    """Every row at once: XLA chooses the order of the sums (small models, batched refits)."""

    def total(self, step, init, rows: dict, params=()):
        """``step(init, rows, params)``."""
        return step(init, rows, params)


@dataclass(frozen=True)
class RowBlocks:
    """Blocks of ``block`` consecutive rows, added to the carry in row order (``lax.scan``).

    The number of rows must be a multiple of ``block``.
    """

    block: int

    def total(self, step, init, rows: dict, params=()):
        """The carry after every block, first to last."""
        blocks = {k: v.reshape(-1, self.block, *v.shape[1:]) for k, v in rows.items()}
        return lax.scan(lambda carry, b: (step(carry, b, params), None), init, blocks)[0]


WHOLE_ROWS = WholeRows()

ROW_BLOCK = 16_384  # rows per block, at most
MAX_ROW_SPLIT = 64  # blocks are small enough for rows split over this many devices (a power of two)


def row_block(n_rows: int) -> int:
    """Rows per block for ``n_rows`` padded rows: a power of two dividing ``n_rows / MAX_ROW_SPLIT``.

    Padded row counts are 4–7 times a power of two
    (:func:`lmmjax.structure.pattern.padded_length`), so any device count up to
    :data:`MAX_ROW_SPLIT` that divides the rows also divides them into whole blocks.

    Examples
    --------
    >>> row_block(1_048_576), row_block(6_144)
    (16384, 32)
    """
    power = n_rows & -n_rows  # the largest power of two dividing n_rows
    return int(max(1, min(ROW_BLOCK, power // MAX_ROW_SPLIT)))
