"""``lmm.power_curve``: power over a grid of sample sizes, its table, plot and the smallest size."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..progress import Progress
from ..errors import ModelSpecError
from ..validate import check_count, check_fraction, check_optional_bool, check_optional_count, check_seed
from .designs import extend
from .glmm import fit_on_design, fit_on_rows, glmm_design, glmm_truth, model_on_design, power_glmm
from .run import _starting_point, prepare, run_power, shared_shapes


@dataclass(frozen=True)
class PowerCurve:
    """Power at each sample size.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per size: ``size`` (levels of ``along``, or rows per group
        for ``within``), ``nobs``, ``power``, ``lower``, ``upper`` (Clopper-Pearson),
        ``nsim``, ``n_significant``, ``n_failed``, ``n_singular``, ``seconds``.
    results : list of PowerResult
    along : str
        What the sizes count (``"Subject"`` or ``"rows per Subject"``).
    alpha, level : float
    """

    table: pd.DataFrame
    results: list = field(repr=False)
    along: str = ""
    alpha: float = 0.05
    level: float = 0.95

    def smallest(self, target: float = 0.8, conservative: bool = False):
        """The smallest size whose estimated power reaches ``target`` (None if none does).

        With ``conservative=True`` the lower confidence limit must reach it.

        Examples
        --------
        >>> curve.smallest(0.8)  # doctest: +SKIP
        30
        """
        col = "lower" if conservative else "power"
        ok = self.table[self.table[col] >= target]
        if ok.empty:
            return None
        size = ok["size"].min()
        return int(size) if float(size).is_integer() else size

    def plot(self, ax=None, target: float = 0.8):
        """Power against size with its confidence band and a line at ``target``.

        Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        t = self.table
        ax.fill_between(t["size"], t["lower"], t["upper"], alpha=0.25, label=f"{int(round(100 * self.level))}% CI")
        ax.plot(t["size"], t["power"], marker="o", label="power")
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"{target:.0%}")
        best = self.smallest(target)
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"number of {self.along}")
        ax.set_ylabel("power")
        res = self.results[0]
        ax.set_title(f"Power for {' + '.join(res.test)} ({res.method}, alpha = {self.alpha:g})")
        ax.legend(loc="lower right")
        return fig

    def __repr__(self) -> str:
        return f"<PowerCurve along {self.along}>\n{self.table.to_string(index=False)}"


ROW_TAG = "_row_power_curve_"


def _subset_design(big: pd.DataFrame, along, within, size: int) -> pd.DataFrame:
    if along is not None:
        return extend(big, along=along, n=size)
    return extend(big, within=within, n=size)


def _deleted_rows(big_model, small: pd.DataFrame):
    """Positions of ``big_model``'s rows that are not in ``small`` (by the row tag)."""
    labels = np.asarray(big_model.frame.rows)
    return np.nonzero(~np.isin(labels, small[ROW_TAG].to_numpy()))[0]


