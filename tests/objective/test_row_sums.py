"""Sums over rows in fixed blocks (lmmjax.objective.row_sums) give the all-rows cross-products.

The blocked sums are what every model from ``ROW_SHARD_MIN`` rows uses, on
one device or several (tests/objective/test_row_sharding.py checks that the
two are identical). Here: blocked = all rows at once to rounding (1e-13
relative), for each block kind; the block size and device split rules.
"""
import jax
import numpy as np
import pandas as pd
import pytest

import lmmjax.objective.sharded_rows as sr
from lmmjax.model import build_model
from lmmjax.objective.crossprod import cross_products_jit
from lmmjax.objective.row_sums import WHOLE_ROWS, RowBlocks, WholeRows, row_block
from lmmjax.structure.pattern import padded_length


def _data(n=3000, seed=2):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 150, n), rng.integers(0, 40, n)
    c = a // 10  # c nests a
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.8, 150)[a] + rng.normal(0, 0.6, 40)[b] + rng.normal(size=n)
    return pd.DataFrame(dict(y=y + 100, x=x * 5 - 2, a=a.astype(str), b=b.astype(str), c=c.astype(str),
                             w=rng.uniform(0.2, 3, n), off=rng.normal(0, 0.2, n)))


@pytest.mark.parametrize("formula", ["y ~ x + (1 + x | a) + (1 | b)",   # crossed: a dense later block
                                     "y ~ x + (1 | a) + (1 | c)",       # c nests a: the nested kind
                                     "y ~ x + (x || b)"])                # one block
def test_blocked_sums_equal_all_rows_at_once(formula):
    m = build_model(formula, _data(), weights="w", offset="off")
    pat, dims = m.structure.pattern, m.structure.dims
    args = (pat.arrays, pat.pad(m.weights), pat.pad(m.y), pat.pad(m.offset), dims)
    block = row_block(pat.n_rows)
    assert pat.n_rows % block == 0 and pat.n_rows // block >= 64
    whole, blocked = cross_products_jit(*args, WHOLE_ROWS), cross_products_jit(*args, RowBlocks(block))
    assert set(whole) == set(blocked)
    for k in whole:
        u, v = np.asarray(whole[k]), np.asarray(blocked[k])
        assert u.shape == v.shape, k
        scale = max(1.0, float(np.max(np.abs(u)))) if u.size else 1.0
        assert np.max(np.abs(u - v), initial=0.0) <= 1e-13 * scale, k


def test_block_size_divides_the_rows_for_any_device_count_up_to_64():
    for n in (200_000, 1_000_000, 10_000_000, 32_000_204):
        rows = padded_length(n)
        block = row_block(rows)
        assert 512 <= block <= 16_384 and block & (block - 1) == 0
        for devices in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64):
            if rows % devices == 0:
                assert (rows // devices) % block == 0, (n, devices)
    assert row_block(6144) == 32


def test_large_models_take_their_sums_in_blocks_on_one_device():
    one = jax.devices()[:1]
    assert isinstance(sr.row_sums_for(sr.ROW_SHARD_MIN - 1, one), WholeRows)
    n = padded_length(sr.ROW_SHARD_MIN)
    assert sr.row_sums_for(n, one) == RowBlocks(row_block(n))
    assert len(sr.row_devices(48, list(range(8)), block=8)) == 6  # 48 rows in blocks of 8: six devices
