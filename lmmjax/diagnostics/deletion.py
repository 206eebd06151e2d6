"""Refits with some rows deleted, reusing the compiled objective.

Deleting rows of the data changes only the values of the cross-products of
``[Z X y]`` (``A11``, ``A1X``, ``AXX``, ``A22``, ``A2X``, the entries
``ent_a`` of Z₂ᵀZ₁ and the pair coefficients ``pair_coef`` built from them)
and the observation count ``nobs``; the sparsity pattern,
the shapes and :class:`~lmmjax.structure.crossprod.Dims` stay as they are.
A level whose rows are all deleted keeps its place with a zero cross-product
(its block of ``Λ'Z'ZΛ + I`` is the identity, contributing nothing to the
objective), so the deleted-data optimum is exactly that of a fit to the data
without those rows, and compiled code is reused for every case.

Two drivers refit the cases:

- :func:`refit_sequential` runs the engine's L-BFGS-B fit once per case,
  warm-started at θ̂ (10–40 ms a case on sleepstudy and Penicillin);
- :func:`refit_batched` fits all cases of a chunk at once: the summed
  deviance of independent cases is separable, so one L-BFGS-B run over the
  stacked θs, with one ``vmap``-ed value-and-gradient call per iteration,
  fits them together (the bootstrap's trick); cases that do not meet the
  gradient check, or end on a bound (where the single-fit optimizer probes
  for a saddle), are finished one by one with the engine's optimizer.

Measured (2 shared cores): exact deletion of each of the 154 rows of an
unbalanced sleepstudy, 1.3 s sequential vs 1.4 s batched (compilation of the
vmapped objective included); each of the 144 rows of Penicillin (crossed),
5–6 s vs 1.5–2 s. Batching is the default from 48 cases on.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import scipy.optimize as so

from ..fitting.optimize import minimize_deviance, projected_gradient, snap_to_bounds
from ..objective.deviance import deviance_from_factor, factorize_jit, profiled_deviance
from ..structure.blocks import sparse_z1
from ..structure.crossprod import per_level_products

#: Arrays whose values change when rows are deleted (everything else is structure).
DATA_KEYS = ("A11", "A1X", "AXX", "A22", "A2X", "ent_a", "pair_coef", "A21d", "nobs")


#: Arrays that describe structure only (unchanged by deleting rows).
STRUCTURE_KEYS = ("lam_index", "lam_weight", "T1_index", "T2_index", "ent_row", "ent_level",
                  "pair_level", "pair_target", "pair_e1", "pair_e2")
#: Layouts of the later blocks this module knows (``Dims.rest``).
REST_LAYOUTS = ("none", "dense", "blockdiag")


class DeletionArrays:
    """Builds the model's arrays with a set of rows removed.

    The contribution of the deleted rows is subtracted from each
    cross-product; the entries ``ent_a`` of Z₂ᵀZ₁ are updated in place of
    the unchanged pattern and the pair coefficients ``a_e1 ⊗ a_e2`` of the
    Schur update are recomputed from them (pairs found through their level
    and target ``r1·q2 + r2``, as documented in
    :mod:`lmmjax.structure.crossprod`). Deleting no rows reproduces the
    model's arrays exactly (tested); on construction the pair coefficients
    are recomputed from the model's own entries and compared, and unknown
    array keys are refused, so a change in the engine's layout fails loudly
    rather than silently.

    Examples
    --------
    >>> build = DeletionArrays(fit.model)  # doctest: +SKIP
    >>> arrays = build(np.nonzero(fit.model.blocks[0].codes == 0)[0])  # doctest: +SKIP
    """

    def __init__(self, model):
        self.model = model
        arr = model.arrays
        unknown = set(arr) - set(DATA_KEYS) - set(STRUCTURE_KEYS)
        self.rest = getattr(model.dims, "rest", "dense" if model.dims.q2 else "none")
        if unknown or self.rest not in REST_LAYOUTS:
            raise RuntimeError(f"deletion refits do not know the engine's layout (arrays {sorted(unknown)}, "
                               f"later blocks {self.rest!r}); lmmjax.diagnostics.deletion needs updating")
        if model.dims.q2 > 0 and "ent_row" in arr:
            b1 = model.blocks[0]
            q2 = model.dims.q2
            A21 = (model.Z2.T @ sparse_z1(b1, np.arange(model.dims.n))).tocoo()
            n_real = len(np.unique(A21.row.astype(np.int64) * b1.nlevels + A21.col // b1.p))
            keys = arr["ent_row"][:n_real].astype(np.int64) * b1.nlevels + arr["ent_level"][:n_real]
            self._order = np.argsort(keys)
            self._sorted_keys = keys[self._order]
            if "pair_coef" in arr:
                target = np.asarray(arr["pair_target"], dtype=np.int64)
                lev = np.asarray(arr["pair_level"], dtype=np.int64)
                if self.rest == "blockdiag":  # slot (level of block 2, a, b) of an (l2, p2, p2) array
                    p2 = model.blocks[1].p
                    real = target < q2 * p2
                    t = target[real]
                    r1 = (t // (p2 * p2)) * p2 + (t // p2) % p2
                    r2 = (t // (p2 * p2)) * p2 + t % p2
                else:  # flat slot r1·q2 + r2 of the dense q2 × q2 Schur complement
                    real = target < q2 * q2
                    r1, r2 = target[real] // q2, target[real] % q2
                self._pair_real = real
                self._pair_e1 = self._entry_index(r1 * b1.nlevels + lev[real])
                self._pair_e2 = self._entry_index(r2 * b1.nlevels + lev[real])
                check = self._pair_coef(arr["ent_a"])
                if not np.allclose(check, arr["pair_coef"], rtol=1e-12, atol=1e-12 * max(1.0, np.abs(check).max())):
                    raise RuntimeError("the engine's pair coefficients are not a_e1 ⊗ a_e2 any more; "
                                       "lmmjax.diagnostics.deletion needs updating")

    def _entry_index(self, keys: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
        if not np.all(self._sorted_keys[pos] == keys):
            raise RuntimeError("pair of Z2'Z1 entries not found in the entry pattern")
        return self._order[pos]

    def _pair_coef(self, ent_a: np.ndarray) -> np.ndarray:
        p1 = self.model.blocks[0].p
        out = np.zeros_like(self.model.arrays["pair_coef"])
        a1, a2 = ent_a[self._pair_e1], ent_a[self._pair_e2]
        out[self._pair_real] = (a1[:, :, None] * a2[:, None, :]).reshape(len(a1), p1 * p1)
        return out

    def __call__(self, rows) -> dict:
        model = self.model
        rows = np.asarray(rows, dtype=np.int64)
        arr = model.arrays
        out = dict(arr)
        b1 = model.blocks[0]
        XY = np.column_stack([model.X[rows], model.y[rows]])
        codes = b1.codes[rows]
        Z1 = b1.Z[rows]
        out["A11"] = arr["A11"] - per_level_products(codes, Z1, Z1, b1.nlevels)
        out["A1X"] = arr["A1X"] - per_level_products(codes, Z1, XY, b1.nlevels)
        out["AXX"] = arr["AXX"] - XY.T @ XY
        out["nobs"] = np.float64(arr["nobs"] - len(rows))
        if model.dims.q2 > 0:
            Z2 = model.Z2[rows]
            if self.rest == "blockdiag":
                b2 = model.blocks[1]
                out["A22"] = arr["A22"] - per_level_products(b2.codes[rows], b2.Z[rows], b2.Z[rows], b2.nlevels)
            else:
                out["A22"] = arr["A22"] - (Z2.T @ Z2).toarray()
            out["A2X"] = arr["A2X"] - np.asarray(Z2.T @ XY)
            removed = Z2.T @ sparse_z1(b1, rows)
            if "A21d" in arr:  # dense Schur update (see lmmjax.structure.crossprod.use_matmul)
                out["A21d"] = arr["A21d"] - removed.toarray().reshape(arr["A21d"].shape)
            else:
                out["ent_a"] = arr["ent_a"] - self._entry_values(removed.tocoo())
                if "pair_coef" in arr:
                    out["pair_coef"] = self._pair_coef(out["ent_a"])
        return out

    def _entry_values(self, coo) -> np.ndarray:
        """Values of a q2 × (l1·p1) sparse matrix at the entry pattern ``ent_*``."""
        b1 = self.model.blocks[0]
        out = np.zeros_like(self.model.arrays["ent_a"])
        if coo.nnz == 0:
            return out
        qkeys = coo.row.astype(np.int64) * b1.nlevels + coo.col // b1.p
        pos = np.minimum(np.searchsorted(self._sorted_keys, qkeys), len(self._sorted_keys) - 1)
        ok = self._sorted_keys[pos] == qkeys
        if not np.all(ok | (coo.data == 0)):
            raise RuntimeError("deleted rows touch an entry outside the model's Z2'Z1 pattern")
        np.add.at(out, (self._order[pos[ok]], coo.col[ok] % b1.p), coo.data[ok])
        return out


def deleted_arrays(model, rows) -> dict:
    """The model's arrays with ``rows`` (positional indices) removed."""
    return DeletionArrays(model)(rows)


