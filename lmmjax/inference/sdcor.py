"""The standard-deviation / correlation / σ scale of the variance parameters.

lme4 profiles the variance parameters on this scale (``sd(…)``, ``cor(…)``,
``sigma``, in varcorr order). This module maps such a vector to (θ, σ) and
gives the ML deviance there, and provides the variables the inner
minimisations of a profile run over:

- standard deviations, σ and the correlations of two-column terms directly
  (a box: sd ≥ 0, |cor| ≤ 1 is exactly the valid set);
- the correlations of terms with three or more columns through angles: the
  rows of the Cholesky factor of R are unit vectors in hyperspherical
  coordinates, so every angle vector gives a valid correlation matrix (a box
  on each correlation would not). When the profiled parameter is such a
  correlation, the term's columns are reordered so that it is the cosine of
  one angle, which is then held fixed.

A model with a residual structure (:mod:`lmmjax.structure.residual`) has its
residual parameters after σ, on their natural scale (``phi``,
``sd_ratio[<level>]``, as :func:`~lmmjax.results.varcorr.sdcor_vector`
orders them): inner variables with box bounds (AR(1) φ in (−1, 1), CAR(1) φ
in (0, 1), SD ratios > 0, :data:`PARAMETER_RANGE`), mapped to the
optimizer's unconstrained scale in θ.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..objective.residual import unconstrained_value
from .satterthwaite import varpar_deviance

jax.config.update("jax_enable_x64", True)

COR_TOL = 1e-8  # largest |LLᵀ − R| for a set of correlations to count as a correlation matrix

#: open range of each kind of entry of the sd/cor/σ vector (residual kinds on their natural scale)
PARAMETER_RANGE = {"sd": (0.0, np.inf), "cor": (-1.0, 1.0), "sigma": (0.0, np.inf),
                   "ar1_phi": (-1.0, 1.0), "car1_phi": (0.0, 1.0), "sd_ratio": (0.0, np.inf)}
NATURAL_KIND = {"ar1_phi": "ar1_phi", "car1_phi": "car1_phi", "log_sd_ratio": "sd_ratio"}  # θ kind -> entry kind


@dataclass(frozen=True)
class SdcorLayout:
    """Static map from the sd/cor/σ vector (varcorr order) to θ.

    ``terms``: per term (p, sd positions, ((i, j, position) per correlation),
    ((r, c, θ position) per θ entry)); then σ; then one entry per residual
    parameter, whose θ kinds ``residual`` holds (the last entries of θ).
    """

    terms: tuple
    n_theta: int
    n_par: int
    residual: tuple = ()

    @property
    def sigma_index(self) -> int:
        """Position of σ (the last entry without a residual structure)."""
        return self.n_par - 1 - len(self.residual)

    @property
    def kinds(self) -> np.ndarray:
        """'sd', 'cor', 'sigma', then 'ar1_phi', 'car1_phi' or 'sd_ratio' per entry."""
        out = np.empty(self.n_par, dtype=object)
        for _, sd_pos, cor_pos, _ in self.terms:
            out[list(sd_pos)] = "sd"
            for _, _, k in cor_pos:
                out[k] = "cor"
        out[self.sigma_index] = "sigma"
        out[self.sigma_index + 1:] = [NATURAL_KIND[k] for k in self.residual]
        return out

    @property
    def ranges(self) -> tuple:
        """(lower, upper) arrays: the open range of each entry (:data:`PARAMETER_RANGE`)."""
        lo, hi = np.array([PARAMETER_RANGE[k] for k in self.kinds], float).T
        return lo, hi


def sdcor_layout(model) -> SdcorLayout:
    """The layout of a model's sd/cor/σ vector (as ``varcorr_table`` orders it)."""
    lay = model.layout
    terms, pos = [], 0
    for t, tm in enumerate(model.frame.terms):
        p = len(tm.columns)
        sd_pos = tuple(range(pos, pos + p))
        pos += p
        cor_pos = []
        for j in range(p):
            for i in range(j + 1, p):
                cor_pos.append((i, j, pos))
                pos += 1
        entries = tuple((int(lay.row[k]), int(lay.col[k]), int(k)) for k in np.nonzero(lay.term_of == t)[0])
        terms.append((p, sd_pos, tuple(cor_pos), entries))
    residual = tuple(lay.residual_kinds)
    return SdcorLayout(tuple(terms), lay.size, pos + 1 + len(residual), residual)


