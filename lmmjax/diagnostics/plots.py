"""Plots for mixed models (matplotlib, imported only when a plot is drawn).

``lmm.plot`` is this module.

Every function returns the matplotlib ``Figure`` and takes an optional
``ax``: an ``Axes`` to draw into (or, for functions that draw one panel per
term or parameter, a sequence of them). Without ``ax`` a new figure is
made with ``matplotlib.pyplot``, so ``plt.show()`` works in scripts; in a
notebook, assign the result (``fig = lmm.plot.qq(fit)``) or end the line
with ``;`` to avoid seeing the figure twice.

Before modelling:

- :func:`spaghetti` — raw trajectories, one line per group.

After fitting:

- :func:`residuals_fitted`, :func:`qq`, :func:`scale_location` — residual checks;
- :func:`ranef_qq`, :func:`ranef_density` — the conditional modes per term;
- :func:`caterpillar` — conditional modes with their intervals;
- :func:`cooks_distance` — influence of groups or observations;
- :func:`profile_zeta` — likelihood profiles (ζ plots);
- :func:`diagnostics` — the standard panel (``fit.plot_diagnostics()``).

Examples
--------
>>> import lmmjax as lmm
>>> df = lmm.datasets.load("sleepstudy")
>>> fig = lmm.plot.spaghetti(df, "Days", "Reaction", "Subject")  # doctest: +SKIP
>>> fig.savefig("trajectories.png")  # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelSpecError
from ..inference import profile
from .influence import Influence, influence
from .residuals import residuals

__all__ = [
    "spaghetti", "residuals_fitted", "qq", "scale_location", "ranef_qq", "ranef_density",
    "caterpillar", "cooks_distance", "profile_zeta", "diagnostics",
]


# ---- helpers ----------------------------------------------------------------------------------
def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _axes(ax, n: int = 1, ncols: int | None = None, size=(4.2, 3.4)):
    """(figure, list of n axes): the given ones, or a new grid."""
    if ax is not None:
        axes = list(np.ravel(np.asarray(ax, dtype=object))) if not hasattr(ax, "plot") else [ax]
        if len(axes) < n:
            raise ValueError(f"this plot needs {n} axes, {len(axes)} given")
        return axes[0].figure, axes[:n]
    plt = _pyplot()
    ncols = ncols or min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig, grid = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    axes = list(grid.ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    return fig, axes[:n]


def _finish(fig, new: bool):
    if new:
        fig.tight_layout()
    return fig


def smooth(x: np.ndarray, y: np.ndarray, frac: float = 2 / 3, points: int = 60):
    """Local linear smoother (tricube weights on the nearest ``frac`` of the
    points), evaluated on a grid: a simple LOWESS without robustness steps.

    Returns ``(grid, fitted)``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 5 or np.ptp(x) == 0:
        return np.array([]), np.array([])
    if len(x) > 5000:  # thin very large data for speed; the smooth barely changes
        idx = np.random.default_rng(0).choice(len(x), 5000, replace=False)
        x, y = x[idx], y[idx]
    grid = np.linspace(x.min(), x.max(), points)
    k = max(int(np.ceil(frac * len(x))), 5)
    out = np.empty(points)
    for i, g in enumerate(grid):
        d = np.abs(x - g)
        h = np.partition(d, k - 1)[k - 1]
        h = h if h > 0 else np.ptp(x)
        w = np.clip(1 - (d / h) ** 3, 0, None) ** 3
        sw = w.sum()
        xm = (w * x).sum() / sw
        ym = (w * y).sum() / sw
        sxx = (w * (x - xm) ** 2).sum()
        slope = (w * (x - xm) * (y - ym)).sum() / sxx if sxx > 0 else 0.0
        out[i] = ym + slope * (g - xm)
    return grid, out


def _scatter(ax, x, y, n):
    alpha = 0.7 if n <= 500 else max(0.08, 0.7 * np.sqrt(500 / n))
    size = 14 if n <= 500 else 4
    ax.scatter(x, y, s=size, alpha=alpha, color="C0", edgecolors="none", rasterized=n > 2000)