def fixed_rank_ok(arrays: dict, p: int, tol: float = 1e-10) -> bool:
    """Whether X of the remaining rows still has full column rank."""
    if p == 0:
        return True
    XtX = np.asarray(arrays["AXX"])[:p, :p]
    scale = np.sqrt(np.maximum(np.diag(XtX), 0.0))
    if np.any(scale <= tol * max(1.0, scale.max())):
        return False
    R = XtX / np.outer(scale, scale)
    return bool(np.linalg.eigvalsh(R).min() > tol)


@dataclass(frozen=True)
class ArrayEstimates:
    """β̂, σ̂ and cov(β̂)/σ² at θ for one set of arrays (cf. ``point_estimates``)."""

    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov_unscaled: np.ndarray
    deviance: float
    pwrss: float


def estimates_from_arrays(arrays: dict, dims, theta) -> ArrayEstimates:
    """``point_estimates`` for arbitrary arrays (e.g. with rows deleted).

    The degrees of freedom of σ̂ use ``arrays['nobs']`` (n − p for REML,
    n for ML), so deleted rows are accounted for.
    """
    f = {k: np.asarray(v) for k, v in factorize_jit(np.asarray(theta, float), arrays, dims).items()}
    p = dims.p
    SXX = f["SXX"]
    beta = np.linalg.solve(SXX[:p, :p], SXX[:p, p]) if p else np.zeros(0)
    pwrss = float(f["LXX"][p, p] ** 2)
    n = float(arrays["nobs"])
    dof = n - p if dims.reml else n
    sigma = float(np.sqrt(pwrss / dof))
    vcov_unscaled = np.linalg.inv(SXX[:p, :p]) if p else np.zeros((0, 0))
    return ArrayEstimates(np.asarray(theta, float), beta, sigma, vcov_unscaled,
                          float(deviance_from_factor(f, dims)), pwrss)