# ---- sd/cor/σ -> (θ, σ) -------------------------------------------------------------------------
def _small_chol(R, xp=jnp):
    """Cholesky factor of a small correlation matrix given as nested lists (unrolled).

    Returns (L, err) with err = max |LLᵀ − R|: 0 for a positive
    (semi-)definite R; positive when the correlations are not a valid set
    (possible for three or more columns even with every |cor| ≤ 1).
    """
    p = len(R)
    zero = xp.zeros(())
    L = [[zero for _ in range(p)] for _ in range(p)]
    for j in range(p):
        s = R[j][j] - sum((L[j][k] ** 2 for k in range(j)), zero)
        pos = s > 1e-14  # "double where": a zero pivot gets a zero (not NaN) derivative
        L[j][j] = xp.where(pos, xp.sqrt(xp.where(pos, s, 1.0)), 0.0)
        safe = xp.where(L[j][j] > 0, L[j][j], 1.0)
        for i in range(j + 1, p):
            v = R[i][j] - sum((L[i][k] * L[j][k] for k in range(j)), zero)
            L[i][j] = xp.where(L[j][j] > 0, v / safe, 0.0)
    err = zero
    for i in range(p):
        for j in range(i + 1):
            err = xp.maximum(err, xp.abs(sum((L[i][k] * L[j][k] for k in range(j + 1)), zero) - R[i][j]))
    return L, err


def _sdcor_map(s, lay: SdcorLayout, xp=jnp):
    sigma = s[lay.sigma_index]
    theta = [None] * lay.n_theta
    first = lay.n_theta - len(lay.residual)
    for i, kind in enumerate(lay.residual):  # natural scale -> the optimizer's unconstrained scale
        theta[first + i] = unconstrained_value(s[lay.sigma_index + 1 + i], kind, xp)
    err = xp.zeros(())
    for p, sd_pos, cor_pos, entries in lay.terms:
        R = [[xp.ones(()) if i == j else xp.zeros(()) for j in range(p)] for i in range(p)]
        for i, j, k in cor_pos:
            R[i][j] = R[j][i] = s[k]
        Lc, e = _small_chol(R, xp)
        err = xp.maximum(err, e)
        for r, c, k in entries:
            theta[k] = s[sd_pos[r]] * Lc[r][c] / sigma
    return xp.concatenate([xp.stack(theta), xp.asarray(sigma)[None]]), err


def correlations_valid(s: np.ndarray, lay: SdcorLayout) -> bool:
    """Every term's correlations form a positive semi-definite matrix (numpy check)."""
    for p, _, cor_pos, _ in lay.terms:
        if p < 3:
            continue
        R = np.eye(p)
        for i, j, k in cor_pos:
            R[i, j] = R[j, i] = s[k]
        if np.linalg.eigvalsh(R)[0] < -1e-10:
            return False
    return True


def sdcor_to_varpar(s, lay: SdcorLayout):
    """(sd…, cor…, σ) → (θ, σ) (JAX)."""
    return _sdcor_map(s, lay)[0]


def sdcor_to_varpar_np(s, lay: SdcorLayout) -> np.ndarray:
    """(sd…, cor…, σ) → (θ, σ) (numpy, nothing to compile)."""
    return np.asarray(_sdcor_map(np.asarray(s, float), lay, np)[0], float)


def sdcor_deviance(s, arrays, dims, lay):
    """ML deviance at the sd/cor/σ vector s (β profiled); +inf if the correlations are not a valid set."""
    varpar, err = _sdcor_map(s, lay)
    dev = varpar_deviance(varpar, arrays, dims)
    return jnp.where(err <= COR_TOL, dev, jnp.inf)


sdcor_value_and_grad = jax.jit(jax.value_and_grad(sdcor_deviance), static_argnums=(2, 3))


