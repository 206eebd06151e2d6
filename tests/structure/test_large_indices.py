"""Slot indices of a dense later block past 2³¹ entries (q2 ≥ 46,341) are 64-bit and exact.

A dense q2 × q2 block of q2 = 50,000 holds 2.5e9 entries: the flat slot of
entry (i, j) is i·q2 + j, which overflows 32-bit integers. The host-side
slot arithmetic is checked here on a few indices (the block itself, 20 GB,
is never formed in a test).
"""
from types import SimpleNamespace

import numpy as np

from lmmjax.structure.kinds import DenseLaterBlocks, TiledLaterBlocks


def test_dense_slots_past_2_31_are_exact_64_bit():
    q2 = 50_000
    blocks = [SimpleNamespace(nlevels=10, p=1), SimpleNamespace(nlevels=q2, p=1)]
    for kind in (DenseLaterBlocks(), TiledLaterBlocks()):
        assert kind.n_slots(blocks) == q2 * q2 > 2**31
        z2_col = np.array([[q2 - 1], [12_345]], dtype=np.int64)
        slots = kind.a22_slots(blocks, z2_col)
        assert slots.dtype == np.int64
        assert slots[0, 0, 0] == (q2 - 1) * q2 + (q2 - 1) and slots[1, 0, 0] == 12_345 * q2 + 12_345
        r1, r2 = np.array([q2 - 1, 3], np.int64), np.array([q2 - 2, 40_000], np.int64)
        assert list(kind.pair_targets(blocks, r1, r2)) == [(q2 - 1) * q2 + q2 - 2, 3 * q2 + 40_000]
