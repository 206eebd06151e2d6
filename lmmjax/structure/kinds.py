"""Kinds of the later random-effect blocks: one class per way of factoring them.

The first block (the grouping factor with most levels) is always one small
p1×p1 matrix per level. What follows its Schur complement depends on the
design, and each possibility is one class with the same small interface:

- host side: where each row's products land (:meth:`a22_slots`,
  :meth:`pair_targets`, :meth:`n_slots`) and which pattern arrays it needs
  (``uses_pairs``, ``uses_dense_a21``);
- JAX side: :meth:`factor` — the Schur complement S of the later blocks,
  log|S| and the quadratic form of ``[X y]`` through S⁻¹;
- :meth:`solve_jax` (S⁻¹ rhs in JAX, from the kept factor: PIRLS's modes);
- numpy side (after the fit): :meth:`solve` (S⁻¹ rhs),
  :meth:`inverse_diagonal_blocks` (the per-level diagonal blocks of S⁻¹),
  :meth:`inverse_matrix` (S⁻¹ itself, sparse where it is) and
  :meth:`inverse_quadratic_blocks` (diagonal blocks of MᵀS⁻¹M).

Kinds are frozen and hashable: they are part of the compile key
(:class:`~lmmjax.structure.crossprod.Dims`). A new backend (tiled, iterative,
GPU) is one more class, chosen in :func:`choose_kind`; the iterative kind
lives in :mod:`lmmjax.structure.iterative`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from jax import lax

from .buckets import round_up
from .iterative import IterativeLaterBlocks, check_iterative_design, dense_fits
from .lambda_map import lambda_both, lambda_gather, lambda_left_t, lambda_right, t_from_theta
from .pattern import entries, rest_columns

jax.config.update("jax_enable_x64", True)


class RestFactor(NamedTuple):
    """The later blocks' factor kept for estimates after the fit.

    ``L`` is the Cholesky factor of the dense S (q2 × q2) or, for a nested
    later block, the per-level inverses S⁻¹ (l2, p2, p2).
    """

    L: object


def schur_pairs(W, arrays, l1: int, p1: int, n_slots: int):
    """Σ over pairs of nonzeros of Z₂ᵀZ₁ sharing a level: coef · vec(W_level), scattered."""
    Wflat = W.reshape(l1, p1 * p1)
    Wp = Wflat.at[arrays["pair_level"]].get(indices_are_sorted=True, mode="promise_in_bounds")
    vals = jnp.sum(arrays["pair_coef"] * Wp, axis=-1)
    return jax.ops.segment_sum(vals, arrays["pair_target"], num_segments=n_slots + 1)[:-1]


def schur_pairs_by_target(W, arrays, l1: int, p1: int, n_slots: int):
    """:func:`schur_pairs` for pairs sorted by target slot (the tiled kind's tail).

    A sorted segment sum writes the q2 × q2 update in order, and its
    transpose reads the cotangent in order: on a CPU the gradient is about
    2.5× faster than with pairs sorted by level (29 M pairs: 2.0 s
    against 4.8 s, loaded machine).
    """
    Wp = W.reshape(l1, p1 * p1)[arrays["pair_level"]]
    vals = jnp.sum(arrays["pair_coef"] * Wp, axis=-1)
    return jax.ops.segment_sum(vals, arrays["pair_target"], num_segments=n_slots + 1, indices_are_sorted=True)[:-1]


def schur_cross(W, arrays, l1: int, q2: int):
    """D = Σ_j Z₂ᵀZ₁[:, j] W_j Z₁ᵀ[X y][j] as a (q2, p+1) array."""
    WA = jnp.einsum("jab,jbm->jam", W, arrays["A1X"])
    WAe = WA.at[arrays["ent_level"]].get(indices_are_sorted=True, mode="promise_in_bounds")
    Dvals = jnp.einsum("ea,eam->em", arrays["ent_a"], WAe)
    return jax.ops.segment_sum(Dvals, arrays["ent_row"], num_segments=q2)


@jax.custom_jvp
def logdet_and_quadratic(S, Sx):
    """log|S| and Sxᵀ S⁻¹ Sx for the dense SPD block S.

    The derivative rule uses S⁻¹ = L⁻ᵀL⁻¹ (:func:`triangular_inverse`, :func:`lower_gram`):
    d log|S| = tr(S⁻¹ dS) and d(SxᵀS⁻¹Sx) = dSxᵀY + YᵀdSx − Yᵀ dS Y with
    Y = S⁻¹Sx. Reverse mode through it costs about 1.5 forward evaluations,
    against about 4 for autodiff through the Cholesky factorization
    (InstEval's 1,142 × 1,142 block: 12 ms instead of 63 ms here).
    """
    L = jnp.linalg.cholesky(S)
    V = lax.linalg.triangular_solve(L, Sx, left_side=True, lower=True)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), V.T @ V


TRIANGULAR_BLOCK = 256  # lower-triangular inverses by 2 × 2 blocks down to this size (:func:`triangular_inverse`)


def triangular_inverse(L):
    """L⁻¹ for a lower-triangular L, by 2 × 2 blocks: ``[[A, 0], [C, D]]⁻¹ = [[A⁻¹, 0], [−D⁻¹CA⁻¹, D⁻¹]]``.

    The work is in matrix products, which XLA runs several times faster on a
    CPU than a triangular solve with many right-hand sides (q2 = 2,000:
    S⁻¹ = L⁻ᵀL⁻¹ in 0.4 s against 2.3–3.1 s for ``cho_solve`` with the
    identity, loaded machine). Blocks of at most :data:`TRIANGULAR_BLOCK` are
    solved directly.
    """
    n = L.shape[0]
    if n <= TRIANGULAR_BLOCK:
        return lax.linalg.triangular_solve(L, jnp.eye(n, dtype=L.dtype), left_side=True, lower=True)
    h = n // 2
    A_inv, D_inv = triangular_inverse(L[:h, :h]), triangular_inverse(L[h:, h:])
    lower_left = -(D_inv @ (L[h:, :h] @ A_inv))
    return jnp.block([[A_inv, jnp.zeros((h, n - h), L.dtype)], [lower_left, D_inv]])


def lower_gram(M):
    """MᵀM for a lower-triangular M, by the same 2 × 2 blocks: ``[[AᵀA + CᵀC, CᵀD], [DᵀC, DᵀD]]``.

    Skips the products with the zero upper block: about half the work of
    ``M.T @ M`` (q2 = 2,000: 0.22 s against 0.44 s, loaded machine).
    """
    n = M.shape[0]
    if n <= TRIANGULAR_BLOCK:
        return M.T @ M
    h = n // 2
    A, C, D = M[:h, :h], M[h:, :h], M[h:, h:]
    lower_left = D.T @ C
    return jnp.block([[lower_gram(A) + C.T @ C, lower_left.T], [lower_left, lower_gram(D)]])


@logdet_and_quadratic.defjvp
def _logdet_and_quadratic_jvp(primals, tangents):
    S, Sx = primals
    dS, dSx = tangents
    L = jnp.linalg.cholesky(S)
    V = lax.linalg.triangular_solve(L, Sx, left_side=True, lower=True)
    Sinv = lower_gram(triangular_inverse(L))
    Y = Sinv @ Sx
    dYt = dSx.T @ Y
    return ((2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), V.T @ V),
            (jnp.sum(Sinv * dS), dYt + dYt.T - Y.T @ dS @ Y))


def small_inverse(M):
    """Inverse and log-determinant of a batch of small SPD matrices (…, p, p).

    Closed form for p ≤ 2 (elementwise arithmetic over all levels at once);
    batched Cholesky otherwise.
    """
    p = M.shape[-1]
    if p == 1:
        return 1.0 / M, jnp.log(M[..., 0, 0])
    if p == 2:
        a, b, d = M[..., 0, 0], M[..., 1, 0], M[..., 1, 1]
        det = a * d - b * b
        inv = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-b, a], -1)], -2) / det[..., None, None]
        return inv, jnp.log(det)
    L = jnp.linalg.cholesky(M)
    eye = jnp.broadcast_to(jnp.eye(p, dtype=M.dtype), M.shape)
    Linv = lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)
    inv = jnp.swapaxes(Linv, -1, -2) @ Linv
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1)
    return inv, logdet


@dataclass(frozen=True)
class NoLaterBlocks:
    """A single grouping factor: nothing after block 1."""

    uses_pairs = False
    uses_dense_a21 = False
    name = "none"

    def index_arrays(self, blocks):
        return dict(lam_index=np.zeros((0, 1), np.int32), lam_weight=np.zeros((0, 1), np.int32))

    def padded_later(self, dims, minimum):
        """(q2, kmax, a22_shape) of a shape bucket (:mod:`lmmjax.structure.buckets`): nothing to pad."""
        return 0, dims.kmax, dims.a22_shape

    def pad_pattern(self, arrays, index, exact, bucket):
        """Pattern arrays and index arrays remapped to the bucket's sizes: nothing depends on them."""
        return arrays, index

    def factor(self, theta, arrays, dims, W, keep_factor):
        zero = jnp.zeros((), W.dtype)
        return zero, jnp.zeros((dims.p + 1, dims.p + 1), W.dtype), None

    def solve(self, rest, rhs):
        return rhs

    def solve_jax(self, rest, rhs):
        return rhs

    def inverse_diagonal_blocks(self, rest, blocks):
        return []


@dataclass(frozen=True)
class NestedLaterBlock:
    """One later block nested in block 1: S stays one small p2×p2 matrix per level.

    Every level of block 1 lies in one level of block 2, so the Schur
    complement of block 1 is block-diagonal and no dense factorization is
    needed (200,000 rows in 5,000 schools / 20,000 classes fit in 0.25 s).
    """

    uses_pairs = True
    uses_dense_a21 = False
    name = "nested"

    def index_arrays(self, blocks):
        return dict(T2_index=blocks[1].theta_index.astype(np.int32),
                    lam_index=np.zeros((0, 1), np.int32), lam_weight=np.zeros((0, 1), np.int32))

    def a22_shape(self, blocks):
        b2 = blocks[1]
        return (b2.nlevels, b2.p, b2.p)

    def a22_slots(self, blocks, z2_col):
        p2 = blocks[1].p
        lev, a = z2_col // p2, z2_col % p2
        return lev[:, :, None] * p2 * p2 + a[:, :, None] * p2 + a[:, None, :]

    def a22_segments(self, blocks):
        return blocks[1].nlevels * blocks[1].p ** 2

    def pair_targets(self, blocks, r1, r2):
        p2 = blocks[1].p
        return (r1 // p2) * p2 * p2 + (r1 % p2) * p2 + (r2 % p2)

    def n_slots(self, blocks):
        return self.a22_segments(blocks)

    def padded_later(self, dims, minimum):
        """(q2, kmax, a22_shape) of a shape bucket: levels of the nested block padded."""
        l2, p2, _ = dims.a22_shape
        l2_pad = round_up(l2, minimum)
        return l2_pad * p2, dims.kmax, (l2_pad, p2, p2)

    def pad_pattern(self, arrays, index, exact, bucket):
        """Only the spare slot of the Schur pairs moves (slots are level-major: padded levels come last)."""
        spare, spare_pad = np.prod(exact.a22_shape), np.prod(bucket.a22_shape)
        if "pair_target" in arrays:
            target = arrays["pair_target"]
            arrays["pair_target"] = np.where(target == spare, spare_pad, target).astype(target.dtype)
        return arrays, index

    def factor(self, theta, arrays, dims, W, keep_factor):
        A22 = arrays["A22"]
        l2, p2 = A22.shape[0], A22.shape[1]
        C = schur_pairs(W, arrays, dims.l1, dims.p1, l2 * p2 * p2).reshape(l2, p2, p2)
        C = C + jnp.swapaxes(C, 1, 2) - C * jnp.eye(p2, dtype=C.dtype)
        T2 = t_from_theta(theta, arrays["T2_index"])
        S = jnp.einsum("ba,jbc,cd->jad", T2, A22 - C, T2) + jnp.eye(p2, dtype=A22.dtype)
        Sinv, logdet2 = small_inverse(S)
        D = schur_cross(W, arrays, dims.l1, dims.q2)
        Sx = jnp.einsum("ba,jbm->jam", T2, (arrays["A2X"] - D).reshape(l2, p2, -1))
        quad = jnp.einsum("jam,jab,jbn->mn", Sx, Sinv, Sx)
        return jnp.sum(logdet2), quad, (RestFactor(Sinv) if keep_factor else None)

    def solve(self, rest, rhs):
        Sinv = np.asarray(rest.L)
        l2, p2 = Sinv.shape[:2]
        return np.einsum("jab,jb...->ja...", Sinv, rhs.reshape((l2, p2) + rhs.shape[1:])).reshape(rhs.shape)

    def solve_jax(self, rest, rhs):
        """S⁻¹ rhs in JAX (rhs a vector of length q2)."""
        l2, p2 = rest.L.shape[:2]
        return jnp.einsum("jab,jb->ja", rest.L, rhs.reshape(l2, p2)).reshape(rhs.shape)

    def inverse_diagonal_blocks(self, rest, blocks):
        return list(np.asarray(rest.L))

    def inverse_matrix(self, rest, blocks):
        """S⁻¹ (q2 × q2): block-diagonal, kept sparse."""
        return sp.block_diag(self.inverse_diagonal_blocks(rest, blocks), format="csr")

    def inverse_quadratic_blocks(self, rest, blocks, M, p):
        """The diagonal p × p blocks of MᵀS⁻¹M for a sparse M (q2 × k·p): (k, p, p); sparse when nested."""
        G = (M.T @ (self.inverse_matrix(rest, blocks) @ M)).tocsr()
        k = np.arange(M.shape[1])
        rows, cols = np.repeat(k, p), (k[:, None] // p * p + np.arange(p)).ravel()
        return np.asarray(G[rows, cols]).reshape(-1, p, p)


@dataclass(frozen=True)
class DenseLaterBlocks:
    """Later blocks as one dense q2×q2 matrix after the Schur complement of block 1.

    ``schur`` is how the update from block 1 is formed: ``"pairs"``, a
    scatter-add over pairs of nonzeros of Z₂ᵀZ₁ sharing a level (sparse
    designs), or ``"matmul"``, two dense contractions with Z₂ᵀZ₁ (fully
    crossed designs: 7.8 ms against 315 ms for 1,000 deviances of a 50 × 20
    design).
    """

    schur: str = "pairs"
    name = "dense"

    def index_arrays(self, blocks):
        lam_index, lam_weight = lambda_gather(blocks)
        return dict(lam_index=lam_index, lam_weight=lam_weight)

    @property
    def uses_pairs(self):
        return self.schur == "pairs"

    @property
    def uses_dense_a21(self):
        return self.schur == "matmul"

    def a22_shape(self, blocks):
        q2 = sum(b.nlevels * b.p for b in blocks[1:])
        return (q2, q2)

    def a22_slots(self, blocks, z2_col):
        q2 = sum(b.nlevels * b.p for b in blocks[1:])
        return z2_col[:, :, None] * q2 + z2_col[:, None, :]

    def a22_segments(self, blocks):
        q2 = sum(b.nlevels * b.p for b in blocks[1:])
        return q2 * q2

    def pair_targets(self, blocks, r1, r2):
        q2 = sum(b.nlevels * b.p for b in blocks[1:])
        return r1 * q2 + r2

    def n_slots(self, blocks):
        return self.a22_segments(blocks)

    def padded_later(self, dims, minimum):
        """(q2, kmax, a22_shape) of a shape bucket: columns of S and of Λ₂'s gather padded."""
        q2 = round_up(dims.q2, minimum)
        return q2, round_up(dims.kmax), (q2, q2)

    def pad_pattern(self, arrays, index, exact, bucket):
        """Flat slots of the q2 × q2 matrix and of Z₂ᵀZ₁ re-strided; Λ₂ padded with zero weights."""
        q2, q2_pad = exact.q2, bucket.q2

        def restride(flat, width, width_pad):
            return ((flat // width) * width_pad + flat % width).astype(flat.dtype)

        arrays["slot22"] = restride(arrays["slot22"], q2, q2_pad)
        if "pair_target" in arrays:
            target = arrays["pair_target"]
            arrays["pair_target"] = np.where(target == q2 * q2, q2_pad * q2_pad,
                                             restride(target, q2, q2_pad)).astype(target.dtype)
        if "slot21" in arrays:
            arrays["slot21"] = restride(arrays["slot21"], exact.l1, bucket.l1)
        lam_index, lam_weight = index["lam_index"], index["lam_weight"]
        rows, extra = q2_pad - q2, bucket.kmax - exact.kmax
        lam_index = np.concatenate([lam_index, np.repeat(lam_index[:, :1], extra, axis=1)], axis=1)
        lam_index = np.concatenate([lam_index, np.repeat(np.arange(q2, q2_pad)[:, None], bucket.kmax, axis=1)])
        lam_weight = np.pad(lam_weight, ((0, rows), (0, extra)))
        index.update(lam_index=lam_index.astype(np.int32), lam_weight=lam_weight.astype(np.int32))
        return arrays, index

    def schur_update(self, W, arrays, dims):
        """(C, D): the update Z₂ᵀZ₁ W Z₁ᵀZ₂ (q2 × q2) and Z₂ᵀZ₁ W Z₁ᵀ[X y] (q2 × (p+1))."""
        q2 = dims.q2
        if self.schur == "matmul":
            A21d = arrays["A21d"]
            G = jnp.einsum("rja,jab->rjb", A21d, W)  # two plain contractions: cheap to differentiate
            C = G.reshape(q2, -1) @ A21d.reshape(q2, -1).T
            D = G.reshape(q2, -1) @ arrays["A1X"].reshape(-1, arrays["A1X"].shape[-1])
            return C, D
        C = schur_pairs(W, arrays, dims.l1, dims.p1, q2 * q2).reshape(q2, q2)
        C = C + C.T - jnp.diag(jnp.diag(C))
        return C, schur_cross(W, arrays, dims.l1, q2)

    def factor(self, theta, arrays, dims, W, keep_factor):
        q2 = dims.q2
        C, D = self.schur_update(W, arrays, dims)
        S = lambda_both(arrays["A22"] - C, theta, arrays, dims.kmax) + jnp.eye(q2, dtype=C.dtype)
        Sx = lambda_left_t(arrays["A2X"] - D, theta, arrays, dims.kmax)
        if keep_factor:
            L22 = jnp.linalg.cholesky(S)
            V = lax.linalg.triangular_solve(L22, Sx, left_side=True, lower=True)
            return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L22))), V.T @ V, RestFactor(L22)
        logdet2, quad = logdet_and_quadratic(S, Sx)
        return logdet2, quad, None

    def solve(self, rest, rhs):
        return sla.cho_solve((np.asarray(rest.L), True), rhs)

    def solve_jax(self, rest, rhs):
        """S⁻¹ rhs in JAX."""
        return jax.scipy.linalg.cho_solve((rest.L, True), rhs)

    def inverse_diagonal_blocks(self, rest, blocks):
        L = np.asarray(rest.L)
        Linv = sla.solve_triangular(L, np.eye(L.shape[0]), lower=True)
        Sinv = Linv.T @ Linv
        out, start = [], 0
        for blk in blocks[1:]:
            for j in range(blk.nlevels):
                sl = slice(start + j * blk.p, start + (j + 1) * blk.p)
                out.append(Sinv[sl, sl])
            start += blk.nlevels * blk.p
        return out

    def inverse_matrix(self, rest, blocks):
        """S⁻¹ (q2 × q2), dense."""
        L = np.asarray(rest.L)
        return self.solve(rest, np.eye(L.shape[0]))

    def inverse_quadratic_blocks(self, rest, blocks, M, p):
        """The diagonal p × p blocks of MᵀS⁻¹M for a sparse M (q2 × k·p): (k, p, p), through L⁻¹M."""
        L = np.asarray(rest.L)
        G = sla.solve_triangular(L, M.toarray(), lower=True)
        G = G.reshape(L.shape[0], -1, p).transpose(1, 0, 2)  # (k, q2, p)
        return np.einsum("jra,jrb->jab", G, G)


def head_update(W, ent_a, head_src, head_slot, head: int, chunk: int):
    """Σ_j Z₂ᵀZ₁[head, j] W_j Z₁ᵀZ₂[j, head] (head × head), chunk levels of block 1 at a time.

    Chunk c covers levels ``[c·chunk, (c+1)·chunk)``; ``head_src[c]`` are the
    entries of Z₂ᵀZ₁ in the head and in that chunk (padding points at the
    spare zero entry) and ``head_slot[c]`` their place ``h·chunk + j − c·chunk``
    in the dense (head, chunk) slice. Only one slice exists at a time, and the
    scan body is rematerialised under differentiation, so neither a dense
    Z₂ᵀZ₁ nor the slices of every chunk are ever held.
    """
    n_chunks = head_src.shape[0]
    l1, p1 = W.shape[0], W.shape[1]
    Wc = jnp.pad(W, ((0, n_chunks * chunk - l1), (0, 0), (0, 0))).reshape(n_chunks, chunk, p1, p1)

    @jax.checkpoint
    def body(C, xs):
        src, slot, Wk = xs
        D = jnp.zeros((head * chunk, p1), ent_a.dtype).at[slot].set(ent_a[src], mode="drop")
        D = D.reshape(head, chunk, p1)
        G = jnp.einsum("hja,jab->hjb", D, Wk)
        return C + G.reshape(head, -1) @ D.reshape(head, -1).T, None

    C0 = jnp.zeros((head, head), W.dtype)
    return lax.scan(body, C0, (head_src, head_slot, Wc))[0]


STREAM_TILE = 1 << 20  # products (levels × pairs per level) formed at once by the streamed tail
BUCKET_SHARE = 0.02  # a width bucket with fewer of the tail's products than this share joins the next wider one


def stream_width(n: np.ndarray) -> np.ndarray:
    """Padded width of a level with ``n`` entries: n up to 8, else n rounded up to a quarter octave.

    Widths 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, … waste at most a quarter
    of a level's row (power-of-two widths wasted up to half, and ~40% of a
    uniform design's products).
    """
    n = np.maximum(np.asarray(n, np.int64), 1)
    step = np.where(n > 8, 1 << np.maximum(np.ceil(np.log2(n)).astype(np.int64) - 3, 0), 1)
    return -(-n // step) * step


def stream_layout(ent_level: np.ndarray, ent_tail: np.ndarray, l1: int) -> list:
    """Levels of block 1 with a tail entry, grouped by padded entry count (:func:`stream_width`).

    Returns a list of (level ids, (width, padded rows, chunk)) per width,
    narrowest first; rows are padded to a multiple of the chunk (levels
    formed together, about :data:`STREAM_TILE` products). A width holding
    less than :data:`BUCKET_SHARE` of the products joins the next wider one,
    so that few scans are compiled.
    """
    n = np.bincount(ent_level, minlength=l1)
    has_tail = np.bincount(ent_level[ent_tail], minlength=l1) > 0
    width = np.where(has_tail, stream_width(n), 0)
    widths = [int(w) for w in np.unique(width[has_tail])]
    products = {w: int(np.sum(width == w)) * w * w for w in widths}
    total = sum(products.values())
    merged, carried = [], 0
    for i, w in enumerate(widths):  # small buckets join the next wider one (levels padded to its width)
        carried += products[w]
        if i == len(widths) - 1 or carried >= BUCKET_SHARE * total:
            merged.append(w)
            carried = 0
    out, lo = [], 0
    for w in merged:
        levels = np.nonzero(has_tail & (width > lo) & (width <= w))[0]
        lo = w
        chunk = int(max(1, min(len(levels), STREAM_TILE // (w * w))))
        rows = -(-len(levels) // chunk) * chunk
        out.append((levels, (int(w), int(rows), chunk)))
    return out


def take(a, index):
    """``a[index]`` for indices known to be in bounds (no clamping: the pattern's entries, levels and rows are)."""
    return a.at[index].get(mode="promise_in_bounds")


def stream_tail(W, arrays, q2: int, buckets: tuple, has_head: bool):
    """The tail of the Schur update formed inside the evaluation, from each level's entries (no stored pairs).

    For every level with a tail entry, the full outer product of its
    entries ``a_i W_j a_kᵀ`` is scattered into C (q2 × q2, both orders, so
    no symmetrisation); pairs with both columns in the head are left to
    :func:`head_update`. Levels go ``chunk`` at a time in a scan whose body
    is rematerialised under differentiation: memory is the entries plus
    one chunk of products, whatever the number of pairs.

    Only the square is formed: a lower triangle (half the scatter) needs
    gathers or slices of each level's products, and on a CPU those cost
    more than the scatter they save (1e6 rows, 20,000 × 2,000: forward
    about the same, gradient 2× slower). Indices are in bounds by
    construction, so neither the gathers nor the scatter clamp them (the
    scatter about 20% faster).
    """
    ent_a, ent_row, ent_level, ent_head = arrays["ent_a"], arrays["ent_row"], arrays["ent_level"], arrays["ent_head"]
    big = q2 * q2 >= 2**31 - 1
    C = jnp.zeros(q2 * q2, W.dtype)
    for i, (width, rows, chunk) in enumerate(buckets):
        E = arrays[f"stream_{i}"].reshape(rows // chunk, chunk, width)

        @jax.checkpoint
        def body(C, Ek):
            a = take(ent_a, Ek)  # (chunk, width, p1); padding points at the spare zero entry
            vals = jnp.einsum("cia,cab,cjb->cij", a, take(W, take(ent_level, Ek[:, 0])), a)
            if has_head:
                h = take(ent_head, Ek)
                vals = jnp.where(h[:, :, None] & h[:, None, :], 0.0, vals)
            r = take(ent_row, Ek)
            r = r.astype(jnp.int64) if big else r
            target = (r[:, :, None] * q2 + r[:, None, :]).ravel()
            return C.at[target].add(vals.ravel(), mode="promise_in_bounds"), None

        C = lax.scan(body, C, E)[0]
    return C.reshape(q2, q2)


@dataclass(frozen=True)
class TiledLaterBlocks(DenseLaterBlocks):
    """Dense later blocks whose Schur update is tiled: a dense head plus a scattered tail.

    The later columns are ranked by how many levels of block 1 touch them
    (MixedModels.jl's ``sortlevels`` idea): the ``head`` most frequent form
    a dense head × head part of the update, formed by matrix products over
    chunks of ``chunk`` levels of block 1 (:func:`head_update`, bounded
    memory); the rest (the "tail") is a scatter-add over only the pairs of
    nonzeros of Z₂ᵀZ₁ that touch a tail column. Neither the full pair arrays
    nor a dense Z₂ᵀZ₁ is built. S itself is still one dense q2 × q2 matrix,
    so :meth:`solve` and :meth:`inverse_diagonal_blocks` are the dense kind's.

    ``head=0`` is the pair scatter over all pairs; ``head=q2`` a chunked
    matmul with no pairs. :func:`tiled_kind` picks ``head`` by cost.

    With ``stream`` (a layout from :func:`stream_layout`) the tail's pairs
    are not stored at all: each evaluation forms them level by level
    (:func:`stream_tail`). 1e6 rows, 20,000 × 2,000 crossed (25 M pairs):
    value and gradient 7.3 s against 5.8 s stored, peak memory 1.0 GB
    against 2.3 GB (load average 10 on 2 cores).
    """

    schur: str = "tiled"
    head: int = 0
    chunk: int = 1
    stream: tuple = ()  # per bucket (width, rows, chunk): the tail formed inside the evaluation, no stored pairs
    name = "tiled"
    #: never padded to a shape bucket (:mod:`lmmjax.structure.buckets`): a kind for large designs,
    #: whose head and stream arrays are laid out for the exact sizes
    padded_later = None

    @property
    def factor_keys(self):
        return ("head_cols", "head_src", "head_slot", "ent_head") + tuple(f"stream_{i}" for i in range(len(self.stream)))

    @property
    def uses_pairs(self):
        return True

    @property
    def uses_dense_a21(self):
        return False

    def entry_pairs(self, blocks, ent_row, ent_level, l1):
        """Pairs (e1, e2) of entries of one level with at least one tail column, sorted by target slot.

        Within a level the entries are ordered head first; a tail entry at
        local position k pairs with positions 0..k, so every unordered pair
        touching the tail appears once, with the larger later column first.
        """
        if self.stream:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        rank = column_rank(blocks)
        tail = rank[ent_row] >= self.head
        order = np.lexsort((ent_row, tail, ent_level)).astype(np.int32)  # by level, head first, then column
        lev = ent_level[order]
        starts = np.searchsorted(lev, np.arange(l1 + 1)).astype(np.int32)
        local = np.arange(len(order), dtype=np.int32) - starts[lev]
        counts = np.where(tail[order], local + 1, 0)
        del local
        idx = np.int32 if int(counts.sum()) < 2**31 - 1 else np.int64  # host memory: pairs are the bulk
        first = np.repeat(np.arange(len(order), dtype=idx), counts)
        second = np.repeat((starts[lev] - (np.cumsum(counts) - counts)).astype(idx), counts)
        second += np.arange(len(first), dtype=idx)  # position k − (start of k's run) + level start
        e1, e2 = order[first], order[second]
        del first, second
        row32 = ent_row.astype(np.int32)
        r1, r2 = row32[e1], row32[e2]
        swap = r1 < r2
        e1, e2 = np.where(swap, e2, e1), np.where(swap, e1, e2)
        by_target = np.argsort(np.maximum(r1, r2).astype(np.int64) * len(rank) + np.minimum(r1, r2), kind="stable")
        return e1[by_target], e2[by_target]

    def head_arrays(self, blocks, ent_row, ent_level, n_entries, l1):
        """``head_cols`` (head,), ``head_src`` and ``head_slot`` (chunks, max head entries per chunk)."""
        rank = column_rank(blocks)
        head_cols = np.argsort(rank, kind="stable")[: self.head].astype(np.int32)
        n_chunks = max(1, -(-l1 // self.chunk))
        in_head = np.nonzero(rank[ent_row] < self.head)[0]
        chunk_of = ent_level[in_head] // self.chunk
        counts = np.bincount(chunk_of, minlength=n_chunks)
        width = max(1, int(counts.max()) if len(counts) else 1)
        src = np.full((n_chunks, width), n_entries, np.int32)  # the spare zero entry
        slot = np.full((n_chunks, width), self.head * self.chunk, np.int64)  # out of range: dropped
        pos = np.arange(len(in_head)) - np.repeat(np.cumsum(counts) - counts, counts)
        src[chunk_of, pos] = in_head
        slot[chunk_of, pos] = rank[ent_row[in_head]] * self.chunk + ent_level[in_head] % self.chunk
        out = dict(head_cols=head_cols, head_src=src, head_slot=slot)
        is_head = rank[ent_row] < self.head
        out["ent_head"] = np.append(is_head, False)  # and the spare zero entry the padding points at
        layout = stream_layout(ent_level, ~is_head, l1) if self.stream else []
        if tuple(shape for _, shape in layout) != tuple(self.stream):
            raise ValueError("the streamed tail's layout does not match these entries (kind built for other data)")
        for i, (levels, (width, rows, chunk)) in enumerate(layout):
            E = np.full((rows, width), n_entries, np.int32)
            starts = np.searchsorted(ent_level, levels)
            counts = np.searchsorted(ent_level, levels, side="right") - starts
            r = np.repeat(np.arange(len(levels)), counts)
            c = np.arange(len(r)) - np.repeat(np.cumsum(counts) - counts, counts)
            E[r, c] = np.repeat(starts, counts) + c
            out[f"stream_{i}"] = E
        return out

    def schur_update(self, W, arrays, dims):
        q2 = dims.q2
        if self.stream:
            C = stream_tail(W, arrays, q2, self.stream, self.head > 0)
        else:
            C = schur_pairs_by_target(W, arrays, dims.l1, dims.p1, q2 * q2).reshape(q2, q2)
            C = C + C.T - jnp.diag(jnp.diag(C))
        if self.head:
            Ch = head_update(W, arrays["ent_a"], arrays["head_src"], arrays["head_slot"], self.head, self.chunk)
            hc = arrays["head_cols"]
            C = C.at[hc[:, None], hc[None, :]].add(Ch)
        return C, schur_cross(W, arrays, dims.l1, q2)


def column_rank(blocks: list) -> np.ndarray:
    """Rank of each later column by the number of rows with a nonzero in it (most first, ties by column)."""
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    z2_col, _, _ = rest_columns(blocks, len(blocks[0].codes))
    counts = np.bincount(z2_col.ravel(), minlength=q2)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(q2, np.int64)
    rank[order] = np.arange(q2)
    return rank


MATMUL_DENSITY = 0.15  # share of nonzero (row, level) cells of Z₂ᵀZ₁ above which a dense matmul wins
MATMUL_MAX_SIZE = 20_000_000  # q2 · l1 · p1 numbers at most in the dense Z₂ᵀZ₁


def use_matmul(n_entries: int, q2: int, l1: int, p1: int) -> bool:
    """Dense Schur update when Z₂ᵀZ₁ is dense enough and small enough.

    The pair scatter costs Σ_j nnz_j² scatter-adds; the matmul q2²·l1·p1²
    multiply-adds, roughly 50× cheaper each on CPU: with density d the pair
    count is about d²·q2²·l1, so the matmul wins above d ≈ 0.15.
    """
    return n_entries >= MATMUL_DENSITY * q2 * l1 and q2 * l1 * p1 <= MATMUL_MAX_SIZE


def nested_in_first(blocks: list) -> bool:
    """True when there is exactly one later block and it is nested in block 1."""
    if len(blocks) != 2:
        return False
    b1, b2 = blocks
    level2 = np.empty(b1.nlevels, b2.codes.dtype)
    level2[b1.codes] = b2.codes  # one level of block 2 per level of block 1 (any one of them)...
    return bool(np.array_equal(level2[b1.codes], b2.codes))  # ...and every row agrees with it (O(n), no sort)


#: multiply-adds of the dense factor per evaluation (q2³: Cholesky q2³/3 plus S⁻¹ for the gradient) above which
#: the iterative kind is chosen when it supports the design. At q2 = 10,000 (1e7 MovieLens-shaped rows) that is
#: 1e12, minutes per evaluation on 2 cores, against seconds for the iterative kind (3e6 rows, q2 = 3,000: value
#: and gradient 18.7 s tiled against 4.6 s iterative, load 6); below it the exact kinds are kept.
DENSE_WORK_LIMIT = 2e11
#: the limit's multiple on an accelerator (a GPU's float64 matrix work is ~1,000× two CPU cores'): there the
#: exact kinds run until their six q2 × q2 matrices no longer fit (one H200: q2 ≈ 54,000), untested on a GPU here
ACCELERATOR_WORK_FACTOR = 1000.0
PAIR_LIMIT = 10_000_000  # pairs of Z₂ᵀZ₁ nonzeros (≈ 0.3 GB of pair arrays) above which the tiled kind is used
MATMUL_SPEEDUP = 50.0  # dense multiply-adds per scattered pair at equal time (CPU; larger on a GPU)
STREAM_FROM = 10_000_000  # tail pairs (≈ 0.3 GB stored) above which the tail is formed inside each evaluation
TILE_NUMBERS = 1 << 21  # numbers in one dense (head × chunk) slice of Z₂ᵀZ₁ (16 MB)


def dense_work_limit() -> float:
    """:data:`DENSE_WORK_LIMIT` on a CPU, times :data:`ACCELERATOR_WORK_FACTOR` on other backends."""
    return DENSE_WORK_LIMIT * (1.0 if jax.default_backend() == "cpu" else ACCELERATOR_WORK_FACTOR)


def entry_levels_and_ranks(blocks: list):
    """Each nonzero (later column, level of block 1) cell of Z₂ᵀZ₁: its level and its column's rank.

    The cells are the pattern's entries (:func:`lmmjax.structure.pattern.entries`).
    """
    b1 = blocks[0]
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    z2_col, _, _ = rest_columns(blocks, len(b1.codes))
    ent_row, ent_level, _ = entries(z2_col, b1.codes, q2)
    return ent_level, column_rank(blocks)[ent_row]


def pair_count(levels: np.ndarray, l1: int) -> int:
    """Pairs (r1 ≥ r2) of entries within each level: Σ_j n_j (n_j + 1) / 2."""
    n = np.bincount(levels, minlength=l1).astype(np.int64)
    return int(np.sum(n * (n + 1) // 2))


def tiled_kind(blocks: list, head: int | None = None, speedup: float | None = None,
               stream: bool | None = None) -> TiledLaterBlocks:
    """The tiled kind with the head size of least estimated cost (or the given ``head``).

    Cost of a head of H columns: the tail's pairs plus H²·l1·p1² dense
    multiply-adds divided by ``speedup`` (:data:`MATMUL_SPEEDUP` on a CPU,
    20× that on an accelerator). Candidates: 0, powers of two below q2, q2.
    The tail is streamed (formed inside each evaluation, :func:`stream_tail`)
    when it has more than :data:`STREAM_FROM` pairs, or as ``stream`` says.
    """
    b1 = blocks[0]
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    levels, rank = entry_levels_and_ranks(blocks)
    n_all = np.bincount(levels, minlength=b1.nlevels).astype(np.int64)

    def tail_pairs(H):
        h = np.bincount(levels[rank < H], minlength=b1.nlevels).astype(np.int64)
        return int(np.sum(n_all * (n_all + 1) // 2 - h * (h + 1) // 2))

    if head is None:
        if speedup is None:
            speedup = MATMUL_SPEEDUP * (1 if jax.default_backend() == "cpu" else 20)
        costs = [(tail_pairs(H) + H * H * b1.nlevels * b1.p ** 2 / speedup, H)
                 for H in sorted({0, q2} | {1 << k for k in range(6, 40) if (1 << k) < q2})]
        head = min(costs)[1]
    head = int(min(max(head, 0), q2))
    chunk = int(min(b1.nlevels, max(1, TILE_NUMBERS // max(1, head * b1.p))))
    if stream is None:
        stream = tail_pairs(head) > STREAM_FROM
    layout = tuple(shape for _, shape in stream_layout(levels, rank >= head, b1.nlevels)) if stream else ()
    return TiledLaterBlocks(head=head, chunk=chunk, stream=layout)


def choose_kind(blocks: list, schur: str = "auto", allow_nested: bool = True, allow_iterative: bool = True):
    """The kind of the later blocks for this design.

    ``schur`` forces the dense kind's update ("pairs", "matmul"), the tiled
    kind ("tiled") or the iterative kind ("iterative",
    :mod:`lmmjax.structure.iterative`); "auto" picks the nested kind when it
    applies, the iterative kind when the dense evaluation's six q2 × q2 matrices would not fit in
    memory or the dense factor's q2³ multiply-adds per evaluation pass
    :func:`dense_work_limit` (and the design is one it supports; never with
    ``allow_iterative=False``, e.g. residual structures), else the tiled kind when the
    pairs would pass :data:`PAIR_LIMIT`, else the pair scatter or the dense
    matmul by density (:func:`use_matmul`). ``allow_nested=False`` skips the
    nested kind (AR residuals whose whitened rows touch two levels of the
    later block).
    """
    if schur not in ("auto", "pairs", "matmul", "tiled", "iterative"):
        raise ValueError(f"schur must be 'auto', 'pairs', 'matmul', 'tiled' or 'iterative', not {schur!r}")
    if len(blocks) == 1:
        return NoLaterBlocks()
    if allow_nested and nested_in_first(blocks):
        return NestedLaterBlock()
    if schur in ("pairs", "matmul"):
        return DenseLaterBlocks(schur)
    if schur == "tiled":
        return tiled_kind(blocks)
    if schur == "iterative":
        check_iterative_design(blocks)
        return IterativeLaterBlocks()
    b1 = blocks[0]
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    if allow_iterative and all(b.p == 1 for b in blocks[1:]) and (not dense_fits(q2) or q2 ** 3 > dense_work_limit()):
        return IterativeLaterBlocks()
    levels, _ = entry_levels_and_ranks(blocks)
    if pair_count(levels, b1.nlevels) > PAIR_LIMIT:
        return tiled_kind(blocks)
    dense = use_matmul(len(levels), q2, b1.nlevels, b1.p)
    return DenseLaterBlocks("matmul" if dense else "pairs")
