"""Likelihood profiles and profile confidence intervals, as lme4's ``profile``/``confint``.

lme4 profiles the ML deviance (a REML fit is refitted by ML first) over every
parameter: the fixed effects, the standard deviations and correlations of
the random effects and σ. For a parameter w fixed at a value,

    ζ(w) = sign(w − ŵ) · sqrt(dev_w − dev̂),

dev_w being the ML deviance minimised over all the other parameters. The
interval ends are where ζ = ±z_{(1+level)/2}.

- Variance parameters: the deviance in ``(sd…, cor…, σ)`` with β profiled,
  ``log|L|² + pwrss(θ)/σ² + n log(2πσ²)``, with θ rebuilt from the sd/cor
  scale (T = diag(sd)·chol(R)/σ); the others are minimised by L-BFGS-B with
  exact JAX gradients (sd ≥ 0, |cor| ≤ 1, σ > 0; correlations of terms with
  three or more columns through angles, so that they always form a valid
  correlation matrix — see :mod:`lmmjax.inference.sdcor`).
- Fixed effect β_j = b: for given θ the other β are profiled in closed form,
  ``pwrss_j(θ, b) = pwrss(θ) + (b − β̂_j(θ))² / [(X'V_θ⁻¹X)⁻¹]_jj``, and the
  deviance ``log|L|² + n(1 + log(2π pwrss_j/n))`` is minimised over θ
  (lme4 refits the model with the offset x_j b instead; same optimum).

Interval ends are roots of ζ(w) ∓ z found by stepping out from the estimate
(first step from the Hessian's Wald scale) and Brent's method, not by lme4's
spline through a grid, so they are exact to the optimiser's precision. An end
that is never reached is the parameter's limit: 0 for a standard deviation,
−1/+1 for a correlation.

Residual-structure parameters (``phi``, ``sd_ratio[<level>]``, after σ) are
profiled like the variance parameters, on their natural scale: free inner
variables in their open range (AR(1) φ in (−1, 1), CAR(1) φ in (0, 1), SD
ratio in (0, ∞)) when another parameter is profiled, held when profiled
themselves. An end never reached is the end of that range: −1/+1 for AR(1)
φ, 0/1 for CAR(1) φ, 0 (lower) or ∞ (upper) for an SD ratio. At the ends
themselves the structure is degenerate (the deviance is infinite), so an end
there reads as the limit up to the root finder's tolerance.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize as so

from ..errors import ConvergenceWarning, ModelSpecError
from ..fitting.reparam import reparametrisation
from ..lmer import ml_fit
from ..memo import cached
from ..objective.deviance import LOG2PI, factorize
from ..progress import Progress, first_use
from ..results.estimates import point_estimates
from ..results.varcorr import parameter_names, residual_names, residual_values, sdcor_vector, varcorr_table
from .distributions import chi2_ppf, norm_ppf
from .sdcor import (
    SdcorLayout,
    assemble_np,
    correlations_valid,
    focal_of,
    inner_layout,
    inner_value_and_grad,
    sdcor_hessian,
    sdcor_layout,
    sdcor_to_varpar_np,
    sdcor_value_and_grad_any,
    to_inner,
)

jax.config.update("jax_enable_x64", True)

COR_EDGE = 1e-7  # inner optimisation keeps free correlations in [-1 + edge, 1 - edge]
ZETA_TOL = 1e-6  # |ζ − target| accepted without further root finding
LOWER_DEV_TOL = 1e-3  # a profile deviance this far below the fit's means the fit missed the optimum (as lme4)
FAILED = 1e299  # deviance values from here up: no valid values of the other parameters were found


# ---- fixed effects ----------------------------------------------------------------------------
def fixed_deviance(theta, b, j, arrays, dims):
    """ML deviance with β_j = b, the other β and σ profiled, at θ."""
    f = factorize(theta, arrays, dims)
    p = dims.p
    LXX = f.LXX
    R = LXX[:p, :p]
    Rinv = jax.scipy.linalg.solve_triangular(R, jnp.eye(p, dtype=R.dtype), lower=True)
    C = Rinv.T @ Rinv
    beta = C @ f.SXX[:p, p]
    pw = LXX[p, p] ** 2 + (b - beta[j]) ** 2 / C[j, j]
    n = arrays["nobs"]
    return f.logdet_L - f.sum_log_w + n * (1.0 + LOG2PI + jnp.log(pw / n))


fixed_value_and_grad = jax.jit(jax.value_and_grad(fixed_deviance), static_argnums=4)


# ---- setup ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileSetup:
    """Everything fixed for the profiles of one fit (its ML refit for REML fits)."""

    ml_fit: object
    layout: SdcorLayout
    names: list  # fixed effects, then sd/cor/σ names
    mle: np.ndarray  # ML estimates in that order
    scale: np.ndarray  # Wald-type step per parameter (ζ ≈ (w − ŵ)/scale)
    deviance: float
    hessian: np.ndarray  # of the deviance in (sd, cor, σ)
    kinds: np.ndarray  # "fixed", "sd", "cor", "sigma"


def profile_setup(fit) -> ProfileSetup:
    def compute():
        ml = ml_fit(fit)
        model = ml.model
        lay = sdcor_layout(model)
        vc = varcorr_table(model, ml.estimates.theta, ml.sigma)
        s_hat = np.concatenate([np.nan_to_num(vc["sdcor"].to_numpy(float)),
                                residual_values(model, ml.estimates.theta)])
        # deviance at the ML estimate through the sd/cor map (equals ml.deviance up to rounding)
        dev0 = min(float(ml.deviance), float(sdcor_value_and_grad_any(s_hat, model.arrays, model.dims, lay)[0]))
        H = sdcor_hessian(s_hat, model.arrays, model.dims, lay)
        kinds_v = lay.kinds
        try:  # step scales only: a Hessian that cannot be decomposed falls back to rough scales
            Hinv = np.linalg.pinv(H) if np.all(np.isfinite(H)) else np.full_like(H, np.nan)
        except np.linalg.LinAlgError:
            Hinv = np.full_like(H, np.nan)
        var_scale = np.sqrt(np.clip(2.0 * np.diag(Hinv), 0.0, None))
        fallback = np.where(kinds_v == "cor", 0.2, np.where(kinds_v == "sigma", ml.sigma / np.sqrt(2.0 * ml.nobs),
                                                            0.3 * max(ml.sigma, np.max(s_hat[kinds_v == "sd"], initial=0.0))))
        fallback = np.where(lay.sigma_index < np.arange(lay.n_par), 0.1 * np.maximum(np.abs(s_hat), 0.1), fallback)
        var_scale = np.where(np.isfinite(var_scale) & (var_scale > 0), var_scale, fallback)
        se_fixed = np.sqrt(np.diag(ml.vcov.to_numpy()))
        names = list(model.frame.fixed_names) + parameter_names(vc) + residual_names(model)
        return ProfileSetup(
            ml_fit=ml, layout=lay, names=names, mle=np.concatenate([ml.estimates.beta, s_hat]),
            scale=np.concatenate([se_fixed, var_scale]), deviance=dev0, hessian=H,
            kinds=np.concatenate([np.array(["fixed"] * len(se_fixed), dtype=object), kinds_v]),
        )

    return cached(fit, "profile_setup", compute)


# ---- one parameter: ζ(w) with warm starts ----------------------------------------------------------
def _zero_starts(x0, lower, value):
    """An extra start with variance parameters sitting at their bound 0 moved inside.

    The deviance is even in each such parameter, so its gradient there is
    exactly 0 and a gradient method cannot leave the boundary by itself.
    """
    at = np.isfinite(lower) & (x0 <= lower + 1e-12)
    if not at.any():
        return []
    x1 = x0.copy()
    x1[at] = lower[at] + value
    return [x1]


class _Profiler:
    """ζ(w) for one parameter; remembers its solutions for warm starts."""

    bound = (-np.inf, np.inf)  # limits of the parameter itself

    def __init__(self, setup: ProfileSetup, k: int):
        self.setup, self.k = setup, k
        self.model = setup.ml_fit.model
        self.w_hat = float(setup.mle[k])
        self.solutions = []  # (w, solution)
        self.lowest = (np.inf, self.w_hat)  # lowest deviance met, and where

    def nearest(self, w, default):
        if not self.solutions:
            return self.w_hat, default
        return min(self.solutions, key=lambda t: abs(t[0] - w))

    def zeta(self, w):
        """(ζ(w), solution); ζ is ±inf where no valid values of the others exist."""
        dev, sol = self.deviance(w)
        if dev >= FAILED:
            return float(np.sign(w - self.w_hat) * np.inf), sol
        self.lowest = min(self.lowest, (dev, float(w)))
        self.solutions.append((float(w), sol))
        d = max(dev - self.setup.deviance, 0.0)
        return float(np.sign(w - self.w_hat) * np.sqrt(d)), sol


class _FixedProfiler(_Profiler):
    """β_j = w; θ minimised (other β and σ profiled in closed form).

    A model with badly scaled random-effect columns is profiled in the
    centred and scaled parametrisation of its fit (:mod:`lmmjax.fitting.reparam`):
    the profiled deviance of β_j is the same function there, and θ would
    otherwise not move from the estimate (Days × 1e6 gave a wrong interval).
    Solutions are θ of that parametrisation.
    """

    def __init__(self, setup, k):
        super().__init__(setup, k)
        self.plan = reparametrisation(self.model)
        self.inner = self.model if self.plan is None else self.plan.model
        theta = setup.ml_fit.estimates.theta.copy()
        self.theta_hat = theta if self.plan is None else self.plan.to_scaled(theta)
        self.lower = self.inner.layout.lower
        self.bounds = [(lo if np.isfinite(lo) else None, None) for lo in self.lower]

    def deviance(self, w):
        arrays, dims, j = self.inner.arrays, self.inner.dims, self.k
        x0 = self.nearest(w, self.theta_hat)[1].copy()

        def fun(th):
            v, g = fixed_value_and_grad(th, w, j, arrays, dims)
            v = float(v)
            if not np.isfinite(v):
                return 1e300, np.zeros_like(th)
            return v, np.asarray(g, float)

        theta, dev = _minimize(fun, x0, self.bounds, _zero_starts(x0, self.lower, 0.1))
        return dev, theta

    def all_parameters(self, w, theta) -> np.ndarray:
        model, j = self.model, self.k
        est = point_estimates(self.inner, theta)  # the engine's compiled factorisation
        if self.plan is not None:
            theta = self.plan.to_original(theta)
        beta, C = est.beta, est.vcov_unscaled
        cond = beta + C[:, j] / C[j, j] * (w - beta[j])
        pw = est.pwrss + (w - beta[j]) ** 2 / C[j, j]
        sigma = np.sqrt(pw / float(model.arrays["nobs"]))
        return np.concatenate([cond, sdcor_vector(model, theta, sigma).to_numpy(float)])


class _VarianceProfiler(_Profiler):
    """An sd, cor, σ or residual parameter at w; the others minimised (see :mod:`lmmjax.inference.sdcor`)."""

    def __init__(self, setup, k):
        super().__init__(setup, k)
        lay = setup.layout
        p = self.model.dims.p
        self.iv = k - p  # position in the sd/cor/σ vector
        s_lo, s_hi = lay.ranges
        self.bound = (float(s_lo[self.iv]), float(s_hi[self.iv]))
        self.s_hat = setup.mle[p:].copy()
        self.il = inner_layout(lay)
        self.focal = focal_of(self.il, lay, self.iv)
        self.perms = tuple(np.asarray(pm, np.int32) for pm in self.focal.perms)
        kinds = lay.kinds
        # inner boxes: sd ≥ 0, σ ≥ 1e-8 σ̂, the open ranges of the others an edge inside
        self.s_lo = np.where(kinds == "sd", 0.0, np.where(kinds == "sigma", 1e-8 * self.s_hat[lay.sigma_index],
                                                          s_lo + COR_EDGE * np.isfinite(s_lo)))
        self.s_hi = np.where(np.isfinite(s_hi), s_hi - COR_EDGE, np.inf)
        n_x = self.il.n_x
        s_scale = setup.scale[p:]
        self.xscale = np.full(n_x, 0.3)  # angles
        self.x_lo, self.x_hi = np.zeros(n_x), np.full(n_x, np.pi)
        is_sd = np.zeros(n_x, bool)
        for sk, xi in self.il.direct:
            self.xscale[xi] = s_scale[sk]
            self.x_lo[xi], self.x_hi[xi] = self.s_lo[sk], self.s_hi[sk]
            is_sd[xi] = kinds[sk] == "sd"
        self.x_hat = to_inner(self.s_hat, self.focal, self.il)
        self.is_sd = is_sd
        # linear prediction of the others in the sd/cor/σ scale: Δfree = −H_ff⁻¹ H_fk Δw
        H = setup.hessian
        free = np.ones(len(self.s_hat), bool)
        free[self.iv] = False
        self.slope = np.zeros(len(self.s_hat))
        if free.any():
            sl = -np.linalg.lstsq(H[np.ix_(free, free)], H[free, self.iv], rcond=None)[0]
            self.slope[free] = np.where(np.isfinite(sl), sl, 0.0)
        self.several_starts = bool(self.il.angle_terms)

    def _predicted(self, w, base_w, base_s, extrapolate=True):
        """A start at w: the others from (base_w, base_s) along the Hessian's slope (or held)."""
        s = np.clip(base_s + extrapolate * self.slope * (w - base_w), self.s_lo, self.s_hi)
        s[self.iv] = w
        if correlations_valid(s, self.setup.layout):
            return s
        # shrink the other correlations towards 0 (always valid) until the set is valid
        cor = self.setup.layout.kinds == "cor"
        cor[self.iv] = False

        def shrunk(t):
            v = s.copy()
            v[cor] *= t
            return v

        lo_t, hi_t = 0.0, 1.0
        for _ in range(30):
            mid = 0.5 * (lo_t + hi_t)
            lo_t, hi_t = (mid, hi_t) if correlations_valid(shrunk(mid), self.setup.layout) else (lo_t, mid)
        return shrunk(0.99 * lo_t)

    def deviance(self, w):
        arrays, dims, lay, il = self.model.arrays, self.model.dims, self.setup.layout, self.il
        fx, fv = self.focal.x, self.focal.value(w)
        sc = self.xscale

        def fun(u):
            v, g = inner_value_and_grad(self.x_hat + sc * u, fx, fv, self.perms, arrays, dims, lay, il)
            v = float(v)
            if not np.isfinite(v):
                return 1e300, np.zeros_like(u)
            return v, np.nan_to_num(np.asarray(g, float)) * sc  # 0/0 at degenerate angles

        # the profiled entry is a fixed variable (equal bounds)
        lo = (self.x_lo - self.x_hat) / sc
        hi = (self.x_hi - self.x_hat) / sc
        lo[fx] = hi[fx] = (fv - self.x_hat[fx]) / sc[fx]
        bounds = [(a if np.isfinite(a) else None, b if np.isfinite(b) else None) for a, b in zip(lo, hi)]
        starts = [self._predicted(w, *self.nearest(w, self.s_hat))]
        if self.several_starts and self.solutions:  # three or more correlations: also from the estimate
            starts.append(self._predicted(w, self.w_hat, self.s_hat))
        u_starts = [np.clip((to_inner(s0, self.focal, il) - self.x_hat) / sc, lo, hi) for s0 in starts]
        u_lower = np.where(self.is_sd, lo, -np.inf)
        u_lower[fx] = -np.inf
        extra = u_starts[1:] + _zero_starts(u_starts[0], u_lower, 0.5)
        # the slope's prediction can leave the valid region (σ extrapolated below 0 when the deviance has
        # two modes): then from the nearest solution and from the estimate as they are
        held = [self._predicted(w, *self.nearest(w, self.s_hat), extrapolate=False),
                self._predicted(w, self.w_hat, self.s_hat, extrapolate=False)]
        fallback = [np.clip((to_inner(s0, self.focal, il) - self.x_hat) / sc, lo, hi) for s0 in held]
        u, dev = _minimize(fun, u_starts[0], bounds, extra, fallback)
        s = assemble_np(self.x_hat + sc * u, self.focal, w, il)
        return dev, s

    def all_parameters(self, w, s) -> np.ndarray:
        vp = sdcor_to_varpar_np(s, self.setup.layout)
        return np.concatenate([point_estimates(self.model, vp[:-1]).beta, s])