def sdcor_value_and_grad_any(s, arrays, dims, lay):
    """Value and gradient of :func:`sdcor_deviance`, through the inner function when it is the same.

    Without three-column terms the inner variables are the sd/cor/σ vector
    itself, so the compiled inner function (with nothing held fixed) serves
    and no second function is compiled.
    """
    il = inner_layout(lay)
    if il.angle_terms:
        return sdcor_value_and_grad(s, arrays, dims, lay)
    return inner_value_and_grad(np.asarray(s, float), il.n_x, 0.0, (), arrays, dims, lay, il)


def sdcor_hessian(s, arrays, dims, lay) -> np.ndarray:
    """Hessian of :func:`sdcor_deviance` by central differences of its exact gradient.

    Only used for step sizes and warm starts, so it reuses the compiled
    gradient instead of compiling a second-order function. Correlations
    and φ next to the ends of their range get one-sided differences.
    """
    s = np.asarray(s, float)
    kinds = lay.kinds
    lo, hi = lay.ranges
    grad = lambda v: np.asarray(sdcor_value_and_grad_any(v, arrays, dims, lay)[1], float)
    m = len(s)
    H = np.empty((m, m))
    for i in range(m):
        bounded = kinds[i] in ("cor", "ar1_phi", "car1_phi")
        floor = 1.0 if bounded else 1e-2 if kinds[i] == "sd_ratio" else 1e-2 * abs(s[lay.sigma_index])
        h = 1e-5 * max(abs(s[i]), floor)
        e = np.zeros(m)
        e[i] = h
        if bounded and (s[i] + h >= hi[i] or s[i] - h <= lo[i]):
            d = -e if s[i] + h >= hi[i] else e
            H[:, i] = (grad(s + d) - grad(s)) / (d[i])
        else:
            H[:, i] = (grad(s + e) - grad(s - e)) / (2.0 * h)
    return 0.5 * (H + H.T)


# ---- the inner variables: direct entries and angles ---------------------------------------------------
@dataclass(frozen=True)
class InnerLayout:
    """Free variables x of the inner minimisations (static per model).

    ``direct``: (s position, x position) for the sds, σ and the correlations of
    terms with at most two columns; ``angle_terms``: per term with three or
    more columns, (p, ((r, c, x position) per angle), ((i, j, s position) per
    correlation)). Which entry of x is held at the profiled value, and the
    column order of each angle term, are arguments (not structure), so one
    compiled function serves every profiled parameter.
    """

    n_s: int
    n_x: int
    direct: tuple
    angle_terms: tuple


def inner_layout(lay: SdcorLayout) -> InnerLayout:
    angle_cor = {k for p, _, cor_pos, _ in lay.terms if p >= 3 for _, _, k in cor_pos}
    direct = []
    for k in range(lay.n_par):
        if k not in angle_cor:
            direct.append((k, len(direct)))
    n_x = len(direct)
    angle_terms = []
    for p, _, cor_pos, _ in lay.terms:
        if p < 3:
            continue
        slots = []
        for r in range(1, p):
            for c in range(r):
                slots.append((r, c, n_x))
                n_x += 1
        angle_terms.append((p, tuple(slots), tuple(cor_pos)))
    return InnerLayout(lay.n_par, n_x, tuple(direct), tuple(angle_terms))


@dataclass(frozen=True)
class Focal:
    """The profiled entry of the sd/cor/σ vector as seen by the inner variables.

    ``x``: its position in x (a direct entry, or the angle whose cosine it is);
    ``is_angle``: held as arccos(w); ``perms``: column order per angle term
    (the profiled correlation's pair first).
    """

    s: int
    x: int
    is_angle: bool
    perms: tuple

    def value(self, w):
        return float(np.arccos(np.clip(w, -1.0, 1.0))) if self.is_angle else float(w)


def focal_of(il: InnerLayout, lay: SdcorLayout, k: int) -> Focal:
    """How the sd/cor/σ entry k is held fixed among the inner variables."""
    for s_pos, x_pos in il.direct:
        if s_pos == k:
            perms = tuple(tuple(range(p)) for p, _, _ in il.angle_terms)
            return Focal(k, x_pos, False, perms)
    perms = []
    found = None
    for p, slots, cor_pos in il.angle_terms:
        perm = tuple(range(p))
        for i, j, s_pos in cor_pos:
            if s_pos == k:  # bring the pair (j, i) to columns (0, 1): R'[1][0] = cos(angle (1, 0))
                perm = tuple([j, i] + [c for c in range(p) if c not in (i, j)])
                found = next(x for r, c, x in slots if (r, c) == (1, 0))
        perms.append(perm)
    return Focal(k, found, True, tuple(perms))


