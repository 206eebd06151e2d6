"""A model structure: everything that is fixed before θ is optimised."""
from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import ModelSpecError
from .memo import memoized
from .formula.glm_response import glm_prior_weights
from .formula.model_frame import ModelFrame, build_model_frame
from .objective.crossprod import design_products_jit
from .objective.padding import unpad_arrays
from .objective.residual import whitening_rows
from .objective.residual_engines import residual_engine
from .objective.sharded_rows import row_cross_products
from .structure.pattern import pad_rows
from .structure.residual import build_residual_rows
from .structure.blocks import ThetaLayout, build_blocks, sparse_z, sparse_z1
from .structure.crossprod import Dims, Structure, build_structure


@dataclass(frozen=True, eq=False)
class Model:
    """Model frame, blocks, θ layout, structure and cross-product values of one model.

    Built once by :func:`build_model`. Refits with another response, other
    row weights or another estimation method make new ``Model`` objects
    (:meth:`with_response`, :meth:`with_weights`, :meth:`with_reml`); every
    one recomputes its cross-products through the single JAX function
    :func:`lmmjax.objective.crossprod.cross_products`.

    Attributes
    ----------
    weights : ndarray (nobs,)
        Prior weights of the rows used (1 without ``weights=``); residual
        variance σ²/wᵢ; a zero weight leaves the row out of the likelihood.
    offset : ndarray (nobs,)
        Known part of the linear predictor (0 without an offset).
    residual : ResidualRows or None
        A residual covariance structure (AR(1), CAR(1), VarIdent). Its
        parameters follow the T entries in θ, and the cross-products depend
        on them: ``arrays`` then holds what the engine chosen when the
        structure was built reads (:mod:`lmmjax.objective.residual_engines`):
        the raw rows, whitened at every evaluation, or (AR(1) without
        VarIdent) cross-product sets made once and combined at every evaluation.
    """

    frame: ModelFrame
    blocks: list
    layout: ThetaLayout
    structure: Structure
    weights: np.ndarray
    offset: np.ndarray
    arrays: dict
    data_name: str | None = None
    residual: object = None  # ResidualRows (lmmjax.structure.residual) or None

    @property
    def dims(self) -> Dims:
        return self.structure.dims

    @property
    def pattern(self):
        return self.structure.pattern

    @property
    def reml(self) -> bool:
        return self.dims.reml

    @property
    def y(self) -> np.ndarray:
        return self.frame.y

    @property
    def X(self) -> np.ndarray:
        return self.frame.X

    @property
    def n_rows(self) -> int:
        """Rows of the model frame (including any with zero weight)."""
        return len(self.frame.y)

    @property
    def nobs(self) -> int:
        """Observations in the likelihood (rows with positive weight)."""
        return int(np.sum(self.weights > 0))

    @property
    def weighted(self) -> bool:
        return bool(np.any(self.weights != 1.0))

    @property
    @memoized
    def Z2(self) -> sp.csr_matrix:
        """The later blocks' Z (rows × q2, sparse, columns level-major)."""
        return sparse_z(self.blocks, self.n_rows)

    @property
    @memoized
    def A21(self) -> sp.csr_matrix:
        """Z₂ᵀWZ₁ (q2 × l1·p1, sparse) with the prior weights."""
        Z1 = sparse_z1(self.blocks[0])
        return (self.Z2.T @ sp.diags(self.weights) @ Z1).tocsr()

    # ---- cross-product values -------------------------------------------------------
    def _values_of(self, structure, w, y) -> dict:
        pat = structure.pattern
        vals = row_cross_products(pat.arrays, pat.pad(w), pat.pad(y), pat.pad(self.offset), structure.dims)
        return {**structure.index, **vals}

    def values(self, weights=None, y=None) -> dict:
        """Index arrays and cross-product values (true sizes) for other weights and/or response.

        With a residual structure: what its engine reads (the raw padded rows,
        or the sets made from them once, :mod:`lmmjax.objective.residual_engines`). A
        small model computes its values on its structure padded to its shape
        bucket (one program per bucket) and cuts them to the true sizes.
        """
        w = self.weights if weights is None else np.asarray(weights, float)
        y = self.y if y is None else np.asarray(y, float)
        if self.residual is not None:
            return residual_engine(self.dims).values(self._raw_rows(w, y, weights is not None), self.dims)
        bucket = self.structure.bucket
        if bucket is None:
            return self._values_of(self.structure, w, y)
        return unpad_arrays(self._values_of(bucket, w, y), self.structure.index, self.dims, bucket.dims)

    def _raw_rows(self, w, y, relink: bool) -> dict:
        """The padded rows of a model with a residual structure: pattern, weights, response, row links."""
        pat = self.pattern
        rows = self.residual.relinked(w) if relink else self.residual
        extra = np.arange(self.n_rows, pat.n_rows)
        return {**self.structure.index, **pat.arrays, "w": pat.pad(w), "y": pat.pad(y),
                "offset": pat.pad(self.offset), "pred": np.concatenate([rows.pred, extra]).astype(np.int32),
                "has_pred": pad_rows(rows.has_pred, pat.n_rows, False), "dt": pat.pad(rows.dt, 1.0),
                "var_codes": pad_rows(rows.var_codes.astype(np.int32), pat.n_rows),
                "nobs": np.float64(np.sum(w > 0))}

    @property
    def fit_dims(self) -> Dims:
        """The Dims the fit runs on: the shape bucket's for a small model, else :attr:`dims`."""
        bucket = self.structure.bucket
        return self.dims if bucket is None else bucket.dims

    @property
    @memoized
    def fit_arrays(self) -> dict:
        """The arrays the fit runs on (at :attr:`fit_dims`): padded for a small model, else :attr:`arrays`.

        Only the fit (:func:`lmmjax.lmer.optimize_theta`) reads them, through
        :mod:`lmmjax.objective.padding`; everything else uses :attr:`arrays`.
        """
        bucket = self.structure.bucket
        if bucket is None:
            return self.arrays
        return self._values_of(bucket, self.weights, self.y)

    def response_inputs(self) -> dict:
        """Inputs of :func:`lmmjax.objective.crossprod.response_arrays` (batched refits)."""
        pat = self.pattern
        if self.residual is not None:
            raw = self._raw_rows(self.weights, self.y, relink=False)
            return dict(residual_engine(self.dims).response_inputs(raw, self.dims), pattern=pat.arrays,
                        w=raw["w"], offset=raw["offset"], index=self.structure.index)
        w = pat.pad(self.weights)
        return dict(pattern=pat.arrays, w=w, offset=pat.pad(self.offset), index=self.structure.index,
                    design=design_products_jit(pat.arrays, w, self.dims))

    def pad_responses(self, Y) -> np.ndarray:
        """Responses (B, n_rows) padded to the pattern's rows: (B, padded rows)."""
        Y = np.asarray(Y, float)
        return np.pad(Y, ((0, 0), (0, self.pattern.n_rows - Y.shape[1])))

    def with_reml(self, reml: bool) -> "Model":
        """The same model estimated by REML (True) or ML (False)."""
        def method(structure):
            return None if structure is None else replace(structure, dims=replace(structure.dims, reml=bool(reml)))

        structure = replace(method(self.structure), bucket=method(self.structure.bucket))
        return replace(self, structure=structure)

    def with_response(self, y: np.ndarray) -> "Model":
        """The same design with another response vector."""
        y = np.asarray(y, dtype=float)
        return replace(self, frame=replace(self.frame, y=y), arrays=self.values(y=y))

    def with_weights(self, weights: np.ndarray) -> "Model":
        """The same design with other prior weights (0 removes a row, e.g. deletion refits).

        With AR residuals a removed row is a missing time point: its
        successor's predecessor becomes the row before it.
        """
        weights = np.asarray(weights, dtype=float)
        if self.residual is not None:
            rows = self.residual.relinked(weights)
            model = replace(self, weights=weights, residual=rows)
            if self.dims.residual.doubled:
                model = replace(model, structure=self._structure(self.blocks, self.X, rows=rows))
            return replace(model, arrays=model.values())
        return replace(self, weights=weights, arrays=self.values(weights=weights))

    def with_fixed_columns(self, keep) -> "Model":
        """The same random part and rows with only the fixed-effect columns ``keep`` (positions)."""
        keep = list(keep)
        frame = replace(self.frame, X=self.X[:, keep], fixed_names=[self.frame.fixed_names[j] for j in keep])
        structure = self._structure(self.blocks, frame.X)
        model = replace(self, frame=frame, structure=structure)
        return replace(model, arrays=model.values())

    def with_schur(self, schur: str) -> "Model":
        """The same model with its later blocks of another kind: a dense Schur update done as
        "pairs" or "matmul", the "tiled" kind, or the "iterative" kind (S never formed: CG
        solves, a stochastic Lanczos log-determinant; :mod:`lmmjax.structure.iterative`).

        The batched Satterthwaite derivatives (second order, vmapped) compile
        far faster through the pair scatter than through the matmul form.
        """
        kind = self.dims.kind
        if getattr(kind, "schur", schur) == schur:
            return self
        structure = self._structure(self.blocks, self.X, schur=schur)
        model = replace(self, structure=structure)
        return replace(model, arrays=model.values())

    def _structure(self, blocks, X, schur=None, rows=None) -> Structure:
        """A structure for other blocks/X with this model's residual structure and Schur choice."""
        schur = getattr(self.dims.kind, "schur", "auto") if schur is None else schur
        return build_structure(blocks, X, self.reml, self.layout.n_t, schur=schur,
                               residual=self.residual if rows is None else rows)

    def arrays_at(self, theta) -> dict:
        """The objective's cross-product arrays at θ (the stored ones without a residual structure)."""
        if self.residual is None:
            return self.arrays
        products = residual_engine(self.dims).products_jit
        return jax.tree_util.tree_map(np.asarray, products(np.asarray(theta, float), self.arrays, self.dims))

    def whitening(self, theta) -> sp.csr_matrix:
        """The sparse n × n matrix P with P Σ Pᵀ = σ² I on the rows (I without a residual structure;
        rows out of the likelihood are zero)."""
        if self.residual is None:
            return sp.diags(np.sqrt(self.weights)).tocsr()
        s, rho, c = whitening_rows(theta, self.residual, self.weights, self.dims.residual)
        n = self.n_rows
        rows = np.arange(n)
        lag = sp.csr_matrix((-c * rho * s[self.residual.pred], (rows, self.residual.pred)), shape=(n, n))
        return (sp.diags(c * s) + lag).tocsr()

    def a21_at(self, theta) -> sp.csr_matrix:
        """Z₂ᵀWZ₁ (weighted, or whitened with a residual structure) at θ."""
        if self.residual is None:
            return self.A21
        P = self.whitening(theta)
        return ((P @ self.Z2).T @ (P @ sparse_z1(self.blocks[0]))).tocsr()

    def z_times(self, b_blocks: list) -> np.ndarray:
        """Z b for random effects given per block as (nlevels, p) arrays."""
        out = np.zeros(self.n_rows)
        for blk, b in zip(self.blocks, b_blocks):
            out += np.einsum("ip,ip->i", blk.Z, b[blk.codes])
        return out


