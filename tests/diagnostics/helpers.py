"""Helpers for the diagnostics tests."""
import warnings

import numpy as np
import pandas as pd

import lmmjax as lmm


def quiet_fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(formula, data, **kw)


def oneway(k: int, m: int, s2g: float, seed: int = 0) -> pd.DataFrame:
    """Balanced one-way data whose REML estimates are known in closed form:
    within-group mean square exactly 1 and sample variance of the group
    effects exactly ``s2g``, so σ̂² = 1 and σ̂_b² = max(0, s2g − 1/m)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(k, m))
    e -= e.mean(axis=1, keepdims=True)
    e /= np.sqrt((e ** 2).sum() / (k * (m - 1)))
    g = rng.normal(size=k)
    g -= g.mean()
    g *= np.sqrt(s2g / g.var(ddof=1))
    y = 10 + g[:, None] + e
    return pd.DataFrame({"y": y.ravel(), "g": np.repeat([f"g{j:02d}" for j in range(k)], m)})
