"""``lmm.power``: the power of a test for a model, parameter values and design, by simulation."""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelSpecError
from ..model import Model, build_model
from ..progress import Progress, first_use
from ..results.fit import LmerFit
from ..simulate.batched import fit_simulated
from ..validate import check_count, check_fraction, check_optional_bool, check_optional_count, check_seed
from .glmm import power_glmm
from .engine import BatchFit, _fit_many, batch_satterthwaite, chunk_size
from .hypotheses import (
    METHODS, lrt_statistics, null_model, resolve_hypothesis, satterthwaite_statistics, wald_statistics,
)
from .parameters import Truth, resolve_truth
from .responses import simulate_responses, truth_parameters
from .result import PowerResult, clopper_pearson

PLACEHOLDER = "_y_power_"


# ---- the model structure to simulate for -----------------------------------------------
def _split_formula(formula: str) -> tuple:
    depth = 0
    for i, ch in enumerate(formula):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "~" and depth == 0:
            return formula[:i].strip(), formula[i + 1:].strip()
    raise ModelSpecError(f"Formula {formula!r} has no '~'.")


def design_model(formula: str, data: pd.DataFrame, reml: bool) -> Model:
    """The model structure of ``formula`` on the design ``data`` (its response is a placeholder).

    The response column need not exist or vary: responses are simulated. A
    response expression (``log(y)``) is replaced by a plain column, since
    the simulated values are on the scale the model is fitted on.
    """
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, not {type(data).__name__}.")
    lhs, rhs = _split_formula(formula)
    frame = data.copy()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", lhs):
        lhs = PLACEHOLDER
    # Any non-constant finite values do: only the structure is used.
    frame[lhs] = np.random.default_rng(0).standard_normal(len(frame))
    return build_model(f"{lhs} ~ {rhs}", frame, reml=reml)


def parameter_names(formula: str, data: pd.DataFrame) -> dict:
    """The names ``power`` expects for ``fixef`` and ``varcorr`` of a formula on a design.

    Returns
    -------
    dict with ``fixef`` (list of fixed-effect names) and ``varcorr``
    (grouping factor -> its random-effect columns)

    Examples
    --------
    >>> from lmmjax.powersim import crossed, parameter_names
    >>> d = crossed(20, 10, within={"condition": ["A", "B"]})
    >>> parameter_names("y ~ condition + (1 | Subject) + (1 | Item)", d)["fixef"]
    ['Intercept', 'condition[T.B]']
    """
    model = design_model(formula, data, reml=True)
    groups: dict = {}
    for tm in model.frame.terms:
        groups.setdefault(tm.group, []).extend(tm.columns)
    return dict(fixef=list(model.frame.fixed_names), varcorr=groups)


def _starting_point(fit_or_data, formula, data):
    """(formula, design, base Truth or None, base model or None)."""
    if isinstance(fit_or_data, LmerFit):
        fit = fit_or_data
        if formula is not None and formula != fit.formula:
            raise ModelSpecError(
                "power() from a fit simulates and refits the fit's own formula; to study another "
                "model, start from the design: power(data, formula=..., fixef=..., varcorr=..., sigma=...)."
            )
        design = fit.model.frame.data if data is None else data
        return fit.formula, design, Truth(fit.fixef, fit.theta, fit.sigma), fit.model
    if isinstance(fit_or_data, pd.DataFrame):
        if formula is None:
            raise ModelSpecError("Starting from a design (a DataFrame), power() needs formula=.")
        if data is not None:
            raise ModelSpecError("Give the design either as the first argument or as data=, not both.")
        return formula, fit_or_data, None, None
    raise ModelSpecError(
        f"power() starts from a fitted model (LmerFit) or a design (DataFrame), not {type(fit_or_data).__name__}."
    )


def _method(method: str) -> str:
    key = str(method).lower()
    if key not in METHODS:
        raise ModelSpecError(f"Unknown test method {method!r}; use 'lrt', 'wald' or 'satterthwaite'.")
    return METHODS[key]


def _start_theta(model, theta: np.ndarray) -> np.ndarray:
    """Start the refits at the true θ, off the boundary (a start exactly at 0 is a saddle)."""
    theta = np.asarray(theta, float).copy()
    diag = model.layout.diagonal
    theta[diag] = np.maximum(theta[diag], 0.05)
    return theta