def _row_values(arg, data: pd.DataFrame, frame: ModelFrame, what: str) -> tuple[np.ndarray, str]:
    """Values of a ``weights=``/``offset=`` argument (column name or array) for the rows used."""
    if isinstance(arg, str):
        if arg not in data.columns:
            raise ModelSpecError(f"The {what} column {arg!r} is not in the data (available: {list(data.columns)}).")
        values, name = data[arg], f"column {arg!r}"
    else:
        values, name = arg, f"{what} array"
        if np.ndim(values) != 1 or len(values) != len(data):
            raise ModelSpecError(f"{what} must be a column name or an array with one value per data row "
                                 f"({len(data)}); got shape {np.shape(values)}.")
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ModelSpecError(f"The {what} ({name}) must be numeric.") from None
    return values[frame.positions], name  # the model frame's rows, by position in ``data``


def model_weights(weights, data, frame) -> np.ndarray:
    """Prior weights for the rows used, checked (finite, ≥ 0, not all 0)."""
    if weights is None:
        return np.ones(frame.nobs)
    w, name = _row_values(weights, data, frame, "weights")
    if not np.all(np.isfinite(w)):
        raise ModelSpecError(f"The weights ({name}) have missing or infinite values; weights must be finite.")
    if np.any(w < 0):
        raise ModelSpecError(f"The weights ({name}) have negative values ({int(np.sum(w < 0))} rows); "
                             "prior weights must be non-negative.")
    if np.sum(w > 0) <= frame.X.shape[1]:
        raise ModelSpecError(f"The weights ({name}) leave {int(np.sum(w > 0))} rows with positive weight, "
                             f"too few for {frame.X.shape[1]} fixed effects.")
    return w


