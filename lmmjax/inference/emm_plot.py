"""Plot of estimated marginal means with their confidence intervals (matplotlib, imported on use)."""
from __future__ import annotations

import numpy as np


def plot_means(em, ax=None, level: float | None = None, dodge: float = 0.08, title: str | None = None):
    """Means (points) with confidence intervals (bars) against the first variable of the means.

    With a second variable or ``by`` groups, one line per level of the rest
    (an interaction plot), shifted sideways a little so the bars do not
    overlap.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = fit.emmeans("recipe", by="temperature").plot()  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    table = em.ci(level=level) if level is not None else em.table
    est_col = em.est_name
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
    else:
        fig = ax.figure
    xvar = em.pri[0] if em.pri else None
    traces = [v for v in em.pri[1:] + em.by]
    xlabels = list(dict.fromkeys(str(v) for v in table[xvar])) if xvar else ["overall"]
    xpos = {lab: i for i, lab in enumerate(xlabels)}
    groups = [("", table)] if not traces else list(table.groupby(traces, sort=False, observed=True))
    n = len(groups)
    for g, (key, sub) in enumerate(groups):
        shift = (g - (n - 1) / 2) * dodge
        x = np.array([xpos[str(v)] for v in sub[xvar]]) + shift if xvar else np.array([shift])
        y = sub[est_col].to_numpy(float)
        lo, hi = sub["lower"].to_numpy(float), sub["upper"].to_numpy(float)
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{t} = {k}" for t, k in zip(traces, key)) if traces else None
        line = ax.plot(x, y, "o-" if traces else "o", label=label)[0]
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor=line.get_color(), capsize=3)
    ax.set_xticks(range(len(xlabels)))
    ax.set_xticklabels(xlabels)
    ax.set_xlabel(xvar or "")
    ax.set_ylabel(est_col.replace("_", " "))
    level_used = em.level if level is None else level
    ax.set_title(title or f"{est_col.replace('_', ' ')} with {100 * level_used:g}% confidence intervals")
    if traces:
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig
