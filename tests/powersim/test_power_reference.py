"""Power against R (lme4 refit loop) and the behaviour of each test under H0.

Reference: tests/reference/make_power_reference.R → fixtures/power/sleep_power.json:
the sleepstudy design, truth = lme4's REML fit of ``Reaction ~ Days + (Days | Subject)``
with the Days effect set to 5, 2 and 0; 1,000 simulations each, ML fits of H1
and H0, LRT on 1 df, α = 0.05.

Tolerance. R's estimate p̂_R (n_R = 1,000) and ours p̂ (n = NSIM) are two
independent binomial proportions (different random numbers) estimating the same
power p when the implementations agree. Then p̂ − p̂_R has mean 0 and
variance p(1 − p)(1/n + 1/n_R). We estimate p by the pooled proportion
p̄ = (k + k_R)/(n + n_R) and allow

    |p̂ − p̂_R| ≤ 3.5 · sqrt(p̄(1 − p̄)(1/n + 1/n_R)),

a two-sided normal tail of 4.7e-4 per comparison (1.4e-3 for the three
effects together) — a failure means a real disagreement, not bad luck, and
the seed is fixed, so the test is deterministic. With n = n_R = 1,000 the
allowances are ±0.053 at p ≈ 0.87, ±0.065 at p ≈ 0.23 and ±0.036 at p ≈ 0.06.

Observed (lmmjax / lme4): 0.877 / 0.868, 0.272 / 0.226, 0.042 / 0.058. Refitting
the same 300 simulated responses with lme4 (effect 2) gave the same decision in
all 300, deviances equal or lower here (by at most 0.023), so the differences
are Monte Carlo noise: with 4,000 simulations lmmjax gives 0.257 (0.243–0.271).
"""
import numpy as np
import pytest
from scipy import stats

import lmmjax as lmm
from tests.reference_data import load_fixture

FORMULA = "Reaction ~ Days + (Days | Subject)"
NSIM = 1000
Z = 3.5


@pytest.fixture(scope="module")
def ref():
    return load_fixture("power", "sleep_power")


@pytest.fixture(scope="module")
def design():
    return lmm.datasets.load("sleepstudy")[["Reaction", "Days", "Subject"]]


def _power(ref, design, effect, method, nsim, seed):
    t = ref["truth"]
    # chunks of 1,000 as in test_power.py: the compiled fits are shared
    return lmm.power(design, "Days", method, formula=FORMULA,
                     fixef={"Intercept": t["intercept"], "Days": effect},
                     theta=t["theta"], sigma=t["sigma"], nsim=nsim, seed=seed, progress=False,
                     batch_size=1000)


def _tolerance(k, n, k_r, n_r, z=Z):
    pbar = (k + k_r) / (n + n_r)
    return z * np.sqrt(pbar * (1 - pbar) * (1 / n + 1 / n_r))


@pytest.mark.parametrize("index", [0, 1, 2], ids=["effect5", "effect2", "effect0"])
def test_lrt_power_matches_lme4_simulation(ref, design, index):
    r = ref["results"][index]
    res = _power(ref, design, r["effect"], "lrt", NSIM, seed=20240612 + index)
    assert res.n_failed == 0
    tol = _tolerance(res.n_significant, res.nsim, r["n_significant"], r["nsim"])
    assert abs(res.power - r["power"]) <= tol, (res.power, r["power"], tol)
    # the whole distribution of the statistic, not only the share past the cut-off
    ks = stats.ks_2samp(res.simulations["statistic"], r["chisq"])
    assert ks.pvalue > 1e-3, ks
    # singular fits happen in R too (21 / 30 / 17 of 1,000 H1 fits); same order here
    assert res.simulations["singular"].sum() <= 3 * max(r["n_singular_h1"], 10)


@pytest.mark.slow  # 2,000 simulated power replicates
def test_type_one_error_of_each_test(ref, design):
    """Effect 0 on the sleepstudy design (18 subjects): what each test does.

    - t with Satterthwaite df: the design is balanced, so the Days contrast has
      exactly 17 df (subjects − 1) and the t test is exact up to singular fits:
      rejection rate ≈ 0.05.
    - Wald z: the same statistic against N(0, 1) instead of t₁₇, so it rejects
      whenever the t test does and also for 1.96 < |t| < 2.11: expected
      P(|t₁₇| > 1.96) = 0.0666 — anti-conservative with few groups.
    - LRT (ML fits): asymptotically χ²₁; lme4's rate in the fixture is 0.058.

    Observed (seed 7, 2,000 simulations, 40 singular H1 fits): Satterthwaite
    0.045, Wald z 0.060; LRT (test above, 1,000 simulations) 0.042 here and
    0.058 in R. Each is asserted within 3.5 binomial standard errors of its
    known value.
    """
    n = 2000
    wald = _power(ref, design, 0.0, "wald", n, seed=7)
    satt = _power(ref, design, 0.0, "satterthwaite", n, seed=7)
    sw, ss = wald.simulations, satt.simulations
    # same draws and fits (Wald: drawn on the device; Satterthwaite: drawn on the host), equal to rounding
    np.testing.assert_allclose(sw["statistic"], ss["statistic"], rtol=1e-8)
    np.testing.assert_allclose(ss["df"][~ss["singular"]], 17.0, rtol=1e-3)
    assert (sw["significant"] | ~ss["significant"]).all()  # z rejects whenever t does

    def within(rate, p0):
        return abs(rate - p0) <= Z * np.sqrt(p0 * (1 - p0) / n)

    exact_wald = 2 * stats.t.sf(stats.norm.isf(0.025), 17)
    assert exact_wald == pytest.approx(0.0666, abs=1e-4)
    assert within(satt.power, 0.05), satt.power
    assert within(wald.power, exact_wald), wald.power
    assert wald.power > satt.power
