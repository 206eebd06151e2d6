"""Profile-likelihood intervals of a GLMM, as lme4's ``confint(method="profile")`` for ``glmer``.

lme4 profiles the fit's objective (Laplace or adaptive Gauss–Hermite
−2·logLik, a function of (θ, β)) over every parameter on the scale it reports:
the fixed effects, and the standard deviations and correlations of the random
effects (``.sig01``…, here ``sd(<term>|<group>)``, ``cor(<t1>,<t2>|<group>)``).
For a parameter held at w, all the others are re-optimised:

    ζ(w) = sign(w − ŵ) · sqrt(dev_w − dev̂),

and the interval ends are where ζ = ±z_{(1+level)/2}. A standard deviation
whose profile never reaches −z gets the lower end 0, a correlation −1/+1 (as
lme4).

The inner minimisations run over v = (x, β), x the variance parameters on the
sd/cor scale (correlations of terms with three or more columns through
angles, :mod:`lmmjax.inference.sdcor`), with σ held at 1. The value and
gradient come from the fit's own compiled objective
(:data:`lmmjax.objective.glmm.value_and_grad_jit`, exact gradients through
the mode), the gradient in x by the chain rule through the small Jacobian
dθ/dx; L-BFGS-B on a scaled copy of v (β in standard errors), warm-started
from the nearest solution already found and a linear prediction from the
Hessian. The ends are roots found by stepping out and Brent's method (shared
with the LMM profile, :mod:`lmmjax.inference.profiling`), not lme4's spline
through a grid.

Examples
--------
>>> fit = lmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)  # doctest: +SKIP
>>> glmm_profile_confint(fit).round(3)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..fitting.glmm import glmm_data
from ..memo import cached
from ..objective.glmm import value_and_grad_jit
from ..progress import Progress, first_use
from ..results.varcorr import parameter_names, varcorr_table
from .distributions import norm_ppf
from .profiling import COR_EDGE, _find_end, _minimize, _Profiler, _selected, _zero_starts
from .sdcor import (
    Focal,
    InnerLayout,
    SdcorLayout,
    assemble,
    assemble_np,
    focal_of,
    inner_layout,
    sdcor_layout,
    sdcor_to_varpar,
    sdcor_to_varpar_np,
    to_inner,
)

jax.config.update("jax_enable_x64", True)


def theta_of_inner(x, perms, il: InnerLayout, lay: SdcorLayout):
    """θ of the inner variables x (sd/cor/σ scale, angles for terms of three or more columns)."""
    return sdcor_to_varpar(assemble(x, il.n_x, 0.0, perms, il), lay)[:-1]


#: dθ/dx, (n_theta, n_x): a small program, compiled once per model structure.
theta_jacobian = jax.jit(jax.jacfwd(theta_of_inner), static_argnums=(2, 3))


@dataclass(frozen=True)
class GlmmProfileSetup:
    """What the profiles of one GLMM fit share.

    ``ml_fit`` (the fit itself), ``mle``, ``scale`` and ``deviance`` are the
    fields the shared root finder (:func:`lmmjax.inference.profiling._find_end`)
    reads; ``names``/``mle``/``scale`` run over the fixed effects, then the
    sd/cor entries (varcorr order, no σ).
    """

    ml_fit: object
    layout: SdcorLayout
    inner: InnerLayout
    data: dict
    names: list
    mle: np.ndarray
    scale: np.ndarray
    deviance: float
    s_hat: np.ndarray  # sd/cor vector with σ = 1 last (the layout's σ slot)
    sigma_x: int  # position of σ among the inner variables (held at 1)


def _identity_perms(il: InnerLayout) -> tuple:
    return tuple(tuple(range(p)) for p, _, _ in il.angle_terms)


def _perm_arrays(perms) -> tuple:
    return tuple(np.asarray(pm, np.int32) for pm in perms)


def _v_hessian(fit, il: InnerLayout, lay: SdcorLayout, sigma_x: int, x_hat, perms) -> np.ndarray:
    """Hessian of the objective in v = (x, β) at the estimate, from the fit's Hessian in (θ, β)
    (σ's slot, held at 1, a zero row and column; first-order terms vanish at the optimum)."""
    H = fit.hessian
    k, n_x = fit.model.dims.n_theta, len(x_hat)
    if H is None or not np.all(np.isfinite(H)):
        return np.full((n_x + fit.model.dims.p,) * 2, np.nan)
    J = np.array(theta_jacobian(x_hat, _perm_arrays(perms), il, lay), float)
    J[:, sigma_x] = 0.0  # σ is held at 1
    p = fit.model.dims.p
    full = np.zeros((k + p, n_x + p))
    full[:k, :n_x] = J
    full[k:, n_x:] = np.eye(p)
    return full.T @ np.asarray(H, float) @ full


def glmm_profile_setup(fit) -> GlmmProfileSetup:
    """Names, estimates, step scales and the padded data of a GLMM fit's profiles (cached on the fit)."""

    def compute():
        if fit.nagq == 0:
            raise ModelSpecError("Profile intervals need a fit with nAGQ >= 1 (nAGQ = 0 does not optimise "
                                 "the fixed effects on the Laplace deviance); refit with nAGQ=1, or use "
                                 "method='wald' or 'bootstrap'.")
        model = fit.model
        lay = sdcor_layout(model)
        il = inner_layout(lay)
        vc = varcorr_table(model, fit.estimates.theta, 1.0)
        s_hat = np.nan_to_num(vc["sdcor"].to_numpy(float))
        s_hat[-1] = 1.0
        sigma_x = next(xi for sk, xi in il.direct if sk == lay.n_par - 1)
        names_var = [n for n in parameter_names(vc) if n != "sigma"]
        beta = np.asarray(fit.estimates.beta, float)
        kinds = lay.kinds[:-1]
        # step scales: SEs of β; for sd/cor from the Hessian in v, else rough scales
        perms = _identity_perms(il)
        x_hat = to_inner(s_hat, Focal(-1, il.n_x, False, perms), il)
        Hv = _v_hessian(fit, il, lay, sigma_x, x_hat, perms)
        free = np.ones(len(Hv), bool)
        free[sigma_x] = False
        var_v = np.full(len(Hv), np.nan)
        if np.all(np.isfinite(Hv)):
            try:
                var_v[free] = np.diag(2.0 * np.linalg.pinv(Hv[np.ix_(free, free)]))
            except np.linalg.LinAlgError:
                pass
        sd_max = float(np.max(s_hat[:-1][kinds == "sd"], initial=0.0))
        var_scale = np.where(kinds == "cor", 0.2, 0.3 * max(sd_max, 0.3))
        for sk, xi in il.direct:
            if sk < lay.n_par - 1 and np.isfinite(var_v[xi]) and var_v[xi] > 0:
                var_scale[sk] = np.sqrt(var_v[xi])
        se = np.sqrt(np.diag(fit.vcov.to_numpy()))
        return GlmmProfileSetup(
            ml_fit=fit, layout=lay, inner=il, data=jax.device_put(glmm_data(model)),
            names=list(model.frame.fixed_names) + names_var, mle=np.concatenate([beta, s_hat[:-1]]),
            scale=np.concatenate([se, var_scale]), deviance=float(fit.deviance), s_hat=s_hat, sigma_x=sigma_x)

    return cached(fit, "glmm_profile_setup", compute)


class GlmmProfiler(_Profiler):
    """ζ(w) of one parameter of a GLMM fit; the others (fixed effects included) re-optimised."""

    def __init__(self, setup: GlmmProfileSetup, k: int):
        super().__init__(setup, k)
        fit, il, lay = setup.ml_fit, setup.inner, setup.layout
        self.fit = fit
        p = fit.model.dims.p
        self.n_x = il.n_x
        if k < p:  # a fixed effect: β_k held in v
            self.focal = Focal(-1, il.n_x, False, _identity_perms(il))
            self.v_focal = il.n_x + k
            self.bound = (-np.inf, np.inf)
        else:
            iv = k - p
            self.focal = focal_of(il, lay, iv)
            self.v_focal = self.focal.x
            self.bound = (0.0, np.inf) if lay.kinds[iv] == "sd" else (-1.0, 1.0)
        self.perms = _perm_arrays(self.focal.perms)
        x_hat = to_inner(setup.s_hat, self.focal, il)
        self.v_hat = np.concatenate([x_hat, np.asarray(fit.estimates.beta, float)])
        # box of v: sds ≥ 0, two-column correlations inside ±(1 − edge), angles in [0, π], σ = 1
        kinds = lay.kinds
        lo = np.full(len(self.v_hat), -np.inf)
        hi = np.full(len(self.v_hat), np.inf)
        is_sd = np.zeros(len(self.v_hat), bool)
        for sk, xi in il.direct:
            if kinds[sk] == "sd":
                lo[xi], is_sd[xi] = 0.0, True
            elif kinds[sk] == "cor":
                lo[xi], hi[xi] = -1.0 + COR_EDGE, 1.0 - COR_EDGE
        for _, slots, _ in il.angle_terms:
            for _, _, xi in slots:
                lo[xi], hi[xi] = 0.0, np.pi
        lo[setup.sigma_x] = hi[setup.sigma_x] = 1.0
        self.lo, self.hi, self.is_sd = lo, hi, is_sd
        # scale of each v entry for the optimiser: β in SEs, sd/cor from the setup, angles 0.3
        sc = np.full(len(self.v_hat), 0.3)
        sc[il.n_x:] = setup.scale[:p]
        for sk, xi in il.direct:
            if sk < lay.n_par - 1:
                sc[xi] = setup.scale[p + sk]
        self.sc = np.where(np.isfinite(sc) & (sc > 0), sc, 1.0)
        # linear prediction of the others from the Hessian: Δv_free = −H_ff⁻¹ H_fk Δv_k
        H = _v_hessian(fit, il, lay, setup.sigma_x, x_hat, self.focal.perms)
        self.slope = np.zeros(len(self.v_hat))
        free = np.ones(len(self.v_hat), bool)
        free[[self.v_focal, setup.sigma_x]] = False
        if np.all(np.isfinite(H)) and free.any():
            sl = -np.linalg.lstsq(H[np.ix_(free, free)], H[free, self.v_focal], rcond=None)[0]
            self.slope[free] = np.where(np.isfinite(sl), sl, 0.0)
        self.u = np.asarray(fit.estimates.u, float)

    def _value(self, w) -> float:
        """The profiled entry's value in v (arccos for a correlation held through an angle)."""
        return self.focal.value(w) if self.v_focal < self.n_x else float(w)

    def _value_and_grad(self, v):
        """The objective and its gradient in v (exact; dθ/dx by the chain rule)."""
        fit, setup = self.fit, self.setup
        x, beta = v[: self.n_x], v[self.n_x:]
        s = assemble_np(x, Focal(-1, self.n_x, False, self.focal.perms), 0.0, setup.inner)
        theta = sdcor_to_varpar_np(s, setup.layout)[:-1]
        (val, (u, *_)), (g_theta, g_beta) = value_and_grad_jit(
            theta, beta, self.u, beta, np.bool_(False), np.bool_(False), setup.data, fit.model.dims,
            fit.family, fit.nagq, 1)
        val = float(val)
        if not np.isfinite(val):
            return np.inf, np.zeros_like(v)
        self.u = np.asarray(u, float)
        J = np.asarray(theta_jacobian(x, self.perms, setup.inner, setup.layout), float)
        g = np.concatenate([J.T @ np.asarray(g_theta, float), np.asarray(g_beta, float)])
        return val, np.nan_to_num(g)

    def deviance(self, w):
        t = self._value(w)
        base_w, base_v = self.nearest(w, self.v_hat)
        v0 = np.clip(base_v + self.slope * (t - self._value(base_w)), self.lo, self.hi)
        v0[self.v_focal] = t
        lo, hi = self.lo.copy(), self.hi.copy()
        lo[self.v_focal] = hi[self.v_focal] = t
        v_hat, sc = self.v_hat, self.sc

        def fun(z):
            val, g = self._value_and_grad(v_hat + sc * z)
            return (1e300, np.zeros_like(z)) if not np.isfinite(val) else (val, g * sc)

        z_lo, z_hi = (lo - v_hat) / sc, (hi - v_hat) / sc
        bounds = [(a if np.isfinite(a) else None, b if np.isfinite(b) else None) for a, b in zip(z_lo, z_hi)]
        z0 = np.clip((v0 - v_hat) / sc, z_lo, z_hi)
        sd_lower = np.where(self.is_sd, z_lo, -np.inf)
        sd_lower[self.v_focal] = -np.inf
        z, dev = _minimize(fun, z0, bounds, _zero_starts(z0, sd_lower, 0.5))
        return dev, v_hat + sc * z


def glmm_profile_confint(fit, level: float = 0.95, parm=None) -> pd.DataFrame:
    """Profile-likelihood intervals of a GLMM fit (lme4's ``confint(method="profile")`` of ``glmer``).

    Parameters
    ----------
    fit : GlmerFit (nAGQ ≥ 1)
    level : float
    parm : str or list of str, optional
        Only these parameters (fixed-effect names, ``sd(…)``, ``cor(…)``).

    Returns
    -------
    DataFrame with columns ``lower, upper``: the fixed effects, then ``sd(…)``/``cor(…)``.

    Examples
    --------
    >>> glmm_profile_confint(fit, parm="sd(Intercept|herd)")  # doctest: +SKIP
    """
    setup = glmm_profile_setup(fit)
    z = norm_ppf(0.5 + level / 2.0)
    rows = {}
    selected = _selected(setup, parm)
    with Progress(len(selected), "profile", "parameter",
                  compiling=first_use(("glmm_profile", fit.model.dims, fit.nagq))) as bar:
        for k in selected:
            prof = GlmmProfiler(setup, k)
            rows[setup.names[k]] = (_find_end(prof, -z), _find_end(prof, z))
            bar.update(1)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])
    out.attrs["method"] = "profile (Laplace deviance)" if fit.nagq == 1 else f"profile (nAGQ = {fit.nagq} deviance)"
    out.attrs["level"] = level
    return out