def _label_extremes(ax, x, y, labels, k: int = 3):
    if k <= 0 or len(y) == 0:
        return
    for i in np.argsort(-np.abs(y))[:k]:
        ax.annotate(str(labels[i]), (x[i], y[i]), xytext=(3, 3), textcoords="offset points", fontsize=7)


def normal_quantiles(n: int) -> np.ndarray:
    """Theoretical normal quantiles for a QQ plot (R's ``ppoints``)."""
    a = 3 / 8 if n <= 10 else 0.5
    return stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def _qq_line(ax, sample, theo):
    """Reference line through the first and third quartiles (R's ``qqline``)."""
    q = np.quantile(sample, [0.25, 0.75])
    t = stats.norm.ppf([0.25, 0.75])
    if q[1] == q[0]:
        return
    slope = (q[1] - q[0]) / (t[1] - t[0])
    ax.axline((t[0], q[0]), slope=slope, color="0.4", lw=1, ls="--")


def _groups_and_terms(fit, group=None, term=None) -> list:
    """[(group, term column)] to plot."""
    ranef = fit.ranef
    groups = list(ranef) if group is None else ([group] if isinstance(group, str) else list(group))
    out = []
    for g in groups:
        if g not in ranef:
            raise ModelSpecError(f"Unknown grouping factor {g!r}; the model has {list(ranef)}.")
        cols = list(ranef[g].columns)
        if term is not None:
            cols = [c for c in cols if c == term]
        out += [(g, c) for c in cols]
    return out


# ---- before modelling ----------------------------------------------------------------------------
def spaghetti(df: pd.DataFrame, x: str, y: str, group: str, ax=None, mean: bool = True,
              legend: bool | None = None, max_groups: int | None = None, alpha: float | None = None):
    """Raw data as one line per group (trajectories), for looking before modelling.

    Parameters
    ----------
    df : DataFrame
    x, y : str
        Columns for the horizontal and vertical axes.
    group : str
        Column identifying the units (subject, school, …); one line each.
    mean : bool
        Overlay the mean of ``y`` at each ``x`` (bold black line).
    legend : bool, optional
        Default: a legend when there are at most 12 groups.
    max_groups : int, optional
        Draw only the first ``max_groups`` groups (in factor order).

    Examples
    --------
    >>> import lmmjax as lmm
    >>> fig = lmm.plot.spaghetti(lmm.datasets.load("sleepstudy"), "Days", "Reaction", "Subject")
    """
    for col in (x, y, group):
        if col not in df.columns:
            raise ModelSpecError(f"Column {col!r} is not in the data (columns: {list(df.columns)}).")
    new = ax is None
    fig, (a,) = _axes(ax, size=(6.0, 4.2))
    data = df[[x, y, group]].dropna()
    grouped = list(data.groupby(group, observed=True, sort=True))
    if max_groups is not None:
        grouped = grouped[:max_groups]
    n = len(grouped)
    alpha = alpha if alpha is not None else (0.9 if n <= 12 else max(0.15, min(0.8, 8 / np.sqrt(n))))
    cmap = _pyplot().get_cmap("tab20" if n > 10 else "tab10")
    for i, (label, sub) in enumerate(grouped):
        sub = sub.sort_values(x)
        a.plot(sub[x], sub[y], marker="o", ms=2.5, lw=1, alpha=alpha, color=cmap(i % cmap.N), label=str(label))
    if mean:
        m = data.groupby(x, observed=True)[y].mean()
        if len(m) > 1:
            a.plot(m.index, m.to_numpy(), color="black", lw=2.5, label="mean")
    a.set_xlabel(x)
    a.set_ylabel(y)
    a.set_title(f"{y} by {x}, one line per {group} ({n} groups)")
    if legend if legend is not None else n <= 12:
        a.legend(fontsize=7, ncol=2, frameon=False, title=group, title_fontsize=8)
    return _finish(fig, new)


