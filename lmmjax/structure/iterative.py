"""The iterative block kind: the later blocks' Schur complement S never formed.

For crossed designs whose S (q2 × q2) is too large to hold, let alone
factor (MovieLens ml-32m: q2 = 84,432, 57 GB a copy). Every use of S is a
product S v, formed from the sparse entries of Z₂ᵀZ₁ (one per nonzero
(later column, level of block 1) cell: at most one per row) and the
nonzeros of Z₂ᵀZ₂ by segment sums — never a dense S, a dense Z₂ᵀZ₁ or the
pairs of its nonzeros:

    S v = v + λ ∘ (Z₂ᵀZ₂ (λ∘v) − Z₂ᵀZ₁ W Z₁ᵀZ₂ (λ∘v)),   W = T₁ M₁₁⁻¹ T₁ᵀ per level.

- the quadratic form [X y]ᵀ S⁻¹ [X y] (through Λ₂ and the Schur update)
  by preconditioned conjugate gradients (Jacobi), differentiated through
  JAX's implicit rule for ``cg``;
- log|S| by stochastic Lanczos quadrature with probe vectors fixed by
  ``seed``, its derivative by Hutchinson traces with the same probes
  (:mod:`lmmjax.structure.krylov`).

The log-likelihood is therefore an estimate: on a 20,000-row 500 × 100
crossed design it is within ~1e-4 of the exact kinds' (see the tests), a
deterministic smooth function of θ for a given ``seed``. Scope: later
grouping factors with one (scalar) term each, e.g. ``(1|a) + (1|b) +
(1|c)`` or ``(1 + x|a) + (1|b)``; no residual structures. After the fit
S⁻¹ is available only through solves (conditional modes); conditional
variances need its diagonal and are refused.

Chosen by ``Model.with_schur("iterative")`` or ``schur="iterative"`` in
:func:`~lmmjax.structure.crossprod.build_structure`; automatically when
the dense kind's evaluation (about six q2 × q2 matrices) would not fit in memory (:func:`dense_fits`) or the
dense factor's work passes :data:`lmmjax.structure.kinds.DENSE_WORK_LIMIT`.
Each product with S goes through :mod:`lmmjax.structure.schur_product`
(scipy's sparse kernels on a CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ModelSpecError
from .krylov import logdet, pcg_solve
from .lambda_map import lambda_gather, lambda_weights
from .pattern import rest_columns
from .schur_product import level_pointers, schur_product

jax.config.update("jax_enable_x64", True)


class IterativeFactor(NamedTuple):
    """What the iterative kind keeps after the fit: the operator's arrays (S v from them), and
    the largest relative residual ‖Sx − S y‖ / ‖Sx‖ of the CG solves for [X y] at θ
    (:data:`CG_RESIDUAL_LIMIT`; ``fit.check()`` flags a solve that stopped short)."""

    op: dict
    idx: dict
    cg_residual: object = None


#: relative residual of the fit's CG solves above which ``check()`` says they did not converge
#: (the solves aim at ``tol`` = 1e-10; beyond 1e-6 β̂ and the criterion may be off in their reported digits)
CG_RESIDUAL_LIMIT = 1e-6


def check_iterative_design(blocks: list, residual=None) -> None:
    """Raise :class:`~lmmjax.errors.ModelSpecError` for designs the iterative kind does not support."""
    wide = [b for b in blocks[1:] if b.p != 1]
    if wide:
        b = wide[0]
        raise ModelSpecError(
            f"The iterative block kind supports one scalar random-effect term per grouping factor after the "
            f"first (e.g. (1 | a) + (1 | b)); '{b.group}' has {b.p} columns ({', '.join(b.columns)}). "
            "Use the dense or tiled kind (schur='auto' or 'tiled'), or put that factor first by giving it "
            "the most levels.")
    if residual is not None:
        raise ModelSpecError("The iterative block kind does not support residual correlation or variance "
                             "structures; use the dense or tiled kind (schur='auto' or 'tiled').")


def later_products(blocks: list, z2_col: np.ndarray | None = None):
    """The nonzeros of Z₂ᵀZ₂: (row, column) of each, sorted, and each row product's slot among them."""
    q2 = sum(b.nlevels * b.p for b in blocks[1:])
    if z2_col is None:
        z2_col, _, _ = rest_columns(blocks, len(blocks[0].codes))
    if z2_col.shape[1] == 1:  # one scalar later term: Z₂ᵀZ₂ is diagonal; O(n) instead of a sort of n keys
        used = np.bincount(z2_col[:, 0], minlength=q2) > 0
        cols = np.flatnonzero(used)
        slot = (np.cumsum(used) - 1)[z2_col[:, 0]]
        return cols, cols, slot.reshape(-1, 1, 1)
    key = (z2_col[:, :, None].astype(np.int64) * q2 + z2_col[:, None, :]).ravel()
    ukeys, slot = np.unique(key, return_inverse=True)
    return ukeys // q2, ukeys % q2, slot.reshape(z2_col.shape + (z2_col.shape[1],))