def _unit_rows(phi, p, xp):
    """Rows of a Cholesky factor with unit rows from angles phi[(r, c)] (hyperspherical)."""
    zero, one = xp.zeros(()), xp.ones(())
    L = [[zero] * p for _ in range(p)]
    L[0][0] = one
    for r in range(1, p):
        prod = one
        for c in range(r):
            L[r][c] = prod * xp.cos(phi[(r, c)])
            prod = prod * xp.sin(phi[(r, c)])
        L[r][r] = prod
    return L


def assemble(x, focal_x, focal_value, perms, il: InnerLayout):
    """The sd/cor/σ vector from the inner variables, entry ``focal_x`` of x held at ``focal_value`` (JAX)."""
    x = x.at[focal_x].set(focal_value, mode="drop")  # focal_x = n_x: nothing held fixed
    s = jnp.zeros(il.n_s, dtype=x.dtype)
    if il.direct:
        s_idx = np.array([k for k, _ in il.direct])
        x_idx = np.array([i for _, i in il.direct])
        s = s.at[s_idx].set(x[x_idx])
    for (p, slots, cor_pos), perm in zip(il.angle_terms, perms):
        L = _unit_rows({(r, c): x[xi] for r, c, xi in slots}, p, jnp)
        Lm = jnp.stack([jnp.stack(row) for row in L])
        Rp = Lm @ Lm.T  # correlations in the permuted column order
        inv = jnp.argsort(perm)
        R = Rp[inv][:, inv]
        for i, j, k in cor_pos:
            s = s.at[k].set(R[i, j])
    return s


def assemble_np(x, focal: Focal, w, il: InnerLayout) -> np.ndarray:
    """:func:`assemble` in numpy (no compilation), for solutions and traces."""
    x = np.array(x, float)
    if focal.x < il.n_x:
        x[focal.x] = focal.value(w)
    s = np.zeros(il.n_s)
    for k, xi in il.direct:
        s[k] = x[xi]
    for (p, slots, cor_pos), perm in zip(il.angle_terms, focal.perms):
        L = np.array(_unit_rows({(r, c): x[xi] for r, c, xi in slots}, p, np), dtype=float)
        Rp = L @ L.T
        inv = np.argsort(perm)
        R = Rp[np.ix_(inv, inv)]
        for i, j, k in cor_pos:
            s[k] = R[i, j]
    return s


def to_inner(s: np.ndarray, focal: Focal, il: InnerLayout) -> np.ndarray:
    """Inner variables of a valid sd/cor/σ vector (inverse of :func:`assemble`)."""
    x = np.zeros(il.n_x)
    for k, xi in il.direct:
        x[xi] = s[k]
    for (p, slots, cor_pos), perm in zip(il.angle_terms, focal.perms):
        R = np.eye(p)
        for i, j, k in cor_pos:
            R[i, j] = R[j, i] = s[k]
        Rp = R[np.ix_(perm, perm)]
        L, _ = _small_chol([[Rp[i, j] for j in range(p)] for i in range(p)], xp=np)
        slot_x = {(r, c): xi for r, c, xi in slots}
        for r in range(1, p):
            prod = 1.0
            for c in range(r):
                cosv = L[r][c] / prod if prod > 1e-12 else 1.0
                angle = float(np.arccos(np.clip(cosv, -1.0, 1.0)))
                x[slot_x[(r, c)]] = angle
                prod *= np.sin(angle)
    return x


def inner_deviance(x, focal_x, focal_value, perms, arrays, dims, lay, il):
    """ML deviance at the inner variables x (entry ``focal_x`` held at ``focal_value``)."""
    return sdcor_deviance(assemble(x, focal_x, focal_value, perms, il), arrays, dims, lay)


inner_value_and_grad = jax.jit(jax.value_and_grad(inner_deviance), static_argnums=(5, 6, 7))