def model_offset(offset, data, frame) -> np.ndarray:
    """The offset for the rows used: the ``offset=`` argument plus any ``offset()`` in the formula."""
    total = np.array(getattr(frame, "offset", None) if getattr(frame, "offset", None) is not None
                     else np.zeros(frame.nobs), dtype=float)
    if offset is not None:
        o, name = _row_values(offset, data, frame, "offset")
        if not np.all(np.isfinite(o)):
            raise ModelSpecError(f"The offset ({name}) has missing or infinite values; it must be finite.")
        total = total + o
    return total


def order_for_residual(blocks: list, rows) -> list:
    """Blocks with one that is constant within the AR groups first (block 1 must be:
    whitened rows mix a row with its predecessor, which must share block 1's level)."""
    if rows is None or rows.correlation is None or rows.constant_within_groups(blocks[0].codes):
        return blocks
    for i, b in enumerate(blocks):
        if rows.constant_within_groups(b.codes):
            return [b] + blocks[:i] + blocks[i + 1:]
    g = rows.correlation.group
    raise ModelSpecError(
        f"The AR group {g!r} is not nested in any random-effect grouping factor "
        f"({[b.group for b in blocks]}): one of them must be constant within each level of {g!r}. "
        f"Add a random effect for {g!r} (e.g. '(1 | {g})'), or use a group nested in a grouping factor.")