def _profiler(setup: ProfileSetup, k: int) -> _Profiler:
    return _FixedProfiler(setup, k) if setup.kinds[k] == "fixed" else _VarianceProfiler(setup, k)


def _minimize(fun, x0, bounds, extra_starts=(), fallback=()):
    """L-BFGS-B from x0 (and any extra starts); the best (x, value).

    The ``fallback`` starts are tried, in order, only while every run so far
    failed (value ≥ :data:`FAILED`).
    """
    best = None
    starts = [x0] + list(extra_starts)
    fallback = list(fallback)
    while starts:
        res = so.minimize(fun, starts.pop(0), jac=True, method="L-BFGS-B", bounds=bounds,
                          options=dict(maxiter=1000, ftol=1e-13, gtol=1e-9))
        if best is None or res.fun < best.fun:
            best = res
        if not starts and best.fun >= FAILED and fallback:
            starts.append(fallback.pop(0))
    return np.asarray(best.x, float), float(best.fun)


def _warn_lower_deviance(setup: ProfileSetup, profilers: list) -> None:
    """lme4's "profiling detected new, lower deviance", as a ConvergenceWarning."""
    found = [(p.lowest[0], setup.names[p.k], p.lowest[1]) for p in profilers
             if p.lowest[0] < setup.deviance - LOWER_DEV_TOL]
    if found:
        dev, name, w = min(found)
        warnings.warn(f"Profiling found a lower ML deviance than the fit's ({dev:.6g} < {setup.deviance:.6g}, "
                      f"with {name} = {w:.6g}): the fit is not at the maximum of the likelihood (it may have "
                      "several modes), so these profiles and intervals are not valid. Refit from other "
                      "starting values.", ConvergenceWarning, stacklevel=3)