def power_curve(fit_or_data, along: str | None = None, sizes=None, test=None, method: str = "lrt", *,
                within=None, formula: str | None = None, data: pd.DataFrame | None = None, fixef=None,
                varcorr=None, sigma=None, theta=None, nsim: int = 1000, alpha: float = 0.05,
                seed: int = 0, reml=None, batch_size=None, progress: bool | None = None,
                level: float = 0.95, devices=None, same_shapes: bool = True) -> PowerCurve:
    """Power at several sample sizes along a grouping factor (or within groups).

    For each size the design is :func:`~lmmjax.powersim.extend`-ed (or cut
    down) to that many levels of ``along`` — or, with ``within``, that many
    rows per group — and the power is estimated as by :func:`lmmjax.power`
    with the same parameters and seed.

    Like simr's ``powerCurve``, every size is a subset of the largest design
    (its first levels, or first rows per group), and by default
    (``same_shapes=True``) every size runs on the largest design's compiled
    shapes, with the other rows deleted from the cross-products: the fits
    are exactly those of the smaller design, the curve is compiled once
    instead of once per size, and simulation i draws the same random effects
    for the levels the sizes share (common random numbers: the curve is
    smoother than independent runs). Each size then costs what the largest
    costs to run. ``same_shapes=False`` runs each size as its own design.

    Parameters
    ----------
    fit_or_data : LmerFit, GlmerFit or DataFrame
        As for :func:`lmmjax.power`. For a GlmerFit each size's design is
        fitted once (from the fit's estimates) and its power found by
        :func:`lmmjax.powersim.glmm.power_glmm` with the parameters of the
        fit (and ``fixef``/``varcorr``/``theta``) at every size; the size
        of the fit's own design gives exactly ``lmm.power(fit, ...)``.
        ``same_shapes``, ``batch_size`` and ``devices`` do not apply.
    along : str
        Grouping factor whose number of levels varies (e.g. ``"Subject"``).
    sizes : sequence of int
        Numbers of levels (or rows per group with ``within``).
    within : str or list, optional
        Instead of ``along``: vary the rows per level of this factor (or combination).
    test, method, formula, data, fixef, varcorr, sigma, theta, nsim, alpha, seed, reml, batch_size, level, devices
        As for :func:`lmmjax.power`.
    progress : bool, optional
        A progress bar over all the simulations of all sizes: by default shown
        when the curve takes more than a second; False: none.
    same_shapes : bool
        Run all sizes on the largest design's compiled shapes (see above).

    Returns
    -------
    PowerCurve

    Examples
    --------
    >>> curve = lmm.power_curve(fit, along="Subject", sizes=[10, 20, 30], test="Days",
    ...                         fixef={"Days": 2}, nsim=500)  # doctest: +SKIP
    >>> curve.smallest(0.8), curve.plot()  # doctest: +SKIP
    """
    if sizes is None or len(list(sizes)) == 0:
        raise ModelSpecError("power_curve needs sizes=, e.g. [10, 20, 30, 40, 50].")
    if (along is None) == (within is None):
        raise ModelSpecError("power_curve needs exactly one of along= (a grouping factor) or within=.")
    nsim, alpha, seed = check_count(nsim, "nsim"), check_fraction(alpha, "alpha"), check_seed(seed)
    level, reml = check_fraction(level, "level"), check_optional_bool(reml, "reml")
    batch_size = check_optional_count(batch_size, "batch_size")
    sizes = sorted({check_count(s, "each of sizes") for s in sizes})
    if getattr(fit_or_data, "family", None) is not None:  # a GlmerFit
        unused = [k for k, v in dict(formula=formula, data=data, sigma=sigma, reml=reml).items() if v is not None]
        if unused:
            raise ModelSpecError(f"power_curve() of a GLMM fit does not take {', '.join(unused)} (it extends "
                                 "the fit's design; a GLMM has no sigma and is fitted by ML).")
        return glmm_power_curve(fit_or_data, along, within, sizes, test, method, fixef, varcorr, theta, nsim,
                                alpha, seed, level, progress)
    _, design, _, _ = _starting_point(fit_or_data, formula, data)
    from_fit = not isinstance(fit_or_data, pd.DataFrame)

    def prepared(d):
        start, args = (fit_or_data, dict(formula=None, data=d)) if from_fit else (d, dict(formula=formula))
        return prepare(start, test, method, fixef=fixef, varcorr=varcorr, sigma=sigma, theta=theta,
                       reml=reml, **args)

    big = _subset_design(design, along, within, sizes[-1]).reset_index(drop=True)
    big[ROW_TAG] = np.arange(len(big))
    big_prep = prepared(big) if same_shapes else None

    rows, results = [], []
    with Progress(len(sizes) * int(nsim), "power curve", "sim", progress) as bar:
        for size in sizes:
            d = _subset_design(big, along, within, size)
            model, truth, hyp, meth, f = prepared(d)
            shapes = None
            if big_prep is not None:
                big_model, _, big_hyp = big_prep[:3]
                deleted = _deleted_rows(big_model, d)
                compatible = (list(model.frame.fixed_names) == list(big_model.frame.fixed_names)
                              and model.layout.names == big_model.layout.names
                              and model.n_rows == big_model.n_rows - len(deleted)
                              and hyp.columns == big_hyp.columns)
                if compatible:
                    shapes = shared_shapes(big_model, big_hyp, meth, deleted)
            res = run_power(model, truth, hyp, meth, int(nsim), float(alpha), int(seed), batch_size,
                            bar, f, level, devices, shapes)
            results.append(res)
            rows.append(dict(size=size, nobs=res.nobs, power=res.power, lower=res.ci[0], upper=res.ci[1],
                             nsim=res.nsim, n_significant=res.n_significant, n_failed=res.n_failed,
                             n_singular=res.n_singular, seconds=res.seconds))
    label = along if along is not None else f"rows per {within if isinstance(within, str) else '+'.join(within)}"
    return PowerCurve(table=pd.DataFrame(rows), results=results, along=label, alpha=alpha, level=level)


def glmm_power_curve(fit, along, within, sizes, test, method, fixef, varcorr, theta, nsim, alpha, seed, level,
                     progress) -> PowerCurve:
    """:func:`power_curve` of a GlmerFit (arguments checked there): one fit and one power run per size.

    Each smaller size runs on the largest size's design with prior weight 0
    on the rows it lacks (:func:`lmmjax.powersim.glmm.fit_on_rows`; the
    same likelihood), so the batched refits compile once for the whole
    curve; a size whose own model differs in its columns or parameters (a
    factor level lost, say) is fitted on its own design.
    """
    truth = glmm_truth(fit, fixef, varcorr, theta)
    full_fixef = {name: float(v) for name, v in truth.fixef.items()}
    big = _subset_design(glmm_design(fit), along, within, sizes[-1]).reset_index(drop=True)
    big[ROW_TAG] = np.arange(len(big))
    big_fit = fit_on_design(fit, big)
    rows, results = [], []
    with Progress(len(sizes), "power curve", "size", progress) as bar:
        for size in sizes:
            small = _subset_design(big, along, within, size)
            deleted = _deleted_rows(big_fit.model, small)
            if len(deleted) == 0 and len(small) == big_fit.model.n_rows:  # the largest size: the big design
                model, design_fit = big_fit.model, big_fit
            else:
                model = model_on_design(fit, small)
                shared = (list(model.frame.fixed_names) == list(big_fit.model.frame.fixed_names)
                          and model.layout.names == big_fit.model.layout.names
                          and model.n_rows == big_fit.model.n_rows - len(deleted))
                design_fit = fit_on_rows(big_fit, deleted, fit) if shared else fit_on_design(fit, small, model)
            res = power_glmm(design_fit, test, method, fixef=full_fixef, theta=truth.theta, nsim=nsim,
                             alpha=alpha, seed=seed, level=level)
            res = replace(res, nobs=model.nobs, ngroups={b.group: b.nlevels for b in model.blocks})
            results.append(res)
            rows.append(dict(size=size, nobs=res.nobs, power=res.power, lower=res.ci[0], upper=res.ci[1],
                             nsim=res.nsim, n_significant=res.n_significant, n_failed=res.n_failed,
                             n_singular=res.n_singular, seconds=res.seconds))
            bar.update(1)
    label = along if along is not None else f"rows per {within if isinstance(within, str) else '+'.join(within)}"
    return PowerCurve(table=pd.DataFrame(rows), results=results, along=label, alpha=alpha, level=level)
