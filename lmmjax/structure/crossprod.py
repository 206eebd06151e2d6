"""The static sizes of a model structure (:class:`Dims`, the compile key) and
the structure arrays the objective reads besides the cross-product values.

The cross-product *values* are computed in JAX from the pattern
(:mod:`lmmjax.structure.pattern`) by :mod:`lmmjax.objective.crossprod`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .buckets import bucket_dims, padded_structure
from .kinds import choose_kind
from .pattern import Pattern, build_pattern
from .residual import residual_dims

#: Pattern arrays the factorization reads directly (the rest feed the cross-products only).
FACTOR_KEYS = ("ent_row", "ent_level", "pair_level", "pair_target")


@dataclass(frozen=True)
class Dims:
    """Static sizes of a model structure; the key for compiled code.

    The number of rows is not part of it: rows are padded to a rounded
    length with zero weight, so data sets of different sizes with the same
    blocks share compiled programs.
    """

    p: int
    l1: int
    p1: int
    q2: int
    kmax: int
    n_theta: int
    reml: bool
    kind: object  # a block kind from lmmjax.structure.kinds (hashable)
    a22_shape: tuple = (0, 0)
    residual: object = None  # a ResidualDims (lmmjax.structure.residual) or None


@dataclass(frozen=True, eq=False)
class Structure:
    """Everything about a model that is fixed before any row weight or response is known."""

    dims: Dims
    pattern: Pattern
    index: dict  # θ-map and factor index arrays (lam_index, lam_weight, T1_index, T2_index, ent_*, pair_*)
    #: the same structure padded to its shape bucket (small models; :mod:`lmmjax.structure.buckets`), or None
    bucket: "Structure | None" = None


def build_structure(blocks: list, X: np.ndarray, reml: bool, n_theta: int, schur="auto",
                    residual=None, bucket: bool = True) -> Structure:
    """Choose the block kind, build the pattern and the index arrays.

    ``schur`` is passed to :func:`~lmmjax.structure.kinds.choose_kind`
    ("auto", "pairs", "matmul", "tiled", "iterative"), or is a block kind object to use.
    With ``bucket`` (default) a small model also gets a copy padded to its
    shape bucket (``Structure.bucket``), which the fit runs on so that one
    compiled program serves every model of the bucket.

    ``residual`` (:class:`~lmmjax.structure.residual.ResidualRows`) adds a
    residual covariance structure: ``n_theta`` then counts the T entries
    only, and when a later block is not constant within the AR groups the
    pattern carries each row's predecessor's later-block columns too (a
    dense kind is used then).

    Examples
    --------
    >>> structure = build_structure(blocks, mf.X, reml=True, n_theta=layout.size)  # doctest: +SKIP
    """
    doubled = residual is not None and not all(residual.constant_within_groups(b.codes) for b in blocks[1:])
    kind = (choose_kind(blocks, schur, allow_nested=not doubled, allow_iterative=residual is None)
            if isinstance(schur, str) else schur)
    if hasattr(kind, "check_structure"):  # a kind that supports only some designs refuses the others
        kind.check_structure(blocks, residual)
    b1 = blocks[0]
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    pattern = build_pattern(blocks, X, kind, pred=residual.pred if doubled else None)
    index = dict(T1_index=b1.theta_index.astype(np.int32), **kind.index_arrays(blocks))
    keys = FACTOR_KEYS + tuple(getattr(kind, "factor_keys", ()))
    index.update({k: pattern.arrays[k] for k in keys if k in pattern.arrays})
    kmax = index["lam_index"].shape[1]
    a22_shape = tuple(kind.a22_shape(blocks)) if q2 > 0 else (0, 0)
    dims = Dims(p=X.shape[1], l1=b1.nlevels, p1=b1.p, q2=q2, kmax=kmax, n_theta=n_theta, reml=bool(reml),
                kind=kind, a22_shape=a22_shape,
                residual=residual_dims(residual, n_theta, sum(b.p for b in blocks[1:]), doubled))
    structure = Structure(dims=dims, pattern=pattern, index=index)
    padded = bucket_dims(dims) if bucket and residual is None else None  # residual structures: exact sizes
    if padded is None:
        return structure
    return replace(structure, bucket=padded_structure(structure, padded))
