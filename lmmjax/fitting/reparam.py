"""Fit θ in a parametrisation where the random-effect columns are centred and scaled.

The optimum of a model does not depend on the units of its random-effect
covariates, but the optimizer does: with ``(Days | Subject)`` and Days in
units of 1e-6 (``Days * 1e6``) or shifted by 1e6 (``Days + 1e6``), the
slope's θ entries are ~1e-7 or nearly collinear with the intercept's, the
deviance is flat to L-BFGS-B in those directions and θ never leaves its
start (REML criterion 2269.8 against the optimum 1743.63; lme4 stops at
1812).

Here each term's columns are mapped ``Z_t = Z̃_t D_t``: every column scaled
to unit RMS and, in a term with an intercept column first and a full
(correlated) T, centred (``D_t`` upper triangular, the means in its first
row). The fit runs on Z̃ and θ is mapped back: the random effects of the
original columns are ``b = D⁻¹ b̃``, so ``Λ Λᵀ = D⁻¹ Λ̃ Λ̃ᵀ D⁻ᵀ`` and T is the
lower-triangular factor of ``D⁻¹ T̃`` (a QR decomposition; exact for a pure
scaling, and valid on the boundary). The deviance at the mapped θ is the
deviance the scaled fit found: the two are the same model.

Only models whose columns are badly scaled are refitted this way
(:func:`reparametrisation`), so well-scaled models keep their path and
numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..structure.crossprod import build_structure

#: A column is badly scaled when its RMS (after centring, where allowed) is
#: outside [1/BAD_SCALE, BAD_SCALE] or its mean exceeds BAD_SCALE times its SD.
BAD_SCALE = 20.0


def _term_map(Z: np.ndarray, full: bool):
    """D (p × p) with ``Z = Z̃ D``: columns scaled, centred if ``full`` and column 0 is all ones."""
    p = Z.shape[1]
    centre = full and p > 1 and np.all(Z[:, 0] == 1.0)
    mean = np.where(np.arange(p) > 0, Z.mean(axis=0), 0.0) if centre else np.zeros(p)
    scale = np.sqrt(np.mean((Z - mean) ** 2, axis=0))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    if centre:
        scale[0] = 1.0
    D = np.diag(scale)
    D[0, 1:] += mean[1:]
    bad = np.any((scale > BAD_SCALE) | (scale < 1.0 / BAD_SCALE)) or np.any(np.abs(mean) > BAD_SCALE * scale)
    return D, bool(bad)


def lower_factor(M: np.ndarray) -> np.ndarray:
    """The lower-triangular L with non-negative diagonal and ``L Lᵀ = M Mᵀ`` (M square)."""
    _, R = np.linalg.qr(M.T)
    L = R.T
    sign = np.where(np.diagonal(L) < 0, -1.0, 1.0)
    L = L * sign[None, :]
    tiny = np.abs(np.diagonal(L)) <= 1e-13 * max(np.abs(M).max(), 1e-300)  # rounding of an exact 0
    L[np.diag_indices_from(L)] = np.where(tiny, 0.0, np.diagonal(L))
    return L


def map_theta(maps: list, theta, left) -> np.ndarray:
    """θ with each term's T replaced by the lower factor of ``left(D) @ T``."""
    theta = np.asarray(theta, float)
    out = theta.copy()
    ext = np.concatenate([[0.0], theta])
    for index, D in maps:
        T = ext[index]
        L = lower_factor(left(D) @ T)
        rows, cols = np.nonzero(index)
        out[index[rows, cols] - 1] = L[rows, cols]
    return out


@dataclass(frozen=True, eq=False)
class Reparametrisation:
    """A model refitted with centred and scaled random-effect columns, and the θ maps.

    Attributes
    ----------
    model : the :class:`~lmmjax.model.Model` with Z̃ in place of Z
    maps : list of (θ index array (p, p), D) per term
    """

    model: object
    maps: list

    def _apply(self, theta, left) -> np.ndarray:
        return map_theta(self.maps, theta, left)

    def to_original(self, theta_scaled) -> np.ndarray:
        """θ of the original columns from θ̃ (T = lower factor of D⁻¹ T̃)."""
        return self._apply(theta_scaled, np.linalg.inv)

    def to_scaled(self, theta) -> np.ndarray:
        """θ̃ of the scaled columns from θ (T̃ = lower factor of D T)."""
        return self._apply(theta, lambda D: D)


def column_maps(model):
    """Per term (θ index array, D) with ``Z_t = Z̃_t D``, and whether any column is badly scaled."""
    used = model.weights > 0
    every = bool(np.all(used))
    maps, any_bad = [], False
    for blk in model.blocks:
        Z = blk.Z if every else blk.Z[used]
        for _, sl in blk.term_slices:
            index = blk.theta_index[sl, sl]
            full = bool(np.all(index[np.tril_indices(index.shape[0])] > 0))
            D, bad = _term_map(np.asarray(Z[:, sl], float), full)
            any_bad |= bad
            maps.append((index, D))
    return maps, any_bad


def boundary_theta(model, theta) -> np.ndarray:
    """θ where the boundary (a singular fit) is judged: in the centred and scaled
    parametrisation when some random-effect column is badly scaled, else θ itself.

    lme4's test (a diagonal entry of T below 1e-4) depends on the units of the
    covariate: with Days × 1e4 the slope's entry is 2e-5 for the fit of Days
    (correlation 0.07, no variance near 0), which lme4 calls singular.
    """
    maps, bad = column_maps(model)
    return map_theta(maps, theta, lambda D: D) if bad else np.asarray(theta, float)


def reparametrisation(model) -> Reparametrisation | None:
    """The scaled refit of ``model``, or None when every random-effect column is well scaled.

    Examples
    --------
    >>> plan = reparametrisation(model)  # doctest: +SKIP
    >>> theta = plan.to_original(theta_scaled)  # doctest: +SKIP
    """
    maps, any_bad = column_maps(model)
    if not any_bad:  # the usual case: nothing copied, the usual path
        return None
    blocks, k = [], 0
    for blk in model.blocks:
        Z = np.array(blk.Z, dtype=float)
        for _, sl in blk.term_slices:
            Z[:, sl] = np.linalg.solve(maps[k][1].T, Z[:, sl].T).T  # Z̃ = Z D⁻¹
            k += 1
        blocks.append(replace(blk, Z=Z))
    structure = build_structure(blocks, model.X, model.reml, model.layout.n_t,
                                schur=getattr(model.dims.kind, "schur", "auto"), residual=model.residual)
    scaled = replace(model, blocks=blocks, structure=structure)
    return Reparametrisation(model=replace(scaled, arrays=scaled.values()), maps=maps)