# ---- one run ------------------------------------------------------------------------
@dataclass(frozen=True)
class SharedShapes:
    """Run a design as a row subset of a larger one, on the larger one's compiled shapes.

    ``model`` (and ``null``) are the larger design's structures with the
    ``deleted`` rows given weight 0 (:meth:`lmmjax.model.Model.with_weights`):
    a level left without rows keeps its place with a zero cross-product and
    contributes nothing, so fits are exactly those of the smaller design,
    while shapes and :class:`~lmmjax.structure.crossprod.Dims` — hence
    compiled code — are the larger design's.
    """

    model: Model
    null: Model | None
    deleted: np.ndarray


def shared_shapes(big: Model, hyp, method: str, deleted: np.ndarray) -> SharedShapes:
    """:class:`SharedShapes` for ``big`` with the rows ``deleted`` (positions) removed."""
    deleted = np.asarray(deleted, dtype=np.int64)
    w = big.weights.copy()
    w[deleted] = 0.0
    model = big.with_weights(w)
    null = null_model(big, hyp).with_weights(w) if method == "lrt" else None
    return SharedShapes(model, null, deleted)


def _fit_simulated(model, null, truth, idx, seed, theta0, devices):
    """(fits, null fits or None) of the simulations ``idx``, drawn and fitted on the devices."""
    r = fit_simulated(model, truth_parameters(model, truth), len(idx), seed=int(seed), theta0=theta0,
                      start=int(idx[0]), batch_size=len(idx), progress=False, devices=devices, null=null)
    fits = BatchFit(r["theta"], r["deviance"], r["converged"], r["singular"], r["beta"], r["sigma"],
                    r["vcov_unscaled"])
    if null is None:
        return fits, None
    return fits, BatchFit(r["theta_h0"], r["deviance_h0"], r["converged_h0"], r["singular_h0"], r["beta_h0"],
                          r["sigma_h0"], r["vcov_unscaled_h0"])


def _run_batch(model, null, truth, hyp, method, idx, seed, theta0, devices, deleted=None):
    """Statistics (dict of arrays) for the simulations ``idx``.

    Wald and likelihood-ratio runs draw the responses on the devices and fit
    the model (and the null model) to them there (:func:`lmmjax.simulate.fit_simulated`):
    no response travels through the host. Satterthwaite runs draw on the
    host, since the per-simulation derivatives take the responses.
    """
    if method == "satterthwaite":
        Y = simulate_responses(model, truth, idx, seed=seed)
        fits = _fit_many(model, Y, theta0, devices)
    else:
        fits, fits0 = _fit_simulated(model, null if method == "lrt" else None, truth, idx, seed, theta0, devices)
    ok = np.isfinite(fits.deviance) & np.all(np.isfinite(fits.theta), axis=1)
    out = {c: fits.beta[:, j] for c, j in zip(hyp.columns, hyp.index)}
    if method == "wald":
        vcov = fits.sigma[:, None, None] ** 2 * fits.vcov_unscaled
        out.update(wald_statistics(fits.beta, vcov, hyp))
    elif method == "satterthwaite":
        H, C, J = batch_satterthwaite(model, fits.theta, fits.sigma, Y)
        out.update(satterthwaite_statistics(fits.beta, H, C, J, hyp))
    else:
        ok0 = np.isfinite(fits0.deviance) & np.all(np.isfinite(fits0.theta), axis=1)
        out.update(lrt_statistics(fits.deviance, fits0.deviance, hyp))
        out["deviance_h1"] = fits.deviance
        out["deviance_h0"] = fits0.deviance
        out["converged_h0"] = fits0.converged & ok0
        out["singular_h0"] = fits0.singular & ok0
        ok = ok & ok0
    out["converged"] = fits.converged & ok
    out["singular"] = fits.singular & ok
    out["failed"] = ~ok | ~np.isfinite(out["p_value"])
    return out


