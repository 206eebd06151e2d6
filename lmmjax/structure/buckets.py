"""Shape buckets: small model structures padded so that one compiled program serves many models.

Every size in :class:`~lmmjax.structure.crossprod.Dims` is part of the key
of the objective's compiled programs. A small model is therefore fitted on a
copy of its structure padded to a *bucket* — sizes rounded up to a power of
two with a minimum — so that ``Reaction ~ Days + (Days | Subject)``,
``Reaction ~ Days + (Days || Subject)`` and a data set with 20 subjects all
run the same programs. The padding changes no number:

- levels of block 1 (``l1``) without rows: A11 = 0, so M11 = I and log|M11| = 0,
  and their A1X = 0 couples them to nothing;
- fixed-effect columns (``p``) of zeros, placed after the real ones: the
  cross-products give them an identity diagonal and no coupling
  (``pattern["x_pad"]``, :func:`lmmjax.objective.crossprod.design_products`),
  so their rows of the [X y] factor are the identity and the REML degrees of
  freedom use the true number (``arrays["n_fixed"]``);
- later random effects (``q2``: dense columns, or levels of a nested block)
  with no rows and a zero Λ: their part of S is the identity;
- θ entries (``n_theta``) that no index array refers to, fixed at 0 and
  never seen by the optimizer (:mod:`lmmjax.objective.padding` pads θ and
  strips the gradient);
- ``kmax`` (nonzeros per column of Λ₂) with zero weights.

Large models keep their exact sizes: their compile time is small beside
their run time, and padding would cost real arithmetic.

The padded copy is used by the fit only (:attr:`lmmjax.model.Model.fit_arrays`);
everything after the fit sees the true sizes.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

MIN_LEVELS = 32  # block-1 levels
MIN_FIXED = 4  # fixed-effect columns
MIN_THETA = 4  # θ entries
MIN_LATER = 8  # later random effects (dense columns or nested levels)

MAX_LEVELS = 1024  # beyond these sizes a model keeps its exact shapes
MAX_FIXED = 32
MAX_THETA = 32
MAX_LATER = 256


def round_up(k: int, minimum: int = 1) -> int:
    """The smallest power of two ≥ ``max(k, minimum)``.

    Examples
    --------
    >>> round_up(18, 32), round_up(33, 32), round_up(3)
    (32, 64, 4)
    """
    k = max(int(k), int(minimum), 1)
    return 1 << (k - 1).bit_length()


def bucket_dims(dims):
    """The padded :class:`~lmmjax.structure.crossprod.Dims` of a small model, or None.

    None when the model is not small, its block kind cannot be padded (a
    kind without ``padded_later``) or it has a residual structure.
    """
    pad_later = getattr(dims.kind, "padded_later", None)
    if pad_later is None or getattr(dims, "residual", None) is not None:
        return None
    if dims.l1 > MAX_LEVELS or dims.p > MAX_FIXED or dims.n_theta > MAX_THETA or dims.q2 > MAX_LATER:
        return None
    q2, kmax, a22_shape = pad_later(dims, MIN_LATER)
    return replace(dims, p=round_up(dims.p, MIN_FIXED), l1=round_up(dims.l1, MIN_LEVELS),
                   n_theta=round_up(dims.n_theta, MIN_THETA), q2=q2, kmax=kmax, a22_shape=a22_shape)


def pad_columns(X: np.ndarray, p: int) -> np.ndarray:
    """X with zero columns appended up to ``p`` columns."""
    return np.pad(X, ((0, 0), (0, p - X.shape[1])))


def padded_structure(structure, bucket):
    """``structure`` padded to the sizes of ``bucket`` (a Dims from :func:`bucket_dims`).

    The pattern gains zero fixed-effect columns and the mask ``x_pad``; the
    block kind remaps what depends on the later blocks' sizes (slots of
    A22, targets of the Schur pairs, Λ₂'s gather arrays).
    """
    exact = structure.dims
    arrays = dict(structure.pattern.arrays)
    arrays["X"] = pad_columns(arrays["X"], bucket.p)
    arrays["x_pad"] = (np.arange(bucket.p) >= exact.p).astype(float)
    arrays, index = exact.kind.pad_pattern(arrays, dict(structure.index), exact, bucket)
    index.update({k: arrays[k] for k in index if k in arrays})  # index arrays taken from the pattern
    pattern = replace(structure.pattern, arrays=arrays)
    return replace(structure, dims=bucket, pattern=pattern, index=index)


def xy_positions(exact, bucket) -> np.ndarray:
    """Positions of the true columns of ``[X y]`` among the padded ones (X first, y last)."""
    return np.r_[np.arange(exact.p), bucket.p]
