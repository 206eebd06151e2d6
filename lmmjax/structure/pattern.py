"""The sparsity pattern of ``[Z X y]'W[Z X y]``, built once on the host.

Everything here depends on the design only (grouping codes, which rows
touch which random effects), never on row weights, the response or the
offset. The values of the cross-products are computed from this pattern in
JAX by :func:`lmmjax.objective.crossprod.cross_products`, so that
reweighting rows (PIRLS, deletion refits, power-curve subsets), replacing
the response (bootstrap, power) or transforming rows (residual structures)
is one jittable call.

Rows are padded to a rounded length (:func:`padded_length`) with zero
weight, so data sets of similar size share compiled code: the number of
rows is not part of the compile key (:class:`~lmmjax.structure.crossprod.Dims`).

Arrays of a :class:`Pattern` (``n`` = padded rows, ``k2`` = random-effect
columns per row over the later blocks):

- ``X`` (n, p), ``Z1`` (n, p1), ``codes1`` (n,): fixed effects and the first
  block's columns and level per row;
- ``z2_col`` (n, k2), ``z2_val`` (n, k2): the later blocks' nonzeros per row
  (column in the later part, value);
- ``slot22`` (n, k2, k2): where each product ``z2_a z2_b`` of a row lands
  in ``A22`` (flat index of the dense q2 × q2 matrix, or of the
  (l2, p2, p2) per-level array of a nested later block);
- ``row_entry`` (n, k2): the entry of Z₂ᵀZ₁ (a pair (later column r, level
  j of block 1)) that each nonzero of a row contributes to;
- ``ent_row``, ``ent_level``: each entry's later column and level, sorted
  by level then row, with spare zero entries at the end;
- ``pair_e1``, ``pair_e2``, ``pair_level``, ``pair_target``: for each level,
  every pair of its entries (r1 ≥ r2) and the slot of the Schur update it
  feeds (see :mod:`lmmjax.objective.deviance`);
- ``slot21`` (n, k2): for the dense ("matmul") Schur update, the flat index
  ``r · l1 + j`` of each nonzero in the dense Z₂ᵀZ₁.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import rest_offsets


#: Pattern arrays with one row per (padded) data row: split over devices by row sharding.
ROW_KEYS = ("X", "Z1", "codes1", "z2_col", "z2_val", "slot22", "row_entry", "slot21")


def padded_length(k: int) -> int:
    """Round ``k`` up to 1, 1.25, 1.5 or 1.75 times a power of two (at least 8)."""
    if k <= 8:
        return 8
    base = 1 << (int(k).bit_length() - 1)
    for f in (1.0, 1.25, 1.5, 1.75, 2.0):
        if k <= int(base * f):
            return int(base * f)
    return 2 * base


def pad_rows(a, length: int, fill=0):
    """``a`` with rows appended (``fill``) up to ``length`` rows."""
    a = np.asarray(a)
    if len(a) == length:
        return a
    pad_shape = (length - len(a),) + a.shape[1:]
    return np.concatenate([a, np.full(pad_shape, fill, dtype=a.dtype)])


@dataclass(frozen=True, eq=False)
class Pattern:
    """Host-side pattern of a model's cross-products (see the module docstring).

    Attributes
    ----------
    nobs : int
        Real rows (the rest are padding with zero weight).
    arrays : dict of ndarray
        Row-level design arrays and index arrays, padded.
    n_entries : int
        Real entries of Z₂ᵀZ₁ (the rest of ``ent_*`` are spare zeros).
    """

    nobs: int
    arrays: dict
    n_entries: int

    @property
    def n_rows(self) -> int:
        """Padded number of rows."""
        return len(self.arrays["X"])

    def pad(self, v, fill=0.0) -> np.ndarray:
        """A per-row vector (or rows × k array) padded to the pattern's rows."""
        return pad_rows(np.asarray(v, dtype=float), self.n_rows, fill)


def rest_columns(blocks: list, n: int):
    """Per row: the later blocks' nonzero columns and values, and each column's block position."""
    offsets = rest_offsets(blocks)
    cols, vals, which = [], [], []
    for k, (off, b) in enumerate(zip(offsets, blocks[1:])):
        for c in range(b.p):
            cols.append(off + b.codes.astype(np.int64) * b.p + c)
            vals.append(b.Z[:, c])
            which.append(k)
    if not cols:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0)), []
    return np.column_stack(cols), np.column_stack(vals).astype(float), which


