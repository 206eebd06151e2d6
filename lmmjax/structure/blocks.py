"""Random-effect blocks, the θ layout and the cross-products computed once.

Terms on the same grouping factor are amalgamated into one block whose
relative covariance factor T is block-diagonal in the terms (so ``(x || g)``
is one block with a diagonal T). Blocks are ordered by number of levels,
largest first. The first block's part of ``Λ'Z'ZΛ + I`` is block-diagonal
(one small p×p matrix per level); all later blocks are handled as one dense
matrix after the Schur complement of the first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import ModelSpecError
from ..formula.model_frame import ModelFrame


@dataclass(frozen=True)
class Block:
    """Random effects of one grouping factor.

    Attributes
    ----------
    group : str
        Grouping-factor name.
    columns : list of str
        Column names (terms concatenated in formula order).
    Z : ndarray (n, p)
    codes : ndarray (n,)
    levels : list of str
    theta_index : ndarray (p, p) of int
        For each entry of the lower-triangular T, 1 + its index in θ, or 0 for
        a structural zero.
    term_slices : list of (term position, column slice)
    """

    group: str
    columns: list
    Z: np.ndarray
    codes: np.ndarray
    levels: list
    theta_index: np.ndarray
    term_slices: list

    @property
    def p(self) -> int:
        return len(self.columns)

    @property
    def nlevels(self) -> int:
        return len(self.levels)


@dataclass(frozen=True)
class ThetaLayout:
    """How θ maps to model terms (formula order) and which entries are bounded.

    Residual-structure parameters (:mod:`lmmjax.structure.residual`) follow
    the entries of the T factors: term, row and column −1, unbounded (they
    are optimised on an unconstrained scale: atanh φ for AR(1), logit φ for
    CAR(1), log SD ratios; :func:`lmmjax.objective.residual.natural_params`),
    and their kind in ``residual_kinds``.
    """

    lower: np.ndarray  # lower bound per θ entry: 0 on diagonals of T, -inf elsewhere
    names: list  # e.g. "Subject: Intercept", "Subject: Days,Intercept"
    term_of: np.ndarray  # term position of each θ entry (−1: residual parameter)
    row: np.ndarray  # row of the entry within its term's T
    col: np.ndarray  # column of the entry within its term's T
    residual_kinds: tuple = ()  # kinds of the trailing residual parameters ("ar1_phi", "log_sd_ratio", ...)

    @property
    def size(self) -> int:
        return len(self.lower)

    @property
    def n_t(self) -> int:
        """Entries of the T factors (the θ of lme4), before any residual parameters."""
        return self.size - len(self.residual_kinds)

    @property
    def kind(self) -> np.ndarray:
        """What each parameter is: "diagonal" (of a T, ≥ 0), "offdiagonal" (free), or a residual kind."""
        t_kind = np.where(self.row[: self.n_t] == self.col[: self.n_t], "diagonal", "offdiagonal")
        if not self.residual_kinds:
            return t_kind
        return np.concatenate([t_kind.astype(object), np.array(self.residual_kinds, dtype=object)])

    @property
    def diagonal(self) -> np.ndarray:
        """Mask of the diagonal entries of the T factors (variance parameters, bounded at 0)."""
        return (self.row == self.col) & (self.term_of >= 0)

    @property
    def residual(self) -> np.ndarray:
        """Mask of the residual-structure parameters."""
        return self.term_of < 0

    def with_residual(self, names: list, kinds: tuple) -> "ThetaLayout":
        """This layout with residual parameters appended (unbounded; their names and kinds)."""
        k = len(kinds)
        return ThetaLayout(np.concatenate([self.lower, np.full(k, -np.inf)]), list(self.names) + list(names),
                           np.concatenate([self.term_of, np.full(k, -1)]), np.concatenate([self.row, np.full(k, -1)]),
                           np.concatenate([self.col, np.full(k, -1)]), tuple(self.residual_kinds) + tuple(kinds))

    @property
    def bounds(self) -> list:
        """(lower, upper) per parameter in scipy's form (None = unbounded)."""
        return [(lo if np.isfinite(lo) else None, None) for lo in self.lower]


def build_blocks(mf: ModelFrame):
    """Amalgamate terms by grouping factor, order blocks, lay out θ.

    Returns
    -------
    blocks : list of Block, largest number of levels first
    layout : ThetaLayout
    """
    lower, names, term_of, rows, cols = [], [], [], [], []
    term_theta = []  # per term: (p, p) array of 1 + θ index or 0
    for t, tm in enumerate(mf.terms):
        p = tm.Z.shape[1]
        idx = np.zeros((p, p), dtype=np.int64)
        for c in range(p):
            for r in range(c, p):
                idx[r, c] = len(lower) + 1
                lower.append(0.0 if r == c else -np.inf)
                term_of.append(t)
                rows.append(r)
                cols.append(c)
                names.append(
                    f"{tm.group}: {tm.columns[r]}" if r == c
                    else f"{tm.group}: {tm.columns[r]},{tm.columns[c]}"
                )
        term_theta.append(idx)
    layout = ThetaLayout(np.array(lower), names, np.array(term_of), np.array(rows), np.array(cols))

    by_group: dict[str, list[int]] = {}
    for t, tm in enumerate(mf.terms):
        by_group.setdefault(tm.group, []).append(t)
    blocks = []
    for group, members in by_group.items():
        columns, zs, slices = [], [], []
        for t in members:
            tm = mf.terms[t]
            start = len(columns)
            columns += tm.columns
            zs.append(tm.Z)
            slices.append((t, slice(start, len(columns))))
        if len(set(columns)) != len(columns):
            raise ModelSpecError(
                f"Grouping factor {group!r} has the same random-effect column twice "
                f"({columns}); each column may appear in only one term per group."
            )
        p = len(columns)
        idx = np.zeros((p, p), dtype=np.int64)
        for t, sl in slices:
            idx[sl, sl] = term_theta[t]
        first = mf.terms[members[0]]
        blocks.append(Block(group, columns, np.column_stack(zs), first.codes, first.levels, idx, slices))
    blocks.sort(key=lambda b: -b.nlevels)  # stable: ties keep formula order
    return blocks, layout


def rest_offsets(blocks: list) -> list:
    """Start of each later block's random effects in the dense (rest) part."""
    offsets, start = [], 0
    for b in blocks[1:]:
        offsets.append(start)
        start += b.nlevels * b.p
    return offsets


def sparse_z1(block: Block, rows: np.ndarray | None = None) -> sp.csr_matrix:
    """A block's Z (rows × nlevels·p, columns level-major) as a sparse matrix.

    ``rows`` selects observations (default: all).
    """
    Z, codes = (block.Z, block.codes) if rows is None else (block.Z[rows], block.codes[rows])
    m, p = Z.shape
    return sp.csr_matrix(
        (Z.ravel(), (np.repeat(np.arange(m), p), (codes[:, None] * p + np.arange(p)).ravel())),
        shape=(m, block.nlevels * p),
    )


def sparse_z(blocks: list, n: int) -> sp.csr_matrix:
    """The rest blocks' Z as a sparse n × q2 matrix (columns level-major)."""
    offsets = rest_offsets(blocks)
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    if q2 == 0:
        return sp.csr_matrix((n, 0))
    rows, cols, vals = [], [], []
    for off, b in zip(offsets, blocks[1:]):
        for c in range(b.p):
            rows.append(np.arange(n))
            cols.append(off + b.codes * b.p + c)
            vals.append(b.Z[:, c])
    Z2 = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, q2)
    )
    Z2.eliminate_zeros()
    return Z2