# ---- residual plots -----------------------------------------------------------------------------
def residuals_fitted(fit, ax=None, kind: str = "pearson", type: str = "conditional", label: int = 3):
    """Residuals against fitted values, with a smooth; a flat band around 0 is good.

    ``type="marginal"`` plots y − Xβ̂ against Xβ̂ (checks the mean structure).
    """
    new = ax is None
    fig, (a,) = _axes(ax)
    r = residuals(fit, kind=kind, type=type)
    yhat = fit.fitted if type == "conditional" else fit.model.X @ fit.estimates.beta
    _scatter(a, yhat, r, len(r))
    a.axhline(0, color="0.4", lw=1, ls="--")
    gx, gy = smooth(yhat, r)
    a.plot(gx, gy, color="C3", lw=1.5)
    _label_extremes(a, yhat, r, fit.model.frame.rows, label)
    a.set_xlabel("fitted values" + (" (fixed part)" if type == "marginal" else ""))
    a.set_ylabel(f"{kind.capitalize() if kind == 'pearson' else kind} residuals")
    a.set_title("Residuals vs fitted")
    return _finish(fig, new)


def qq(fit, ax=None, kind: str = "pearson", type: str = "conditional", label: int = 3):
    """Normal QQ plot of the residuals, with a line through the quartiles."""
    new = ax is None
    fig, (a,) = _axes(ax)
    r = residuals(fit, kind=kind, type=type)
    order = np.argsort(r)
    theo = normal_quantiles(len(r))
    _scatter(a, theo, r[order], len(r))
    _qq_line(a, r, theo)
    _label_extremes(a, theo, r[order], fit.model.frame.rows[order], label)
    a.set_xlabel("normal quantiles")
    a.set_ylabel(f"{kind.capitalize() if kind == 'pearson' else kind} residuals")
    a.set_title("Normal QQ plot of residuals")
    return _finish(fig, new)


def scale_location(fit, ax=None):
    """√|Pearson residual| against fitted values: a rising smooth means the
    spread grows with the mean (see the ``heteroscedasticity`` red flag)."""
    new = ax is None
    fig, (a,) = _axes(ax)
    r = np.sqrt(np.abs(fit.residuals("pearson")))
    yhat = fit.fitted
    _scatter(a, yhat, r, len(r))
    gx, gy = smooth(yhat, r)
    a.plot(gx, gy, color="C3", lw=1.5)
    a.set_xlabel("fitted values")
    a.set_ylabel("√|Pearson residual|")
    a.set_title("Scale-location")
    return _finish(fig, new)


# ---- random effects --------------------------------------------------------------------------------
def ranef_qq(fit, group=None, term=None, ax=None, intervals: bool = True, level: float = 0.95):
    """Normal QQ plots of the conditional modes, one panel per (group, term),
    with their conditional intervals (lme4's ``qqmath(ranef(m, condVar=TRUE))``)."""
    pairs = _groups_and_terms(fit, group, term)
    new = ax is None
    fig, axes = _axes(ax, len(pairs))
    z = stats.norm.ppf(0.5 + level / 2)
    for a, (g, c) in zip(axes, pairs):
        b = fit.ranef[g][c].to_numpy()
        sd = fit.ranef_sd[g][c].to_numpy()
        order = np.argsort(b)
        theo = normal_quantiles(len(b))
        if intervals and len(b) <= 300:
            a.errorbar(theo, b[order], yerr=z * sd[order], fmt="o", ms=3, lw=0.6, color="C0", alpha=0.8)
        else:
            _scatter(a, theo, b[order], len(b))
        _qq_line(a, b, theo)
        a.set_xlabel("normal quantiles")
        a.set_ylabel("conditional mode")
        a.set_title(f"{c} | {g}")
    return _finish(fig, new)