def run_power(model: Model, truth: Truth, hyp, method: str, nsim: int, alpha: float, seed: int,
              batch_size: int | None, progress, formula: str, level: float = 0.95,
              devices=None, shapes: SharedShapes | None = None) -> PowerResult:
    """Simulate, refit and test for a prepared model structure (the core of :func:`power`).

    With ``shapes`` the computation runs on a larger design's compiled
    shapes (see :class:`SharedShapes`); ``model`` still describes the
    design reported (observations, groups).
    """
    t0 = time.perf_counter()
    report = model
    deleted = None
    if shapes is not None:
        model, null, deleted = shapes.model, shapes.null, shapes.deleted
    else:
        null = null_model(model, hyp) if method == "lrt" else None
    theta0 = _start_theta(model, truth.theta)
    bs = chunk_size(model, nsim, devices) if batch_size is None else max(1, int(batch_size))
    shared_bar = isinstance(progress, Progress)  # a power curve's bar over all its sizes
    bar = progress if shared_bar else Progress(nsim, f"power ({method})", "sim", progress)
    bar.set_compiling(first_use(("power", method, model.dims, null.dims if null is not None else None, bs)))
    parts = []
    try:
        for start in range(0, nsim, bs):
            idx = np.arange(start, start + bs)  # full chunks keep one compiled shape
            part = _run_batch(model, null, truth, hyp, method, idx, seed, theta0, devices, deleted)
            keep = min(bs, nsim - start)
            parts.append({k: np.asarray(v)[:keep] for k, v in part.items()})
            bar.update(keep)
    finally:
        if not shared_bar:
            bar.close()
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    failed = cols.pop("failed")
    pvals = np.where(failed, np.nan, cols["p_value"])
    cols["p_value"] = pvals
    significant = (pvals < alpha) & ~failed
    sims = pd.DataFrame({"sim": np.arange(nsim)})
    order = list(hyp.columns) + [c for c in ("std_error", "statistic", "df", "ddf", "p_value") if c in cols]
    for c in order:
        sims[c] = cols[c]
    sims["significant"] = significant
    for c in ("converged", "singular", "converged_h0", "singular_h0", "deviance_h1", "deviance_h0"):
        if c in cols:
            sims[c] = cols[c]
    sims["failed"] = failed
    n_used = int(nsim - failed.sum())
    k = int(significant.sum())
    not_conv = ~np.array(sims["converged"], dtype=bool)
    sing = np.array(sims["singular"], dtype=bool)
    if "converged_h0" in sims:
        not_conv = not_conv | ~np.array(sims["converged_h0"], dtype=bool)
        sing = sing | np.array(sims["singular_h0"], dtype=bool)
    not_conv &= ~failed
    sing &= ~failed
    if n_used < nsim:
        warnings.warn(f"{nsim - n_used} of {nsim} simulations failed (a fit or the test could not be "
                      "computed) and are left out of the power.", RuntimeWarning, stacklevel=3)
    ngroups = {b.group: b.nlevels for b in report.blocks}
    return PowerResult(
        power=k / n_used if n_used else float("nan"), ci=clopper_pearson(k, n_used, level), level=level,
        nsim=nsim, n_significant=k, n_failed=int(nsim - n_used), n_not_converged=int(not_conv.sum()),
        n_singular=int(sing.sum()), alpha=alpha, method=method, test=hyp.columns, formula=formula,
        parameters=dict(fixef=truth.fixef.copy(), varcorr=truth.varcorr(report), sigma=truth.sigma,
                        theta=truth.theta.copy()),
        simulations=sims, nobs=report.nobs, ngroups=ngroups, seed=seed,
        seconds=time.perf_counter() - t0,
    )


def prepare(fit_or_data, test=None, method: str = "lrt", *, formula=None, data=None, fixef=None,
            varcorr=None, sigma=None, theta=None, reml=None):
    """(model, truth, hypothesis, method, formula) for a power run; shared by ``power`` and ``power_curve``."""
    method = _method(method)
    if reml is None:
        reml = method != "lrt"
    if method == "lrt" and reml:
        raise ModelSpecError(
            "The likelihood-ratio test of fixed effects needs ML fits (reml=False): REML criteria of "
            "models with different fixed effects are not comparable."
        )
    formula, design, base, base_model = _starting_point(fit_or_data, formula, data)
    model = design_model(formula, design, reml=bool(reml))
    truth = resolve_truth(model, base=base, base_model=base_model, fixef=fixef, varcorr=varcorr,
                          sigma=sigma, theta=theta)
    hyp = resolve_hypothesis(model, test)
    return model, truth, hyp, method, formula