def entries(z2_col: np.ndarray, codes1: np.ndarray, q2: int):
    """Entries of Z₂ᵀZ₁ (later column, level), sorted by level then column, and each nonzero's entry."""
    key = codes1.astype(np.int64)[:, None] * q2 + z2_col
    ukeys, inv = np.unique(key.ravel(), return_inverse=True)
    return (ukeys % q2).astype(np.int64), (ukeys // q2).astype(np.int64), inv.reshape(key.shape)


def _pairs(ent_level: np.ndarray, ent_row: np.ndarray, l1: int):
    """Every pair (e1, e2) of entries of one level with row(e1) ≥ row(e2), sorted by level."""
    starts = np.searchsorted(ent_level, np.arange(l1 + 1))
    counts = np.diff(starts)
    e1_list, e2_list = [], []
    for size in np.unique(counts):
        if size == 0:
            continue
        levs = np.nonzero(counts == size)[0]
        ii, jj = np.tril_indices(size)
        base = starts[levs][:, None]
        e1_list.append((base + ii[None, :]).ravel())
        e2_list.append((base + jj[None, :]).ravel())
    e1 = np.concatenate(e1_list) if e1_list else np.zeros(0, np.int64)
    e2 = np.concatenate(e2_list) if e2_list else np.zeros(0, np.int64)
    order = np.argsort(ent_level[e1], kind="stable")
    return e1[order], e2[order]


def build_pattern(blocks: list, X: np.ndarray, kind, pred: np.ndarray | None = None) -> Pattern:
    """The pattern of ``[Z X y]'W[Z X y]`` for blocks ordered largest first.

    ``kind`` is the later blocks' :mod:`block kind <lmmjax.structure.kinds>`;
    it says which of the arrays it needs (entries and pairs, a dense Z₂ᵀZ₁,
    a nested per-level A22).

    ``pred`` (row → predecessor row, for AR residuals whose whitened rows
    mix two rows) appends to each row its predecessor's later-block columns
    with value 0 (``k2`` doubles); the whitening fills in their values
    (:mod:`lmmjax.objective.residual`). Block 1 must be constant within the
    AR groups, so a row and its predecessor share its level.
    """
    n, p = X.shape
    n_pad = padded_length(n)
    b1 = blocks[0]
    l1 = b1.nlevels
    arrays = dict(
        X=pad_rows(np.asarray(X, float), n_pad),
        Z1=pad_rows(np.asarray(b1.Z, float), n_pad),
        codes1=pad_rows(b1.codes.astype(np.int32), n_pad),
    )
    n_entries = 0
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    if q2 > 0:
        z2_col, z2_val, _ = rest_columns(blocks, n)
        if pred is not None:
            z2_col = np.concatenate([z2_col, z2_col[pred]], axis=1)
            z2_val = np.concatenate([z2_val, np.zeros_like(z2_val)], axis=1)
        arrays["z2_col"] = pad_rows(z2_col.astype(np.int32), n_pad)
        arrays["z2_val"] = pad_rows(z2_val, n_pad)
        arrays["slot22"] = pad_rows(kind.a22_slots(blocks, z2_col).astype(np.int64), n_pad)
        if kind.uses_dense_a21:
            arrays["slot21"] = pad_rows((z2_col * l1 + b1.codes[:, None]).astype(np.int64), n_pad)
        if kind.uses_pairs:
            ent_row, ent_level, row_entry = entries(z2_col, b1.codes, q2)
            n_entries = len(ent_row)
            n_ent = padded_length(n_entries + 1)  # at least one spare zero entry for padding
            if hasattr(kind, "entry_pairs"):
                e1, e2 = kind.entry_pairs(blocks, ent_row, ent_level, l1)
            else:
                e1, e2 = _pairs(ent_level, ent_row, l1)
            if hasattr(kind, "head_arrays"):
                arrays.update(kind.head_arrays(blocks, ent_row, ent_level, n_entries, l1))
            target = kind.pair_targets(blocks, ent_row[e1], ent_row[e2])
            n_pair = padded_length(len(e1))
            spare = n_entries  # a zero entry: padded rows and padded pairs point here
            arrays.update(
                row_entry=pad_rows(row_entry.astype(np.int32), n_pad, spare),
                ent_row=pad_rows(ent_row.astype(np.int32), n_ent),
                ent_level=pad_rows(ent_level.astype(np.int32), n_ent, l1 - 1),
                pair_e1=pad_rows(e1.astype(np.int32), n_pair, spare),
                pair_e2=pad_rows(e2.astype(np.int32), n_pair, spare),
                # padding: level l1 - 1 keeps the level order; a spare target slot
                pair_level=pad_rows(ent_level[e1].astype(np.int32), n_pair, l1 - 1),
                pair_target=pad_rows(target.astype(np.int32 if kind.n_slots(blocks) < 2**31 - 1 else np.int64),
                                     n_pair, kind.n_slots(blocks)),
            )
    return Pattern(nobs=n, arrays=arrays, n_entries=n_entries)
