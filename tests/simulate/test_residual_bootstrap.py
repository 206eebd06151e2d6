"""The bootstrap of an AR(1) fit covers φ (issue 12 acceptance).

Data sets are drawn from a random-intercept model with AR(1) residuals
(φ = 0.5, 40 subjects × 12 visits); each is fitted with
``correlation=lmm.AR1(group="subject")`` and bootstrapped (200 replicates).
The 95% percentile interval of φ must contain 0.5 at about the nominal rate:
at least 33 of 40 (P(X ≤ 32) ≈ 0.002 for a true rate of 0.95).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmjax as lmm

PHI = 0.5


def _draw(rng, n_subjects=40, visits=12):
    e = np.empty((n_subjects, visits))
    e[:, 0] = rng.normal(size=n_subjects)
    for k in range(1, visits):
        e[:, k] = PHI * e[:, k - 1] + np.sqrt(1 - PHI ** 2) * rng.normal(size=n_subjects)
    subject = np.repeat(np.arange(n_subjects), visits)
    visit = np.tile(np.arange(visits), n_subjects)
    y = 2.0 + 0.3 * visit + 0.8 * rng.normal(size=n_subjects)[subject] + e.ravel()
    return pd.DataFrame({"y": y, "visit": visit, "subject": [f"s{s}" for s in subject]})


@pytest.mark.slow
def test_bootstrap_percentile_interval_covers_phi():
    rng = np.random.default_rng(20261203)
    covered = 0
    for _ in range(40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = lmm.lmer("y ~ visit + (1 | subject)", _draw(rng), correlation=lmm.AR1(group="subject"))
            ci = fit.bootstrap(200, seed=int(rng.integers(2**31))).ci(level=0.95)
        covered += ci.loc["phi", "lower"] <= PHI <= ci.loc["phi", "upper"]
    assert covered >= 33, f"the 95% percentile interval covered phi = {PHI} in {covered} of 40 data sets"