def power(fit_or_data, test=None, method: str = "lrt", *, formula: str | None = None,
          data: pd.DataFrame | None = None, fixef=None, varcorr=None, sigma: float | None = None,
          theta=None, nsim: int = 1000, alpha: float = 0.05, seed: int = 0, reml: bool | None = None,
          batch_size: int | None = None, progress: bool | None = None, level: float = 0.95,
          devices=None) -> PowerResult:
    """Power of a test of fixed effects, by simulating from the model and refitting.

    Each simulation draws a response from the model with the assumed
    parameters, refits the model (and for the LRT the null model) and tests
    the effect; the power is the share of simulations with p < ``alpha``.
    All refits of one model run as one compiled batch (vmapped, sharded
    over the devices): :func:`lmmjax.simulate.fit_batch`.

    Parameters
    ----------
    fit_or_data : LmerFit, GlmerFit or pandas.DataFrame
        A fitted model (its formula, design and estimates are the starting
        values; for a GlmerFit see :func:`lmmjax.powersim.glmm.power_glmm`:
        methods "lrt" and "wald", parameters on the link scale) or a design (then ``formula``, ``varcorr``, ``sigma`` and the
        effect of interest in ``fixef`` are needed; unnamed fixed effects are 0).
    test : str or list of str
        Fixed-effect columns (``"Days"``, ``"group[T.treated]"``) or terms of
        the fixed formula (``"group"``: all its columns), tested jointly.
        Default: the only non-intercept term, if there is one.
    method : {"lrt", "wald", "satterthwaite"}
        Likelihood-ratio test of ML fits (the null model refitted to the same
        responses); Wald z (χ² for several columns); t (F) with
        Satterthwaite df on REML fits.
    formula : str, optional
        lme4 formula; required when starting from a design.
    data : DataFrame, optional
        Another design for a fit's model and parameters (e.g. from
        :func:`lmmjax.powersim.extend`).
    fixef : dict, optional
        Fixed effects by name, e.g. ``{"Days": 5}`` (simr's ``fixef<-``).
    varcorr : optional
        Random-effect standard deviations and correlations in the response's
        units (simr's ``VarCorr<-``), by grouping factor —
        ``{"Subject": {"sd": [24.7, 5.9], "cor": 0.07}}``, ``{"Item": 10.0}``
        (one column), ``{"Subject": {"cov": [[...]]}}`` — or by parameter
        name as in ``fit.sdcor`` (``{"sd(Days|Subject)": 3}``), or a table
        like ``fit.varcorr``. From a fit, the ones not named keep their
        estimates.
    sigma : float, optional
        Residual standard deviation (simr's ``sigma<-``); the random-effect
        SDs stay as they are.
    theta : array, optional
        lme4's θ (relative to σ) instead of ``varcorr``.
    nsim : int
    alpha : float
    seed : int
        Simulation i uses the key ``fold_in(PRNGKey(seed), i)``: results do
        not depend on ``batch_size``.
    reml : bool, optional
        Default: ML for the LRT, REML for the Wald and Satterthwaite tests.
    batch_size : int, optional
        Simulations drawn and fitted together as one compiled batch
        (default: all of them, up to a size set by the memory one
        simulation needs).
    progress : bool, optional
        A progress bar (tqdm): by default shown when the run takes more than
        a second (with "compiling…" while it compiles); False: none.
    level : float
        Confidence level of the interval for the power.
    devices : list of jax devices, optional
        The batch is sharded over these (default: all of ``jax.devices()``),
        as the bootstrap.

    Returns
    -------
    PowerResult

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fit = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> res = lmm.power(fit, test="Days", fixef={"Days": 2}, nsim=200, progress=False)  # doctest: +SKIP
    >>> print(res)  # doctest: +SKIP
    """
    if getattr(fit_or_data, "family", None) is not None:  # a GlmerFit: lmmjax.powersim.glmm
        unused = [k for k, v in dict(formula=formula, data=data, sigma=sigma, reml=reml).items() if v is not None]
        if unused:
            raise ModelSpecError(f"power() of a GLMM fit does not take {', '.join(unused)} (it simulates the "
                                 "fit's design; a GLMM has no sigma and is fitted by ML).")
        return power_glmm(fit_or_data, test, method, fixef=fixef, varcorr=varcorr, theta=theta, nsim=nsim,
                          alpha=alpha, seed=seed, level=level)
    nsim, alpha, seed = check_count(nsim, "nsim"), check_fraction(alpha, "alpha"), check_seed(seed)
    level, reml = check_fraction(level, "level"), check_optional_bool(reml, "reml")
    batch_size = check_optional_count(batch_size, "batch_size")
    model, truth, hyp, method, formula = prepare(
        fit_or_data, test, method, formula=formula, data=data, fixef=fixef, varcorr=varcorr,
        sigma=sigma, theta=theta, reml=reml)
    return run_power(model, truth, hyp, method, int(nsim), float(alpha), int(seed), batch_size,
                     progress, formula, level, devices)