@dataclass(frozen=True)
class IterativeLaterBlocks:
    """Later blocks solved by conjugate gradients, log|S| by stochastic Lanczos quadrature.

    Parameters
    ----------
    probes : Rademacher probe vectors of the log-determinant estimate
    steps : Lanczos steps per probe
    sketch, power : vectors and subspace iterations finding eigenvalues of M far from 1, taken out of
        the probes' trace (:func:`lmmjax.structure.krylov.logdet`)
    seed : the probes' seed (fixed per model: the objective is deterministic)
    tol, maxiter : relative residual tolerance and iteration cap of each CG solve

    Examples
    --------
    >>> model = build_model("y ~ 1 + (1 | a) + (1 | b)", data).with_schur("iterative")  # doctest: +SKIP
    """

    probes: int = 8
    sketch: int = 4
    power: int = 3
    steps: int = 16
    seed: int = 0
    tol: float = 1e-10
    maxiter: int = 1000
    schur = "iterative"
    name = "iterative"
    uses_pairs = True  # the entries of Z₂ᵀZ₁ (no pairs: entry_pairs is empty)
    uses_dense_a21 = False
    #: never padded to a shape bucket: a kind for large designs
    padded_later = None

    # ---- host side: the pattern ---------------------------------------------------------------
    def check_structure(self, blocks, residual):
        """Refuse what the kind does not support (:func:`check_iterative_design`)."""
        check_iterative_design(blocks, residual)

    def index_arrays(self, blocks):
        lam_index, lam_weight = lambda_gather(blocks)
        rows, cols, _ = later_products(blocks)
        sizes = np.array([b.nlevels * b.p for b in blocks[1:]])
        block_of = np.repeat(np.arange(len(sizes)), sizes)
        signs = 2.0 * np.random.default_rng(self.seed).integers(0, 2, (len(block_of), self.probes + self.sketch)) - 1
        return dict(lam_index=lam_index, lam_weight=lam_weight, a22_row=rows.astype(np.int32),
                    a22_col=cols.astype(np.int32), block_of=block_of.astype(np.int32),
                    later_sizes=sizes.astype(np.int32), probes=signs[:, :self.probes], sketch=signs[:, self.probes:])

    def a22_shape(self, blocks):
        return (len(later_products(blocks)[0]),)

    def a22_slots(self, blocks, z2_col):
        return later_products(blocks, z2_col)[2]

    def entry_pairs(self, blocks, ent_row, ent_level, l1):
        return np.zeros(0, np.int32), np.zeros(0, np.int32)

    def pair_targets(self, blocks, r1, r2):
        return np.zeros(len(r1), np.int64)

    def n_slots(self, blocks):
        return 1

    # ---- JAX side: the operator -----------------------------------------------------------------
    @staticmethod
    def matvec(op, idx, v):
        """S v for one vector v (q2,)."""
        q2 = v.shape[0]
        x = op["lam"] * v
        a22 = jax.ops.segment_sum(op["a22"] * x[idx["a22_col"]], idx["a22_row"], num_segments=q2,
                                  indices_are_sorted=True)
        update = schur_product(op["ent_a"], op["W"], x, idx["ent_row"], idx["ent_level"], idx["level_ptr"])
        return v + op["lam"] * (a22 - update)

    @staticmethod
    def diagonal(op, idx):
        """diag S (q2,)."""
        q2 = op["lam"].shape[0]
        on_diag = jnp.where(idx["a22_row"] == idx["a22_col"], op["a22"], 0.0)
        a22 = jax.ops.segment_sum(on_diag, idx["a22_row"], num_segments=q2, indices_are_sorted=True)
        ent_a = op["ent_a"]
        c = jax.ops.segment_sum(jnp.einsum("ea,eab,eb->e", ent_a, op["W"][idx["ent_level"]], ent_a),
                                idx["ent_row"], num_segments=q2)
        return 1.0 + op["lam"] ** 2 * (a22 - c)

    @staticmethod
    def deflation(op, idx, d):
        """One unit vector per later factor, √d on its columns: M's near-null direction when Z₂·1 ∈ span Z₁.

        (M = D^-1/2 S D^-1/2; for ``(1|a) + (1|b)`` the eigenvalue of M along
        it is 0.01–0.15 at typical θ, against a cluster of the rest near 1.)
        """
        n_blocks = idx["later_sizes"].shape[0]
        U = jnp.sqrt(d)[None, :] * (idx["block_of"][None, :] == jnp.arange(n_blocks)[:, None])
        return U / jnp.linalg.norm(U, axis=1, keepdims=True)

    def factor(self, theta, arrays, dims, W, keep_factor):
        lam = lambda_weights(theta, arrays)[:, 0]
        op = dict(lam=lam, W=W, a22=arrays["A22"], ent_a=arrays["ent_a"])
        idx = {k: arrays[k] for k in ("a22_row", "a22_col", "ent_row", "ent_level", "block_of", "later_sizes")}
        idx["level_ptr"] = level_pointers(idx["ent_level"], dims.l1)
        D = column_sums(idx, op["ent_a"], jnp.einsum("jab,jbm->jam", W, arrays["A1X"]), dims.q2)
        Sx = lam[:, None] * (arrays["A2X"] - D)
        Y = pcg_solve(lambda v: self.matvec(op, idx, v), self.diagonal(op, idx), Sx, self.tol, self.maxiter)
        quad = Sx.T @ Y
        logdet2 = logdet(self, op, idx, arrays["probes"], arrays["sketch"])
        if not keep_factor:
            return logdet2, 0.5 * (quad + quad.T), None
        residual = Sx - jax.vmap(lambda v: self.matvec(op, idx, v), in_axes=1, out_axes=1)(Y)
        size = jnp.maximum(jnp.linalg.norm(Sx, axis=0), jnp.finfo(Sx.dtype).tiny)
        cg_residual = jnp.max(jnp.linalg.norm(residual, axis=0) / size)
        return logdet2, 0.5 * (quad + quad.T), IterativeFactor(op, idx, cg_residual)

    # ---- after the fit ----------------------------------------------------------------------------
    def solve_jax(self, rest, rhs):
        """S⁻¹ rhs in JAX (rhs (q2,) or (q2, k)) by preconditioned CG."""
        op, idx = rest.op, rest.idx
        return pcg_solve(lambda v: self.matvec(op, idx, v), self.diagonal(op, idx), rhs, self.tol, self.maxiter)

    def solve(self, rest, rhs):
        """S⁻¹ rhs (numpy)."""
        return np.asarray(_solve_jit(self, rest, np.asarray(rhs, float)))

    def inverse_diagonal_blocks(self, rest, blocks):
        raise _no_inverse("conditional variances of the random effects")

    def inverse_matrix(self, rest, blocks):
        raise _no_inverse("S⁻¹ (leverage, conditional variances)")

    def inverse_quadratic_blocks(self, rest, blocks, M, p):
        raise _no_inverse("conditional variances of the random effects")


