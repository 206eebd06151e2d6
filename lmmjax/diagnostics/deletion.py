"""Refits with some rows deleted: the same structure with weight 0 on those rows.

Deleting rows changes only the row weights of the cross-products
(:func:`lmmjax.objective.crossprod.cross_products`); the pattern, the shapes
and :class:`~lmmjax.structure.crossprod.Dims` stay as they are. A level whose
rows are all deleted keeps its place with a zero cross-product (its block of
``Λ'Z'WZΛ + I`` is the identity, contributing nothing), so the deleted-data
optimum is exactly that of a fit to the data without those rows, and one
compiled program serves every case. The cases are fitted together by the
batched trust-region Newton method (:func:`lmmjax.simulate.fit_weights`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lmer import optimize_theta
from ..simulate.batched import fit_weights


def deletion_weights(model, row_sets: list) -> np.ndarray:
    """Row weights (cases × rows): the model's prior weights with each case's rows set to 0."""
    W = np.tile(model.weights, (len(row_sets), 1))
    for i, rows in enumerate(row_sets):
        W[i, np.asarray(rows, dtype=np.int64)] = 0.0
    return W


def fixed_rank_ok(X: np.ndarray, w: np.ndarray, tol: float = 1e-10) -> bool:
    """Whether X of the rows with positive weight still has full column rank."""
    p = X.shape[1]
    if p == 0:
        return True
    XtX = (X * w[:, None]).T @ X
    scale = np.sqrt(np.maximum(np.diag(XtX), 0.0))
    if np.any(scale <= tol * max(1.0, scale.max())):
        return False
    R = XtX / np.outer(scale, scale)
    return bool(np.linalg.eigvalsh(R).min() > tol)


@dataclass(frozen=True)
class DeletionRefits:
    """Refits of one model with row sets deleted (one row per case).

    ``estimable`` is False where the remaining rows cannot identify the fixed
    effects (X loses full rank, or too few rows): those cases have NaN
    estimates and ``converged`` False.
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    vcov_unscaled: np.ndarray
    deviance: np.ndarray
    converged: np.ndarray
    estimable: np.ndarray


def refit_deleted(model, row_sets: list, theta0, **kwargs) -> DeletionRefits:
    """Refit ``model`` without each set of rows (positions), all cases in one batch.

    Examples
    --------
    >>> r = refit_deleted(fit.model, [np.array([0, 1]), np.array([5])], fit.theta)  # doctest: +SKIP
    """
    W = deletion_weights(model, row_sets)
    p = model.dims.p
    estimable = np.array([fixed_rank_ok(model.X, w) and np.sum(w > 0) > p + 1 for w in W], dtype=bool)
    if getattr(model, "residual", None) is not None:
        return _refit_each(model, W, estimable, theta0)
    res = fit_weights(model, np.where(estimable[:, None], W, model.weights[None, :]), theta0=theta0,
                      progress=False, **kwargs)

    def masked(a):
        a = np.asarray(a, float)
        return np.where(estimable.reshape((-1,) + (1,) * (a.ndim - 1)), a, np.nan)

    return DeletionRefits(theta=masked(res["theta"]), beta=masked(res["beta"]), sigma=masked(res["sigma"]),
                          vcov_unscaled=masked(res["vcov_unscaled"]), deviance=masked(res["deviance"]),
                          converged=res["converged"] & estimable, estimable=estimable)


def _refit_each(model, W, estimable, theta0) -> DeletionRefits:
    """Deletion refits one at a time (single-fit optimizer), for models with a residual structure:
    deleting a row relinks the AR chains (its successor's predecessor becomes the row before it),
    which the batched weights path does not do."""
    k, p = len(np.asarray(theta0)), model.dims.p
    theta, beta = np.full((len(W), k), np.nan), np.full((len(W), p), np.nan)
    sigma, deviance = np.full(len(W), np.nan), np.full(len(W), np.nan)
    vcu, converged = np.full((len(W), p, p), np.nan), np.zeros(len(W), bool)
    for i, (w, ok) in enumerate(zip(W, estimable)):
        if not ok:
            continue
        opt, est = optimize_theta(model.with_weights(w), np.asarray(theta0, float))
        theta[i], beta[i], sigma[i], deviance[i], vcu[i] = est.theta, est.beta, est.sigma, est.deviance, \
            est.vcov_unscaled
        converged[i] = bool(opt.success)
    return DeletionRefits(theta=theta, beta=beta, sigma=sigma, vcov_unscaled=vcu, deviance=deviance,
                          converged=converged, estimable=estimable)


__all__ = ["deletion_weights", "fixed_rank_ok", "refit_deleted", "DeletionRefits"]