def ranef_density(fit, group=None, term=None, ax=None):
    """Histogram and kernel density of the conditional modes per (group, term),
    with the fitted normal N(0, σ̂_b²) dashed. The modes are shrunk towards 0,
    so their spread is smaller than σ̂_b; a clearly skewed or bimodal shape
    is the warning sign."""
    pairs = _groups_and_terms(fit, group, term)
    new = ax is None
    fig, axes = _axes(ax, len(pairs))
    for a, (g, c) in zip(axes, pairs):
        b = fit.ranef[g][c].to_numpy()
        a.hist(b, bins="auto", density=True, color="C0", alpha=0.35)
        sd_b = float(fit.sdcor.get(f"sd({c}|{g})", np.nan))
        span = max(np.ptp(b), 2 * sd_b if np.isfinite(sd_b) else 0, 1e-12)
        grid = np.linspace(b.min() - 0.25 * span, b.max() + 0.25 * span, 200)
        if len(b) > 2 and np.std(b) > 0:
            a.plot(grid, stats.gaussian_kde(b)(grid), color="C0", lw=1.5, label="modes (KDE)")
        if np.isfinite(sd_b) and sd_b > 0:
            a.plot(grid, stats.norm.pdf(grid, 0, sd_b), color="0.3", ls="--", lw=1, label=r"$N(0,\hat\sigma_b^2)$")
        a.set_xlabel("conditional mode")
        a.set_ylabel("density")
        a.set_title(f"{c} | {g}")
        a.legend(fontsize=7, frameon=False)
    return _finish(fig, new)


def caterpillar(fit, group=None, term=None, ax=None, level: float = 0.95, sort: bool = True,
                max_labels: int = 60):
    """Conditional modes with their ``level`` intervals, one panel per (group,
    term), sorted by the mode. Intervals are mode ± z·(conditional SD), as
    lme4's ``dotplot(ranef(m, condVar=TRUE))``.

    Examples
    --------
    >>> fig = lmm.plot.caterpillar(fit, group="Subject")  # doctest: +SKIP
    """
    pairs = _groups_and_terms(fit, group, term)
    nlev = max(len(fit.ranef[g]) for g, _ in pairs)
    height = min(max(3.0, 0.16 * nlev + 1.0), 12.0)
    new = ax is None
    fig, axes = _axes(ax, len(pairs), ncols=min(len(pairs), 3), size=(5.5 if len(pairs) == 1 else 4.2, height))
    z = stats.norm.ppf(0.5 + level / 2)
    for a, (g, c) in zip(axes, pairs):
        b = fit.ranef[g][c]
        sd = fit.ranef_sd[g][c].to_numpy()
        order = np.argsort(b.to_numpy()) if sort else np.arange(len(b))
        pos = np.arange(len(b))
        vals = b.to_numpy()[order]
        many = len(b) > 300
        a.hlines(pos, vals - z * sd[order], vals + z * sd[order], color="C0", lw=0.4 if many else 1.0,
                 alpha=0.5 if many else 0.9)
        a.plot(vals, pos, "o", ms=1.5 if many else 3.5, color="C0" if many else "black")
        a.axvline(0, color="0.4", lw=1, ls="--")
        if len(b) <= max_labels:
            a.set_yticks(pos)
            a.set_yticklabels([str(v) for v in b.index.to_numpy()[order]], fontsize=7)
        else:
            a.set_yticks([])
            a.set_ylabel(f"{len(b)} levels, sorted")
        a.set_xlabel("conditional mode")
        a.set_title(f"{c} | {g}")
    return _finish(fig, new)