def build_model(formula: str, data: pd.DataFrame, reml: bool = True, weights=None, offset=None,
                family=None, correlation=None, variance=None) -> Model:
    """Parse, check and precompute everything for ``formula`` on ``data``.

    With a GLM ``family`` the response is glm's (binomial: the proportion) and
    the prior weights include the binomial trials of ``cbind(successes, failures)``.

    ``correlation`` (AR1, CAR1 or their string form) and ``variance``
    (VarIdent) add a residual covariance structure
    (:mod:`lmmjax.structure.residual`).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> model = build_model("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> model.nobs
    180
    """
    mf = build_model_frame(formula, data, family=family)
    w = model_weights(weights, data, mf)
    if mf.glm is not None:
        w = glm_prior_weights(mf.glm, w, weights_given=weights is not None)
    off = model_offset(offset, data, mf)
    blocks, layout = build_blocks(mf)
    factor_codes = {tm.term.factors[0]: (tm.codes, tm.levels) for tm in mf.terms if len(tm.term.factors) == 1}
    rows = build_residual_rows(correlation, variance, data, mf.positions, w, factor_codes)
    if rows is not None:
        blocks = order_for_residual(blocks, rows)
    structure = build_structure(blocks, mf.X, reml, layout.size, residual=rows)
    if rows is not None:
        layout = layout.with_residual(rows.names, structure.dims.residual.kinds)
    model = Model(frame=mf, blocks=blocks, layout=layout, structure=structure, weights=w, offset=off, arrays={},
                  residual=rows)
    return replace(model, arrays=model.values())
