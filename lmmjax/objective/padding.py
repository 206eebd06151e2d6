"""From a structure padded to its shape bucket back to the true sizes: the one place that does it.

A small model is fitted on a copy of its structure padded to a shape bucket
(:mod:`lmmjax.structure.buckets`), so that its programs are shared with
every model of the bucket. The padding is invisible above this module:

- :func:`pad_theta` appends θ entries fixed at 0 (no index array refers to
  them) before a padded program is called; the optimizer and every record
  see the true θ;
- :func:`unpad_factor` and :func:`unpad_estimates` take the true rows and
  columns of a factorization and of the estimates (β̂, cov(β̂), M11⁻¹, the
  later blocks' factor);
- :func:`unpad_arrays` makes the model's cross-product arrays at the true
  sizes from the padded ones (no program of the true sizes is compiled).

Padded fixed-effect columns sit after the real ones and before y, padded
levels and later random effects after the real ones, with no coupling to
them, so each of these is a slice.
"""
from __future__ import annotations

import numpy as np

from ..structure.buckets import xy_positions
from .deviance import Factor
from .estimates import Estimates, estimates_numpy


def pad_theta(theta, dims) -> np.ndarray:
    """θ (numpy) with zeros appended up to ``dims.n_theta`` entries.

    Examples
    --------
    >>> pad_theta(np.array([1.0, 0.5, 2.0]), dims)  # doctest: +SKIP
    array([1. , 0.5, 2. , 0. ])
    """
    theta = np.asarray(theta, float)
    extra = dims.n_theta - theta.shape[-1]
    if extra <= 0:  # not padded (a residual structure's parameters follow the T entries: n_theta counts those)
        return theta
    return np.concatenate([theta, np.zeros(theta.shape[:-1] + (extra,))], axis=-1)


def varpar_positions(n_theta: int, dims) -> np.ndarray:
    """Positions of the true entries of ``(θ, σ)`` in ``(pad_theta(θ, dims), σ)`` (all when θ is not padded)."""
    return np.r_[np.arange(n_theta), max(n_theta, dims.n_theta)]


def _later(value, exact, bucket):
    """Rows (and columns, when square) of a later-block array at the true sizes."""
    if len(bucket.a22_shape) == 3:  # per level of a nested later block
        return value[: exact.a22_shape[0]]
    if value.ndim == 2 and value.shape[0] == value.shape[1] == bucket.q2:
        return value[: exact.q2, : exact.q2]
    return value[: exact.q2]


def unpad_factor(f: Factor, exact, bucket) -> Factor:
    """A (numpy) factorization at the padded sizes cut to the true sizes."""
    if bucket is exact:
        return f
    xy = xy_positions(exact, bucket)
    rest = f.rest
    if rest is not None:
        rest = type(rest)(*[_later(np.asarray(v), exact, bucket) for v in rest])
    return f._replace(SXX=np.asarray(f.SXX)[np.ix_(xy, xy)], LXX=np.asarray(f.LXX)[np.ix_(xy, xy)],
                      M11inv=np.asarray(f.M11inv)[: exact.l1], W=np.asarray(f.W)[: exact.l1], rest=rest)


def unpad_estimates(est: Estimates, exact, bucket) -> Estimates:
    """:class:`~lmmjax.objective.estimates.Estimates` at the padded sizes cut to the true ones."""
    if bucket is exact:
        return est
    p = exact.p
    return est._replace(beta=np.asarray(est.beta)[..., :p], vcov_unscaled=np.asarray(est.vcov_unscaled)[..., :p, :p])


def unpad_arrays(padded: dict, index: dict, exact, bucket) -> dict:
    """Cross-product arrays at the true sizes from those of the padded structure.

    ``index`` holds the true structure's index arrays. Every value array the
    cross-products make must be listed here: an unknown one raises rather
    than pass at the wrong size.
    """
    xy = xy_positions(exact, bucket)
    l1, q2 = exact.l1, exact.q2
    cut = {
        "A11": lambda a: a[:l1],
        "A1X": lambda a: a[:l1][:, :, xy],
        "AXX": lambda a: a[np.ix_(xy, xy)],
        "xy_map": lambda a: a[np.ix_(xy, xy)],
        "A22": lambda a: _later(a, exact, bucket),
        "A2X": lambda a: a[:q2][:, xy],
        "A21d": lambda a: a[:q2, :l1],
    }
    same = ("nobs", "sum_log_w", "n_fixed", "ent_a", "pair_coef")
    out = {}
    for key, value in padded.items():
        if key in index:
            continue
        if key in cut:
            out[key] = cut[key](np.asarray(value))
        elif key in same:
            out[key] = value
        else:
            raise KeyError(f"unpad_arrays does not know how to cut the cross-product {key!r} to the true sizes: "
                           "add it here, or build the structure with bucket=False")
    out.update(index)
    return out


def estimates_at_true_sizes(theta, arrays, dims, exact):
    """(Factor, Estimates) as numpy values at θ (true size) for arrays at ``dims`` (maybe a
    shape bucket), cut to the true sizes ``exact``.

    Examples
    --------
    >>> f, est = estimates_at_true_sizes(theta, model.fit_arrays, model.fit_dims, model.dims)  # doctest: +SKIP
    """
    f, est = estimates_numpy(pad_theta(theta, dims), arrays, dims)
    return unpad_factor(f, exact, dims), unpad_estimates(est, exact, dims)