# ---- influence and profiles -------------------------------------------------------------------------
def cooks_distance(fit, ax=None, level: str = "group", group=None, label: int = 3, **kwargs):
    """Cook's distance per group (default) or observation, with the rule-of-thumb
    line 4/(number of cases).

    Parameters
    ----------
    fit : LmerFit or Influence
        A fit (influence is computed with :func:`lmmjax.diagnostics.influence`,
        passing ``level``, ``group`` and ``kwargs``) or a computed Influence.
    """
    infl = fit if isinstance(fit, Influence) else influence(fit, level=level, group=group, **kwargs)
    d = infl.cooks_distance
    new = ax is None
    fig, (a,) = _axes(ax, size=(6.0, 3.4))
    x = np.arange(len(d))
    vals = d.to_numpy()
    a.vlines(x, 0, vals, color="C0", lw=1 if len(d) <= 200 else 0.5)
    if len(d) <= 200:
        a.plot(x, vals, "o", ms=3, color="C0")
    cut = 4.0 / len(d)
    a.axhline(cut, color="C3", ls="--", lw=1, label=f"4/{len(d)} (rule of thumb)")
    for i in np.argsort(-np.nan_to_num(vals, nan=-1))[:label]:
        a.annotate(str(d.index[i]), (x[i], vals[i]), xytext=(2, 2), textcoords="offset points", fontsize=7)
    if infl.level == "group" and len(d) <= 40:
        a.set_xticks(x)
        a.set_xticklabels([str(v) for v in d.index], rotation=90, fontsize=7)
    a.set_xlabel(infl.group if infl.level == "group" else "observation")
    a.set_ylabel("Cook's distance")
    a.set_title(f"Cook's distance ({infl.method} deletion of each "
                f"{'level of ' + str(infl.group) if infl.level == 'group' else 'observation'})")
    a.legend(fontsize=7, frameon=False, loc="upper right")
    return _finish(fig, new)


def profile_zeta(fit, ax=None, parm=None, level: float = 0.95):
    """Profile ζ plots: ζ against each parameter (lme4's ``xyplot(profile(m))``).

    A straight line means the likelihood is quadratic there (Wald intervals
    are fine); curvature means they are not. Dotted lines mark ±z for
    ``level``; their crossings with the trace are the profile interval.

    Parameters
    ----------
    fit : LmerFit or DataFrame
        A fit (profiled with :func:`lmmjax.inference.profile`; needs
        :mod:`lmmjax.inference`) or a profile table with columns
        ``parameter, value, zeta``.
    """
    if isinstance(fit, pd.DataFrame):
        prof = fit
    else:
        prof = profile(fit, parm=parm) if parm is not None else profile(fit)
    if parm is not None:
        parm = [parm] if isinstance(parm, str) else list(parm)
        prof = prof[prof["parameter"].isin(parm)]
    names = list(dict.fromkeys(prof["parameter"]))
    new = ax is None
    fig, axes = _axes(ax, len(names), size=(3.6, 3.0))
    z = stats.norm.ppf(0.5 + level / 2)
    for a, name in zip(axes, names):
        sub = prof[prof["parameter"] == name].sort_values("value")
        a.plot(sub["value"], sub["zeta"], "-", color="C0", lw=1.5)
        a.plot(sub["value"], sub["zeta"], "o", ms=2, color="C0")
        for s in (-z, z):
            a.axhline(s, color="0.5", ls=":", lw=1)
        a.axhline(0, color="0.7", lw=0.8)
        a.set_xlabel(name)
        a.set_ylabel("ζ")
    return _finish(fig, new)


# ---- the standard panel ----------------------------------------------------------------------------
def diagnostics(fit, ax=None, cooks: bool = True, group=None):
    """The standard diagnostic panel of a fit (``fit.plot_diagnostics()``).

    Residuals vs fitted, normal QQ of the residuals, scale-location, normal
    QQ of the conditional modes (the first two random-effect terms), and
    Cook's distance of the levels of the first grouping factor
    (``cooks=False`` leaves it out; with many levels it uses the fast
    approximation, see :func:`lmmjax.diagnostics.influence`).
    """
    pairs = [(g, c) for g in fit.ranef for c in fit.ranef[g].columns][:2]
    n = 3 + len(pairs) + (1 if cooks else 0)
    new = ax is None
    fig, axes = _axes(ax, n, ncols=3)
    residuals_fitted(fit, ax=axes[0])
    qq(fit, ax=axes[1])
    scale_location(fit, ax=axes[2])
    for a, (g, c) in zip(axes[3:], pairs):
        ranef_qq(fit, group=g, term=c, ax=a)
    if cooks:
        cooks_distance(fit, ax=axes[-1], level="group", group=group)
    if new:
        fig.suptitle(f"Diagnostics: {fit.formula}", fontsize=11)
    return _finish(fig, new)