def _find_end(prof: _Profiler, target: float, max_steps: int = 60) -> float:
    """w with ζ(w) = target (sign of target = direction), or the parameter's bound."""
    direction = 1.0 if target > 0 else -1.0
    lo, hi = prof.bound
    limit = hi if direction > 0 else lo
    w_hat = prof.w_hat
    if (direction > 0 and w_hat >= hi) or (direction < 0 and w_hat <= lo):
        return float(limit)
    scale = prof.setup.scale[prof.k]
    w_prev, z_prev = w_hat, 0.0
    step = abs(target) * scale
    if np.isfinite(limit):  # do not jump to a bound: at most half way there at first
        step = min(step, 0.5 * abs(limit - w_hat))
    w = w_hat + direction * step
    for _ in range(max_steps):
        at_limit = False
        if (direction > 0 and w >= hi) or (direction < 0 and w <= lo):
            w, at_limit = limit, True
        z, _ = prof.zeta(w)
        if (z - target) * direction >= 0:
            break
        if at_limit:
            return float(limit)
        step = w - w_prev
        slope = (z - z_prev) / step if step != 0 else 0.0
        if slope * direction > 0 and np.isfinite(slope):
            new_step = (target - z) / slope * 1.1
            new_step = direction * min(max(abs(new_step), 0.05 * abs(step)), 4.0 * abs(step))
        else:
            new_step = 2.0 * step
        w_prev, z_prev, w = w, z, w + new_step
    else:  # pragma: no cover - the profile never reached the target
        return np.nan
    # Brent's method on ζ − target inside the bracket [w_prev, w]. ζ is +inf where the
    # other parameters have no valid value (e.g. three correlations that cannot hold
    # together), so the root may be the edge of the feasible set.
    if abs(z - target) < ZETA_TOL:
        return float(w)
    cap = lambda d: float(np.clip(d, -1e3, 1e3))  # finite for Brent's interpolation
    memo = {float(w_prev): cap(z_prev - target), float(w): cap(z - target)}

    def f(v):
        v = float(v)
        if v not in memo:
            memo[v] = cap(prof.zeta(v)[0] - target)
        return memo[v]

    lo_b, hi_b = sorted((w_prev, w))
    tol = 1e-9 * max(abs(scale), 1e-12)
    return float(so.brentq(f, lo_b, hi_b, xtol=tol, rtol=1e-12, maxiter=200))


