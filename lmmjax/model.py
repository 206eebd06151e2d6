"""A model structure: everything that is fixed before θ is optimised."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .formula.model_frame import ModelFrame, build_model_frame
from .structure.blocks import Block, ThetaLayout, build_blocks
from .structure.crossprod import Dims, cross_products


@dataclass(frozen=True)
class Model:
    """Model frame, blocks, θ layout and cross-products of one model.

    Built once by :func:`build_model`; refits with another response or
    estimation method make new ``Model`` objects through
    :meth:`with_response` and :meth:`with_reml`.
    """

    frame: ModelFrame
    blocks: list
    layout: ThetaLayout
    dims: Dims
    arrays: dict
    Z2: sp.csr_matrix
    data_name: str | None = None

    @property
    def reml(self) -> bool:
        return self.dims.reml

    @property
    def y(self) -> np.ndarray:
        return self.frame.y

    @property
    def X(self) -> np.ndarray:
        return self.frame.X

    def with_reml(self, reml: bool) -> "Model":
        """The same model estimated by REML (True) or ML (False)."""
        return replace(self, dims=replace(self.dims, reml=bool(reml)))

    def with_response(self, y: np.ndarray) -> "Model":
        """The same design with another response vector (cross-products of y redone)."""
        y = np.asarray(y, dtype=float)
        frame = replace(self.frame, y=y)
        arrays = dict(self.arrays)
        arrays.update(response_products(self, y))
        return replace(self, frame=frame, arrays=arrays)

    def with_schur(self, schur: str) -> "Model":
        """The same model with the dense Schur update done as "pairs" or "matmul".

        The batched Satterthwaite derivatives (second order, vmapped) compile
        far faster through the pair scatter than through the matmul form.
        """
        if self.dims.schur == schur or self.dims.rest != "dense":
            return self
        dims, arrays, Z2 = cross_products(self.blocks, self.X, self.y, self.reml, self.layout.size, schur=schur)
        return replace(self, dims=dims, arrays=arrays, Z2=Z2)

    def z_times(self, b_blocks: list) -> np.ndarray:
        """Z b for random effects given per block as (nlevels, p) arrays."""
        out = np.zeros(self.dims.n)
        for blk, b in zip(self.blocks, b_blocks):
            out += np.einsum("ip,ip->i", blk.Z, b[blk.codes])
        return out


def response_products(model: Model, y: np.ndarray) -> dict:
    """The parts of the cross-products that depend on y (for refits)."""
    from .structure.crossprod import per_level_products

    XY = np.column_stack([model.X, y])
    b1 = model.blocks[0]
    out = dict(A1X=per_level_products(b1.codes, b1.Z, XY, b1.nlevels), AXX=XY.T @ XY)
    if model.dims.q2 > 0:
        out["A2X"] = np.asarray(model.Z2.T @ XY)
    return out


def build_model(formula: str, data: pd.DataFrame, reml: bool = True) -> Model:
    """Parse, check and precompute everything for ``formula`` on ``data``."""
    mf = build_model_frame(formula, data)
    blocks, layout = build_blocks(mf)
    dims, arrays, Z2 = cross_products(blocks, mf.X, mf.y, reml, layout.size)
    return Model(frame=mf, blocks=blocks, layout=layout, dims=dims, arrays=arrays, Z2=Z2)