def _no_inverse(what: str) -> ModelSpecError:
    return ModelSpecError(f"The iterative block kind does not form S⁻¹, which {what} need. Refit with an exact "
                          "kind (model.with_schur('tiled') or 'auto') where S fits in memory.")


_solve_jit = jax.jit(lambda kind, rest, rhs: kind.solve_jax(rest, rhs), static_argnums=0)


def column_sums(idx, ent_a, per_level, q2: int):
    """Z₂ᵀZ₁ times per-level values: Σ over entries e of column r of ent_a[e] · per_level[level e].

    ``per_level`` is (l1, p1) or (l1, p1, m); the result (q2,) or (q2, m).
    """
    vals = jnp.einsum("ea,ea...->e...", ent_a, per_level[idx["ent_level"]])
    return jax.ops.segment_sum(vals, idx["ent_row"], num_segments=q2)


def dense_fits(q2: int, copies: int = 6) -> bool:
    """Whether ``copies`` dense q2 × q2 float64 matrices fit in the default device's memory.

    One evaluation of the exact kinds' deviance and gradient holds about 5.3
    (Z₂ᵀZ₂ plus 4.1–4.3 q2² of temporaries: S, its factor, L⁻¹, S⁻¹; XLA's
    memory analysis at q2 = 2,000–5,000); six leave a margin for the
    compiler's own buffers. Beyond this only the iterative kind can run.
    """
    return copies * 8 * q2 * q2 <= device_memory_bytes()


def device_memory_bytes() -> int:
    """Memory of the default device: its limit on an accelerator, physical RAM on a CPU."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