def _selected(setup: ProfileSetup, parm) -> list:
    if parm is None:
        return list(range(len(setup.names)))
    if isinstance(parm, str):
        parm = [parm]
    out = []
    for name in parm:
        if name not in setup.names:
            raise ModelSpecError(f"Unknown parameter {name!r}; parameters are {setup.names}.")
        out.append(setup.names.index(name))
    return out


def profile_confint(fit, level: float = 0.95, parm=None) -> pd.DataFrame:
    """Profile-likelihood intervals (lme4's ``confint(method="profile")``).

    Returns a DataFrame with columns ``lower, upper``, indexed by the fixed
    effects, then ``sd(…)``, ``cor(…)``, ``sigma`` and any residual-structure
    parameters (``phi``, ``sd_ratio[<level>]``).
    """
    setup = profile_setup(fit)
    z = norm_ppf(0.5 + level / 2.0)
    rows = {}
    selected = _selected(setup, parm)
    with Progress(len(selected), "profile", "parameter", compiling=first_use(("profile", fit.model.dims))) as bar:
        profilers = []
        for k in selected:
            prof = _profiler(setup, k)
            rows[setup.names[k]] = (_find_end(prof, -z), _find_end(prof, z))
            profilers.append(prof)
            bar.update(1)
    _warn_lower_deviance(setup, profilers)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])
    out.attrs["method"] = "profile (ML deviance" + (", REML fit refitted by ML)" if fit.reml else ")")
    out.attrs["level"] = level
    return out


