"""Replicates per compiled chunk, shared by every batched refit (LMM and GLMM).

The chunk size is part of a compiled program's shape, so runs of different
lengths use one of two sizes and share one program per model structure:
64 replicates for small runs, 512 for the rest (the last chunk is padded).

Examples
--------
>>> shared_chunk(10), shared_chunk(1000)
(64, 512)
>>> chunk_rows(1000, 512, 1)[-3:]  # the second chunk, padded with its last replicate
array([999, 999, 999])
"""
from __future__ import annotations

import math

import numpy as np

SMALL_CHUNK, LARGE_CHUNK = 64, 512  # the chunk sizes runs share, so that one compiled program serves them


def shared_chunk(n: int) -> int:
    """Replicates per chunk before any memory bound: 64 for small runs, else 512.

    The chunk size is part of the compiled program's shape, so every run with
    more than 64 replicates (bootstrap(1000), bootstrap(2000), power(nsim=…))
    shares one program per model structure, in a process and through the
    persistent cache (``python -m lmmjax warmup`` compiles it once).
    """
    return SMALL_CHUNK if n <= SMALL_CHUNK else LARGE_CHUNK


def round_up(size: int, unit: int) -> int:
    """``size`` rounded up to a multiple of ``unit``."""
    return int(math.ceil(size / unit) * unit)


def n_chunks(n: int, size: int) -> int:
    """Chunks of ``size`` replicates needed for ``n`` (at least one)."""
    return max(1, math.ceil(n / size))


def chunk_rows(n: int, size: int, c: int) -> np.ndarray:
    """Replicate numbers of chunk ``c``: ``size`` of them, the tail padded by repeating the last one."""
    start, stop = c * size, min(n, (c + 1) * size)
    return np.minimum(np.arange(start, start + size), max(stop - 1, 0))