@dataclass(frozen=True)
class RefitResult:
    """θ̂ of one deletion case and whether its fit passed the gradient check."""

    theta: np.ndarray
    deviance: float
    converged: bool
    estimable: bool = True


def refit_sequential(cases: list, dims, lower, theta0) -> list:
    """Refit each case (a dict of arrays) with the engine's optimizer."""
    out = []
    for arrays in cases:
        if arrays is None:
            out.append(RefitResult(np.full(len(lower), np.nan), np.nan, False, False))
            continue
        opt = minimize_deviance(arrays, dims, lower, theta0=theta0)
        out.append(RefitResult(opt.theta, opt.deviance, bool(opt.success)))
    return out


def _stack(cases: list) -> dict:
    return {k: np.stack([c[k] for c in cases]) for k in DATA_KEYS if k in cases[0]}


_batched_vg = {}


def _batched_value_and_grad(dims, keys: tuple):
    """jit(vmap(value_and_grad)) over the data arrays; structure arrays shared."""
    key = (dims, keys)
    if key not in _batched_vg:
        def one(theta, data, shared):
            return jax.value_and_grad(profiled_deviance)(theta, {**shared, **data}, dims)

        _batched_vg[key] = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))
    return _batched_vg[key]


def refit_batched(cases: list, dims, lower, theta0, chunk: int = 256, gtol: float = 1e-6) -> list:
    """Refit many cases together: one L-BFGS-B run on their summed deviance.

    The cases are independent, so the sum of their deviances is separable
    and its minimiser is every case's minimiser. Each iteration evaluates
    all cases of a chunk in one vmapped call. Afterwards each case is
    checked with the same rule as a single fit (projected gradient below
    ``gtol · max(1, |deviance|)``); the few that fail are refitted alone.
    """
    lower = np.asarray(lower, float)
    results: list = [None] * len(cases)
    good = [i for i, c in enumerate(cases) if c is not None]
    for i, c in enumerate(cases):
        if c is None:
            results[i] = RefitResult(np.full(len(lower), np.nan), np.nan, False, False)
    shared = {k: v for k, v in cases[good[0]].items() if k not in DATA_KEYS} if good else {}
    for start in range(0, len(good), chunk):
        idx = good[start:start + chunk]
        data = _stack([cases[i] for i in idx])
        vg = _batched_value_and_grad(dims, tuple(sorted(data)))
        k, m = len(idx), len(lower)

        def fun(flat):
            th = flat.reshape(k, m)
            val, grad = vg(th, data, shared)
            val, grad = np.asarray(val), np.asarray(grad)
            if not np.all(np.isfinite(val)):
                return 1e300, np.zeros_like(flat)
            return float(val.sum()), grad.ravel()

        x0 = np.tile(np.asarray(theta0, float), k)
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in np.tile(lower, k)]
        res = so.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                          options=dict(maxiter=5000, maxfun=10000, ftol=1e-15, gtol=1e-10, maxcor=20))
        th = res.x.reshape(k, m)
        val, grad = vg(th, data, shared)
        val, grad = np.asarray(val), np.asarray(grad)
        for j, i in enumerate(idx):
            pg = np.max(np.abs(projected_gradient(th[j], grad[j], lower)), initial=0.0)
            on_bound = bool(np.any(np.isfinite(lower) & (th[j] <= lower)))
            if np.isfinite(val[j]) and pg <= gtol * max(1.0, abs(val[j])) and not on_bound:
                # Snap near-zero diagonal entries as the single-fit optimizer does.
                results[i] = _snap(th[j], float(val[j]), cases[i], dims, lower)
            else:
                opt = minimize_deviance(cases[i], dims, lower, theta0=th[j])
                results[i] = RefitResult(opt.theta, opt.deviance, bool(opt.success))
    return results


def _snap(theta, dev, arrays, dims, lower) -> RefitResult:
    theta, dev, _ = snap_to_bounds(theta, dev, arrays, dims, lower)
    return RefitResult(theta, dev, True)


def deletion_cases(model, row_sets: list) -> list:
    """Arrays for each row set; ``None`` where X loses full column rank."""
    build = DeletionArrays(model)
    cases = []
    for rows in row_sets:
        arrays = build(rows)
        cases.append(arrays if fixed_rank_ok(arrays, model.dims.p) else None)
    return cases


__all__ = [
    "DeletionArrays", "deleted_arrays", "estimates_from_arrays", "refit_sequential", "refit_batched",
    "deletion_cases", "fixed_rank_ok", "ArrayEstimates", "RefitResult",
]