def profile(fit, parm=None, alphamax: float = 0.01, maxpts: int = 100, delta=None) -> pd.DataFrame:
    """Profile traces: ζ against each parameter, for plotting (lme4's ``profile``).

    Parameters
    ----------
    parm : str or list of str, optional
        Parameters to profile (default all: fixed effects, ``sd(…)``,
        ``cor(…)``, ``sigma``, then ``phi`` and ``sd_ratio[…]`` of a residual
        structure).
    alphamax : float
        Profiles run to |ζ| ≥ sqrt(χ²_{1−alphamax}(number of parameters)), as lme4.
    maxpts : int
        At most this many points per direction.
    delta : float, optional
        Step in ζ between points (default cutoff / 8, as lme4).

    Returns
    -------
    DataFrame in long form: ``parameter`` (the one profiled), ``zeta``,
    ``value`` (its value), then one column per parameter holding the values
    of all parameters at that point. ``attrs`` hold the ML estimates and
    deviance.

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> pr = fit.profile(parm="sigma")  # doctest: +SKIP
    >>> pr.plot("value", "zeta")  # doctest: +SKIP
    """
    setup = profile_setup(fit)
    cutoff = float(np.sqrt(chi2_ppf(1.0 - alphamax, len(setup.names))))
    delta = cutoff / 8.0 if delta is None else float(delta)
    records, profilers = [], []
    for k in _selected(setup, parm):
        prof = _profiler(setup, k)
        profilers.append(prof)
        name = setup.names[k]
        pts = [(prof.w_hat, 0.0, setup.mle.copy())]
        lo, hi = prof.bound
        for direction in (-1.0, 1.0):
            prof.solutions = []
            w_prev, z_prev = prof.w_hat, 0.0
            step = direction * delta * setup.scale[k]
            limit = hi if direction > 0 else lo
            if (direction > 0 and prof.w_hat >= hi) or (direction < 0 and prof.w_hat <= lo):
                continue
            for _ in range(maxpts):
                w = w_prev + step
                at_limit = (direction > 0 and w >= hi) or (direction < 0 and w <= lo)
                if at_limit:
                    w = limit
                z, x = prof.zeta(w)
                if not np.isfinite(z):  # past the valid values of the other parameters
                    break
                pts.append((w, z, prof.all_parameters(w, x)))
                if abs(z) >= cutoff or at_limit:
                    break
                slope = (z - z_prev) / (w - w_prev)
                if slope * direction > 0 and np.isfinite(slope):
                    new = delta / abs(slope)
                    step = direction * min(max(new, 0.25 * abs(step)), 4.0 * abs(step))
                else:
                    step = 2.0 * step
                w_prev, z_prev = w, z
        pts.sort(key=lambda t: t[0])
        for w, z, allp in pts:
            records.append([name, z, w] + list(allp))
    _warn_lower_deviance(setup, profilers)
    out = pd.DataFrame(records, columns=["parameter", "zeta", "value"] + setup.names)
    out.attrs["mle"] = dict(zip(setup.names, setup.mle))
    out.attrs["deviance"] = setup.deviance
    out.attrs["cutoff"] = cutoff
    return out
